"""Workload files of the arena (README.md §3): one module per workload; names starting with ``_`` are helpers."""
