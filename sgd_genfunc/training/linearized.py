"""Sampled linearized dynamics in function space, (E2): R independent runs advance together on the device.

Symbols: d (R, N) residuals, K~ (N x N) scaled kernel, B the batch (b indices), g = (N/b) K~ S_B d the stochastic
function-space gradient, alpha_n, beta_n the (possibly scheduled) step size and momentum.

(E2) heavy ball (torch convention): p <- g + beta p; d <- d - alpha p.
Adam on g (ResidualAdam): m <- b1 m + (1-b1) g, v <- b2 v + (1-b2) g^2, d <- d - alpha m^/(sqrt(v^) + eps).

Batches come from `batches.draw_batches` in chunks; losses stay on the device and are read once at the end (no
per-step host sync, DESIGN.md §3.9).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from common.cli import UsageError
from sgd_genfunc.schedules import as_schedule
from sgd_genfunc.training.batches import draw_batches

CHUNK = 256


class ResidualSGD:
    """Heavy-ball SGD on the residual: p <- g + beta_n p; d <- d - alpha_n p."""

    def __init__(self, alpha_fn, beta_fn=0.0):
        self.alpha_fn, self.beta_fn = as_schedule(alpha_fn), as_schedule(beta_fn)

    def init_state(self, d: torch.Tensor) -> dict:
        return {"p": torch.zeros_like(d)}

    def step(self, d: torch.Tensor, g: torch.Tensor, state: dict, n: int) -> torch.Tensor:
        p = state["p"]
        p.mul_(self.beta_fn(n)).add_(g)
        return d.sub_(self.alpha_fn(n) * p)


class ResidualAdam:
    """Adam with bias correction on the function-space gradient g."""

    def __init__(self, alpha_fn, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8):
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise UsageError(f"b1 and b2 must lie in [0, 1), got b1={b1}, b2={b2}")
        if eps < 0:
            raise UsageError(f"eps must be >= 0, got {eps}")
        self.alpha_fn, self.b1, self.b2, self.eps = as_schedule(alpha_fn), b1, b2, eps

    def init_state(self, d: torch.Tensor) -> dict:
        return {"m": torch.zeros_like(d), "v": torch.zeros_like(d)}

    def step(self, d: torch.Tensor, g: torch.Tensor, state: dict, n: int) -> torch.Tensor:
        m, v = state["m"], state["v"]
        m.mul_(self.b1).add_(g, alpha=1 - self.b1)
        v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
        m_hat = m / (1 - self.b1**n)
        v_hat = v / (1 - self.b2**n)
        return d.sub_(self.alpha_fn(n) * m_hat / (v_hat.sqrt() + self.eps))


def residual_gradient(K_tilde: torch.Tensor, d: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """g = (N/b) K~ S_B d for every run: d (R, N), idx (R, b) -> (R, N). Repeated indices count with multiplicity."""
    N, b = d.shape[-1], idx.shape[-1]
    dB = torch.gather(d, 1, idx)  # (R, b)
    rows = K_tilde[idx]  # (R, b, N); K~ symmetric so K~[:, B] d_B = K~[B]^T d_B
    return (N / b) * torch.bmm(dB.unsqueeze(1), rows).squeeze(1)


class LinearizedResult(NamedTuple):
    """loss: (R, n_steps+1); tracked: (n_steps//track_every + 1, N) run mean of (u_k^T d)^2 or None;
    diverged_at: (R,) int64, -1 if never."""

    loss: torch.Tensor
    tracked: torch.Tensor | None
    diverged_at: torch.Tensor


def train_linearized(
    opt,
    d0,
    K_tilde,
    n_steps: int,
    batch_size: int,
    runs: int = 1,
    generator=None,
    track_every: int = 0,
    U=None,
    replacement: bool = False,
) -> LinearizedResult:
    """Run R = runs sampled linearized trajectories from d0 with the residual optimizer `opt` (E2).

    Args:
        generator: a list of R numpy Generators (`batches.batch_streams`) or one Generator shared in order.
        track_every, U: store the run mean of (u_k^T d)^2 every track_every steps (needs the eigenvectors U).
    """
    K_tilde = torch.as_tensor(K_tilde)
    N = K_tilde.shape[0]
    d0 = torch.as_tensor(d0, dtype=K_tilde.dtype, device=K_tilde.device)
    if d0.shape[-1] != N:
        raise ValueError(f"d0 has {d0.shape[-1]} entries but K~ is {N} x {N}")
    if not 1 <= batch_size <= (N if not replacement else batch_size):
        raise ValueError(f"batch size b must lie in [1, N={N}], got {batch_size}")
    if track_every and U is None:
        raise ValueError("track_every needs the eigenvectors U")
    if generator is None:
        generator = np.random.default_rng(0)
    rngs = generator if isinstance(generator, (list, tuple)) else [generator] * runs
    if len(rngs) != runs:
        raise ValueError(f"need {runs} batch streams, got {len(rngs)}")
    dev = K_tilde.device
    d = d0.expand(runs, N).clone()
    state = opt.init_state(d)
    loss = torch.empty(runs, n_steps + 1, dtype=d.dtype, device=dev)
    loss[:, 0] = (d * d).sum(1) / (2 * N)
    limit = 1e30 * loss[:, 0]
    diverged = torch.zeros(runs, dtype=torch.bool, device=dev)
    diverged_at = torch.full((runs,), -1, dtype=torch.int64, device=dev)
    tracked = None
    if track_every:
        U = torch.as_tensor(U, dtype=d.dtype, device=dev)
        tracked = torch.empty(n_steps // track_every + 1, N, dtype=d.dtype, device=dev)
        tracked[0] = ((d @ U) ** 2).mean(0)
    for start in range(1, n_steps + 1, CHUNK):
        stop = min(start + CHUNK, n_steps + 1)
        idx = np.stack([draw_batches(r, stop - start, N, batch_size, replacement) for r in rngs], 1)
        idx = torch.as_tensor(idx, device=dev)  # (steps, R, b)
        for i, n in enumerate(range(start, stop)):
            g = residual_gradient(K_tilde, d, idx[i])
            d_new = opt.step(d.clone(), g, state, n)
            L = (d_new * d_new).sum(1) / (2 * N)
            bad = ~torch.isfinite(L) | (L > limit)
            diverged_at = torch.where(bad & ~diverged, torch.full_like(diverged_at, n), diverged_at)
            diverged |= bad
            d = torch.where(diverged[:, None], d, d_new)
            loss[:, n] = torch.where(diverged, torch.full_like(L, float("inf")), L)
            if track_every and n % track_every == 0:
                tracked[n // track_every] = ((d @ U) ** 2).mean(0)
    return LinearizedResult(loss, tracked, diverged_at)
