"""Approximation quality of forward-gradient aggregations (paper sec. 4.1; DESIGN.md §4 approximation_quality.py, 6 E1).

For a fixed true gradient g (n) and S independent tangent sets V (K x n), compute per sample |g|, |g_hat|,
|g_hat - g|, |g_hat|/|g|, g_hat . g and cos(g_hat, g). Samples are batched S x K x n in chunks of at most chunk_mb;
frog needs only Q^T g from a batched reduced QR (|g_hat| = |Q^T g|, g_hat . g = |Q^T g|^2), and K >= n is the
exact gradient (shortcut, no QR).
"""

from __future__ import annotations

import math

import torch

from common.cli import UsageError
from forward_grad.forward_gradient.aggregation import aggregate, canonical_aggregation, frog_directions
from forward_grad.forward_gradient.tangents import sample_tangents

__all__ = ["METRICS", "TRUE_GRADIENTS", "true_gradient", "approximation_samples"]

METRICS = ("norm_g", "norm_est", "norm_err", "norm_ratio", "dot", "cos")
TRUE_GRADIENTS = ("ones", "ones_normalized", "random")


def true_gradient(kind: str, n: int, dtype=torch.float32, generator: torch.Generator | None = None) -> torch.Tensor:
    """The fixed gradient g of a cell: ones, ones / sqrt(n), or one N(0, I) draw."""
    if kind == "ones":
        return torch.ones(n, dtype=dtype)
    if kind == "ones_normalized":
        return torch.ones(n, dtype=dtype) / math.sqrt(n)
    if kind == "random":
        return torch.randn(n, dtype=dtype, generator=generator)
    raise UsageError(f"unknown true gradient {kind!r}; choose from {', '.join(TRUE_GRADIENTS)}")


def approximation_samples(
    n: int,
    k: int,
    aggregation: str,
    samples: int,
    *,
    sampler: str = "normal",
    normalize: bool = False,
    g: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    generator: torch.Generator | None = None,
    chunk_mb: float = 256.0,
) -> dict[str, torch.Tensor]:
    """Per-sample metrics (dict of METRICS -> (S,) tensors) of the aggregation over S tangent draws."""
    aggregation = canonical_aggregation(aggregation)
    if samples <= 0:
        raise UsageError(f"samples must be positive, got {samples}")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    g = torch.ones(n, dtype=dtype) if g is None else g.to(dtype)
    norm_g = g.norm()
    per_sample_bytes = k * n * torch.tensor([], dtype=dtype).element_size() * 3
    chunk = max(1, min(samples, int(chunk_mb * 2**20 // per_sample_bytes)))
    out = {m: [] for m in METRICS}
    done = 0
    while done < samples:
        c = min(chunk, samples - done)
        done += c
        V = sample_tangents(sampler, k, n, generator=generator, dtype=dtype, normalize=normalize, shape=(c,))
        if aggregation == "orthogonal_projection":
            if k >= n:
                q_norm = norm_g.expand(c)
            else:
                q_norm = (frog_directions(V, warn=False) @ g).norm(dim=-1)
            norm_est, dot = q_norm, q_norm**2
            norm_err = (norm_g**2 - q_norm**2).clamp_min(0).sqrt()
        else:
            est = aggregate(aggregation, V @ g, V)
            norm_est, dot = est.norm(dim=-1), est @ g
            norm_err = (est - g).norm(dim=-1)
        out["norm_g"].append(norm_g.expand(c))
        out["norm_est"].append(norm_est)
        out["norm_err"].append(norm_err)
        out["norm_ratio"].append(norm_est / norm_g)
        out["dot"].append(dot)
        out["cos"].append(dot / (norm_est * norm_g).clamp_min(torch.finfo(dtype).tiny))
    return {m: torch.cat(v) for m, v in out.items()}
