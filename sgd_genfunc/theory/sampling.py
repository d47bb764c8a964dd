"""Mini-batch sampling statistics (E2) of Velikanov, Kuznedelev, Yarotsky (arXiv 2206.11124).

A step draws b of the N training points; S_B is the diagonal mask of the batch (a count of draws when sampling with
replacement). The stochastic gradient in function space is g = (N/b) K~ S_B d. Its second moment obeys

    E_B[(N/b)^2 S_B C S_B] = (1 - gamma) C + gamma N diag(C),

with gamma = (N - b)/((N - 1) b) for b distinct indices (1 at b = 1, 0 at b = N) and gamma = 1/b with replacement.
"""

from __future__ import annotations

import torch

from sgd_genfunc.theory.params import as_tensor


def batch_noise_factor(N: int, b: int, replacement: bool = False) -> float:
    """Batch noise factor gamma of (E2) (public alias `gamma`, the paper's symbol; the dynamics take its value as
    their `gamma` argument).

    Args: N: train-set size (>= 2); b: batch size (1 <= b, and b <= N without replacement);
    replacement: draw b indices independently (gamma = 1/b) instead of b distinct ones.
    """
    N, b = int(N), int(b)
    if N < 2:
        raise ValueError(f"N must be >= 2, got {N}")
    if b < 1 or (not replacement and b > N):
        raise ValueError(f"batch size b must lie in [1, N={N}], got {b}")
    if replacement:
        return 1.0 / b
    return (N - b) / ((N - 1) * b)


gamma = batch_noise_factor  # the paper's symbol, the name of the seed-facing API


def batch_second_moment(C, b: int, replacement: bool = False) -> torch.Tensor:
    """E_B[(N/b)^2 S_B C S_B] = (1 - gamma) C + gamma N diag(C) (E2), for a symmetric (N, N) matrix C."""
    C = as_tensor(C)
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise ValueError(f"C must be a square matrix, got shape {tuple(C.shape)}")
    N = C.shape[0]
    g = batch_noise_factor(N, b, replacement)
    return (1.0 - g) * C + g * N * torch.diag(torch.diagonal(C))
