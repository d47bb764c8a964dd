"""Reverse-mode "simulated" jvps d = V grad f (DESIGN.md §3). Tests and benchmarks only; no script uses it."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["oracle_gradient", "oracle_jvp", "oracle_activity_jvp"]


def oracle_gradient(f: Callable, x: torch.Tensor) -> torch.Tensor:
    """grad f(x) by torch.func.grad (the true gradient g)."""
    return torch.func.grad(f)(x)


def oracle_jvp(f: Callable, x: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """d = V g with g = grad f(x) from reverse mode; V is (K, *x.shape)."""
    g = oracle_gradient(f, x).reshape(-1)
    return V.reshape(V.shape[0], -1) @ g


def oracle_activity_jvp(
    loss_per_sample: torch.Tensor, activations: list[torch.Tensor], V: torch.Tensor
) -> torch.Tensor:
    """Per-sample d_{i,b} = v_i . dL/da_b from reverse mode (node perturbation oracle, DESIGN.md §7.7).

    loss_per_sample: (B,) losses L_b / B whose sum is the batch-mean loss; activations: block outputs a_l (B, ...);
    V: (K, n) global tangents over the concatenated per-sample activations. Returns (K, B).
    """
    grads = torch.autograd.grad(loss_per_sample.sum(), activations, retain_graph=True)
    flat = torch.cat([g.reshape(g.shape[0], -1) for g in grads], dim=1)
    return V @ flat.T
