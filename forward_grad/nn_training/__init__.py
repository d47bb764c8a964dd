"""Neural-network training with forward gradients (spec 3.3, 4, 5)."""
