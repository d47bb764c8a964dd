"""Aggregations of K forward gradients g_{v_i} = d_i v_i (DESIGN.md §3.2; Flügel et al., arXiv 2410.17764, sec. 3).

Symbols: g = grad f (n), V the K x n tangents (rows v_i), d = V g the K directional derivatives (jvps),
U = span(v_1..v_K), P_U the orthogonal projector onto U, Q an n x m orthonormal basis of U (m = min(K, n)).

Shapes: d is (..., K) and V is (..., K, n); leading dimensions broadcast, so a batch of B per-sample jvps with one
shared V (node perturbation) is d of shape (B, K) with V of shape (K, n). Results are (..., n).

- mean ("fg-mean", eq. of g-bar_V): g_bar = V^T d / K; E g_bar = g and E|g_bar|^2/|g|^2 = (n+K+1)/K for N(0, I).
- orthogonal_projection ("frog"): P_U g = V^T (V V^T)^{-1} d. We never form the Gram inverse: in `qr` mode the jvps
  run along the columns of Q from the reduced QR V^T = Q R (`frog_directions`), and g_hat = Q (Q^T g); in `solve` mode
  the jvps run along V and g_hat = Q R^{-T} d with a pinv(V) d fallback for (near) rank deficient V.
"""

from __future__ import annotations

import warnings

import torch

from common.cli import UsageError
from forward_grad.forward_gradient.theory import frog_expected_cos

__all__ = [
    "AGGREGATIONS",
    "canonical_aggregation",
    "aggregate",
    "frog_directions",
    "frog_from_directions",
    "frog_solve",
    "frog_gram",
    "scaling_factor",
]

AGGREGATIONS = (
    "mean",
    "sum",
    "mean_times_dim",
    "max",
    "max_normalized",
    "mean_of_top_k",
    "orthogonal_projection",
)
_ALIASES = {"frog": "orthogonal_projection", "fg-mean": "mean", "fg": "mean"}
TOP_K_WINDOW = 0.1


def canonical_aggregation(name: str) -> str:
    """Map "frog" and "fg-mean" to their 3.2 names; ValueError for unknown names."""
    name = _ALIASES.get(name, name)
    if name not in AGGREGATIONS:
        raise UsageError(f"unknown aggregation {name!r}; choose from {', '.join(AGGREGATIONS)} or frog")
    return name


def _combine(weights: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """sum_i w_i v_i over the K axis: weights (..., K), V (..., K, n) -> (..., n)."""
    return (weights.unsqueeze(-1) * V).sum(-2) if V.dim() > 2 else weights @ V


def _select(d: torch.Tensor, V: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """The single d_i v_i with the largest score, chosen per sample (batched d)."""
    mask = torch.zeros_like(d)
    mask.scatter_(-1, score.argmax(-1, keepdim=True), 1.0)
    return _combine(d * mask, V)


def frog_directions(V: torch.Tensor, warn: bool = True) -> torch.Tensor:
    """Orthonormal directions Q^T (..., m, n) of the reduced QR V^T = Q R, m = min(K, n) (DESIGN.md §3.2, frog_mode=qr).

    Q spans a K-dim subspace containing every row of V (= span(V) at full rank). For K >= n, Q is a full basis and
    frog returns the exact gradient with n jvps; a warning says so (Python shows it once per call site).
    """
    k, n = V.shape[-2], V.shape[-1]
    if k >= n and warn:
        warnings.warn(
            f"K={k} >= n={n}: frog uses n orthonormal directions and returns the exact gradient", stacklevel=2
        )
    q, _ = torch.linalg.qr(V.transpose(-1, -2), mode="reduced")
    return q.transpose(-1, -2)


def frog_from_directions(d_q: torch.Tensor, Qt: torch.Tensor) -> torch.Tensor:
    """g_hat = Q (Q^T g) from jvps d_q = Q^T g along the orthonormal rows of Qt (DESIGN.md §3.2, qr mode)."""
    return _combine(d_q, Qt)


def frog_gram(d: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """Naive P_U g = V^T (V V^T)^{-1} d with an explicit Gram inverse (oracle for tests only)."""
    gram = V @ V.transpose(-1, -2)
    return _combine((torch.linalg.inv(gram) @ d.unsqueeze(-1)).squeeze(-1), V)


def frog_solve(d: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """P_U g = Q R^{-T} d from jvps d = V g along raw tangents (DESIGN.md §3.2, frog_mode=solve).

    Falls back to pinv(V) d when K > n or some |R_jj| <= max(n, K) eps max|R_jj| (rank deficient V); pinv(V) d is the
    projection onto span(V) of any rank.
    """
    k, n = V.shape[-2], V.shape[-1]
    if k <= n:
        q, r = torch.linalg.qr(V.transpose(-1, -2), mode="reduced")
        diag = r.diagonal(dim1=-2, dim2=-1).abs()
        tol = max(n, k) * torch.finfo(V.dtype).eps * diag.amax(-1, keepdim=True)
        if bool((diag > tol).all()):
            y = torch.linalg.solve_triangular(r.transpose(-1, -2), d.unsqueeze(-1), upper=False)
            return (q @ y).squeeze(-1)
    pinv = torch.linalg.pinv(V)
    return (pinv @ d.unsqueeze(-1)).squeeze(-1)


def scaling_factor(aggregation: str, n: int, V: torch.Tensor) -> torch.Tensor | float:
    """The reference's `scaling_correction` heuristic (DESIGN.md §3.2), a factor on the aggregated estimate.

    frog: E[chi_n]/E[chi_K]; mean: 1/(|v|^2 sqrt(2/(pi n))) for K = 1, else 1/(|v|^2 sqrt((n+K)/(1+K))/n), where
    |v|^2 is the mean squared tangent norm (the single tangent's for K = 1). Other aggregations: 1.
    """
    aggregation = canonical_aggregation(aggregation)
    k = V.shape[-2]
    if aggregation == "orthogonal_projection":
        return 1.0 / frog_expected_cos(n, k)
    if aggregation == "mean":
        sq = (V * V).sum(-1).mean(-1, keepdim=True)
        if k == 1:
            return 1.0 / (sq * (2.0 / (torch.pi * n)) ** 0.5)
        return 1.0 / (sq * ((n + k) / (1 + k)) ** 0.5 / n)
    return 1.0


def aggregate(name: str, d: torch.Tensor, V: torch.Tensor, *, scaling_correction: bool = False) -> torch.Tensor:
    """Aggregate jvps d = V g (..., K) along tangents V (..., K, n) into one estimate (..., n) (DESIGN.md §3.2).

    For "orthogonal_projection"/"frog" this is the `solve` form (jvps along raw V); the `qr` form needs the jvps along
    `frog_directions(V)` and is `frog_from_directions`.
    """
    name = canonical_aggregation(name)
    k, n = V.shape[-2], V.shape[-1]
    if name == "orthogonal_projection":
        out = frog_solve(d, V)
    elif name == "mean":
        out = _combine(d, V) / k
    elif name == "sum":
        out = _combine(d, V)
    elif name == "mean_times_dim":
        out = _combine(d, V) * (n / k)
    else:
        norms = V.norm(dim=-1).clamp_min(torch.finfo(V.dtype).tiny)
        if name == "max":
            out = _select(d, V, d.abs())
        elif name == "max_normalized":
            out = _select(d, V, d.abs() / norms)
        else:  # mean_of_top_k
            score = d.abs() / norms
            keep = (score >= score.amax(-1, keepdim=True) - TOP_K_WINDOW).to(d.dtype)
            out = _combine(d * keep, V) / keep.sum(-1, keepdim=True)
    if scaling_correction:
        factor = scaling_factor(name, n, V)
        out = out * factor
    return out
