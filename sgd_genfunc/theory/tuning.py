"""Optimal step size and momentum of SD dynamics at a finite budget, and the negative-momentum condition (E10).

Symbols: alpha step size, beta momentum, alpha_eff = alpha/(1-beta), gamma, tau as in (E4); L_T the SD loss after
n_steps = T steps.

(E10) beta_opt < 0 is expected (the reference attributes the condition to the paper's (91)) when
      sum_k lambda_k * sum_k C_k > ((nu-1)/nu) * sum_k lambda_k^2 * sum_k C_k/lambda_k,  C_k = k^(-kappa+nu-1),
      lambda_k = k^-nu, k = 1..N; `negative_momentum_condition` returns LHS - RHS.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from sgd_genfunc.theory.params import as_tensor
from sgd_genfunc.theory.sd import sd_run
from sgd_genfunc.theory.stability import critical_alpha


class Optimum(NamedTuple):
    """value: the best parameter; loss: L_T there; grid, losses: every evaluated point (sorted by value)."""

    value: float
    loss: float
    grid: np.ndarray
    losses: np.ndarray


def effective_lr(alpha, beta):
    """alpha_eff = alpha / (1 - beta)."""
    return alpha / (1.0 - np.asarray(beta, dtype=float)) if np.ndim(beta) else alpha / (1.0 - beta)


def _final_losses(lam, c, n_steps, alphas, betas, gamma, tau) -> np.ndarray:
    res = sd_run(lam, c, n_steps, alpha=alphas, beta=betas, gamma=gamma, tau=tau)
    return res.loss[..., -1].cpu().numpy()


def optimal_alpha(
    lam,
    c,
    n_steps: int,
    beta: float = 0.0,
    gamma: float = 1.0,
    tau: float = 1.0,
    n_grid: int = 64,
    n_refine: int = 32,
    rounds: int = 2,
) -> Optimum:
    """argmin over alpha of L_T: 64 alphas alpha_c*i/64 (i = 1..64), then 2 rounds of 32 points between the best
    point's neighbours (DESIGN.md §3.7)."""
    lam = as_tensor(lam)
    a_c = float(critical_alpha(lam, beta, gamma, tau))
    if a_c <= 0:
        raise ValueError(f"no stable alpha for beta={beta}")
    grid = a_c * np.arange(1, n_grid + 1) / n_grid
    all_a, all_L = [grid], [_final_losses(lam, c, n_steps, torch.tensor(grid), beta, gamma, tau)]
    losses = all_L[0]
    for _ in range(rounds):
        i = int(np.nanargmin(np.where(np.isfinite(losses), losses, np.inf)))
        lo = grid[i - 1] if i > 0 else grid[i] * 0.5
        hi = grid[i + 1] if i + 1 < len(grid) else grid[i]
        grid = np.linspace(lo, hi, n_refine)
        losses = _final_losses(lam, c, n_steps, torch.tensor(grid), beta, gamma, tau)
        all_a.append(grid)
        all_L.append(losses)
    a = np.concatenate(all_a)
    L = np.concatenate(all_L)
    order = np.argsort(a, kind="stable")
    a, L = a[order], L[order]
    best = int(np.argmin(np.where(np.isfinite(L), L, np.inf)))
    return Optimum(float(a[best]), float(L[best]), a, L)


def optimal_beta(lam, c, n_steps: int, alpha: float, betas=None, gamma: float = 1.0, tau: float = 1.0) -> Optimum:
    """argmin of L_T over a beta grid (default -0.6:0.6:0.05) at fixed alpha (DESIGN.md §3.7)."""
    if betas is None:
        betas = np.round(np.arange(-0.6, 0.6 + 1e-9, 0.05), 10)
    betas = np.asarray(betas, dtype=float)
    L = _final_losses(lam, c, n_steps, alpha, torch.tensor(betas), gamma, tau)
    best = int(np.argmin(np.where(np.isfinite(L), L, np.inf)))
    return Optimum(float(betas[best]), float(L[best]), betas, L)


def negative_momentum_condition(nu: float, kappa: float, N: int = 1000) -> float:
    """LHS - RHS of (E10): positive predicts beta_opt < 0."""
    if nu <= 0:
        raise ValueError(f"nu must be > 0, got {nu}")
    k = np.arange(1, int(N) + 1, dtype=float)
    lam = k**-nu
    C = k ** (-kappa + nu - 1)
    lhs = lam.sum() * C.sum()
    rhs = (nu - 1) / nu * (lam**2).sum() * (C / lam).sum()
    return float(lhs - rhs)
