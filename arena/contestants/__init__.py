"""Contestant files of the arena (README.md §4): one module per method; names starting with ``_`` are helpers."""
