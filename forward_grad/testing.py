"""Assertion helpers shared by tests/forward_grad, notebooks and benchmarks (like torch.testing; DESIGN.md §7)."""

from __future__ import annotations

import math

import torch

__all__ = ["gen", "mc_tol", "assert_is_projection"]


def gen(seed: int = 0) -> torch.Generator:
    """A CPU generator seeded with seed."""
    return torch.Generator().manual_seed(seed)


def mc_tol(samples: torch.Tensor, sigmas: float = 4.0) -> float:
    """sigmas * sample std / sqrt(S): the Monte Carlo tolerance of DESIGN.md §7."""
    return sigmas * float(samples.std()) / math.sqrt(samples.numel())


def assert_is_projection(g_hat: torch.Tensor, g: torch.Tensor, V: torch.Tensor, rtol: float = 1e-10) -> None:
    """Frog invariants (DESIGN.md §7.1): V (g - g_hat) = 0, cos(g_hat, g) = |g_hat|/|g|, |g_hat| <= |g|."""
    scale = float(g.norm() * V.norm(dim=-1).max())
    resid = float((V @ (g - g_hat)).abs().max())
    assert resid <= rtol * scale, f"DESIGN.md §7.1: V(g - g_hat) = {resid:.3e} > {rtol} * {scale:.3e}"
    cos = float(g_hat @ g / (g_hat.norm() * g.norm()))
    ratio = float(g_hat.norm() / g.norm())
    assert abs(cos - ratio) <= rtol * 10, f"DESIGN.md §7.1: cos {cos!r} != |g_hat|/|g| {ratio!r}"
    assert ratio <= 1 + rtol, f"DESIGN.md §7.1: |g_hat|/|g| = {ratio} > 1"
