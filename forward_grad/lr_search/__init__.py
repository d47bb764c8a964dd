"""Propulate learning-rate search (spec 3.5)."""
