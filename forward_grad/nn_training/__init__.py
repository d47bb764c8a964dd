"""Neural-network training with forward gradients (DESIGN.md §3.3, 4, 5)."""
