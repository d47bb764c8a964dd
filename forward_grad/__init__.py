"""forward_grad package."""
