"""Propulate learning-rate search (DESIGN.md §3.5)."""
