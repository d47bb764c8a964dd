"""autowu package."""
