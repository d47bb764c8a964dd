"""hp_scaling package."""
