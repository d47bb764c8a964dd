"""Batch streams shared by every sampled regime (DESIGN.md §3.9).

Run r of any regime draws its batches from numpy SeedSequence(seed).spawn(R)[r], so NN run r and linearized run r see
the same indices (common random numbers), identical across configs. Each step takes b distinct indices (the b smallest
of N uniform keys), or b independent indices with replacement.
"""

from __future__ import annotations

import numpy as np


def batch_streams(seed: int, runs: int) -> list[np.random.Generator]:
    """One numpy Generator per run, from SeedSequence(seed).spawn(runs)."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    return [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(int(runs))]


def draw_batches(rng: np.random.Generator, n_steps: int, N: int, b: int, replacement: bool = False) -> np.ndarray:
    """Indices (n_steps, b) of the next n_steps batches; drawing in several chunks gives the same stream."""
    if b < 1 or (not replacement and b > N):
        raise ValueError(f"batch size b must lie in [1, N={N}], got {b}")
    if replacement:
        return rng.integers(0, N, size=(n_steps, b))
    if b == N:
        rng.random((n_steps, N))  # keep the stream aligned with smaller b
        return np.tile(np.arange(N), (n_steps, 1))
    keys = rng.random((n_steps, N))
    return np.argpartition(keys, b - 1, axis=1)[:, :b]
