"""Closed forms for Gaussian tangents (DESIGN.md §3.2 and 6; Flügel et al., arXiv 2410.17764, sec. 3.2).

Symbols: n dimension, K (k) number of tangents, chi_k a chi distribution with k degrees of freedom,
E[chi_k] = sqrt(2) Gamma((k+1)/2) / Gamma(k/2), T steps, lr the learning rate.

- frog: |P_U g|/|g| = cos(P_U g, g) = sqrt(B), B ~ Beta(K/2, (n-K)/2): E[cos] = E[chi_K]/E[chi_n], E[cos^2] = K/n.
- mean: E|g_bar|^2/|g|^2 = (n+K+1)/K.
- sphere f = sum x_i^2 (grad 2x): by rotational invariance E f_{t+1} = rho E f_t with
  frog rho = 1 - 4 lr (1 - lr) min(K, n)/n (optimum lr = 1/2, rho = 1 - K/n) and
  mean rho = 1 - 4 lr + 4 lr^2 (n+K+1)/K (optimum lr* = K/(2(n+K+1)), rho = 1 - K/(n+K+1)); E f_T = n rho^T.
"""

from __future__ import annotations

import math

from common.cli import UsageError

__all__ = [
    "expected_chi",
    "frog_expected_cos",
    "frog_expected_cos2",
    "mean_expected_sq_norm_ratio",
    "mean_expected_cos_approx",
    "sphere_rate",
    "sphere_optimal_lr",
    "sphere_expected_final",
]


def _check(n: int, k: int) -> None:
    if n <= 0 or k <= 0:
        raise UsageError(f"n and K must be positive, got n={n}, K={k}")


def log_expected_chi(k: float) -> float:
    return 0.5 * math.log(2.0) + math.lgamma((k + 1) / 2) - math.lgamma(k / 2)


def expected_chi(k: float) -> float:
    """E[chi_k] = sqrt(2) Gamma((k+1)/2)/Gamma(k/2), via lgamma (finite for large k)."""
    return math.exp(log_expected_chi(k))


def frog_expected_cos(n: int, k: int) -> float:
    """E[cos(P_U g, g)] = E[chi_K]/E[chi_n] for Gaussian V (DESIGN.md §3.2); 1 for K >= n."""
    _check(n, k)
    if k >= n:
        return 1.0
    return math.exp(log_expected_chi(k) - log_expected_chi(n))


def frog_expected_cos2(n: int, k: int) -> float:
    """E[cos^2(P_U g, g)] = min(K, n)/n (DESIGN.md §3.2)."""
    _check(n, k)
    return min(k, n) / n


def mean_expected_sq_norm_ratio(n: int, k: int) -> float:
    """E|g_bar|^2/|g|^2 = (n+K+1)/K for the mean of K Gaussian forward gradients (DESIGN.md §3.2)."""
    _check(n, k)
    return (n + k + 1) / k


def mean_expected_cos_approx(n: int, k: int) -> float:
    """sqrt(K/(n+K+1)), the large-K approximation of E[cos(g_bar, g)] used by E1's 3% rule."""
    _check(n, k)
    return math.sqrt(k / (n + k + 1))


def sphere_rate(n: int, k: int, lr: float, aggregation: str) -> float:
    """Per-step factor rho of E f on the sphere (module docstring); aggregation in {mean, frog, bp}."""
    _check(n, k)
    if aggregation in ("frog", "orthogonal_projection"):
        return 1.0 - 4.0 * lr * (1.0 - lr) * min(k, n) / n
    if aggregation in ("mean", "fg-mean"):
        return 1.0 - 4.0 * lr + 4.0 * lr * lr * (n + k + 1) / k
    if aggregation == "bp":
        return (1.0 - 2.0 * lr) ** 2
    raise UsageError(f"unknown aggregation {aggregation!r} for the sphere closed form")


def sphere_optimal_lr(n: int, k: int, aggregation: str) -> float:
    """argmin_lr of rho: K/(2(n+K+1)) for the mean, 1/2 for frog and bp (DESIGN.md §6, E2/E4)."""
    _check(n, k)
    if aggregation in ("mean", "fg-mean"):
        return k / (2.0 * (n + k + 1))
    if aggregation in ("frog", "orthogonal_projection", "bp"):
        return 0.5
    raise UsageError(f"unknown aggregation {aggregation!r} for the sphere closed form")


def sphere_expected_final(n: int, k: int, lr: float, steps: int, aggregation: str) -> float:
    """E f(x_T) = n rho^T from x_0 = (-1, ..., -1) (DESIGN.md §6, E2)."""
    rho = sphere_rate(n, k, lr, aggregation)
    if rho <= 0.0:
        return 0.0
    return n * math.exp(steps * math.log(rho))
