"""Spectrally Diagonal (SD) dynamics of mini-batch heavy-ball SGD, (E4).

Symbols: lambda_k eigenvalues of K~ = K / lambda_max (sorted descending, lambda_1 = 1); c_k, j_k, p_k the diagonal
entries of C = E[d d^T], J = E[d v^T], P = E[v v^T] in the eigenbasis; alpha step size; beta momentum; gamma batch
noise factor (E2); tau the SD parameter (+1 "mean_field", -1 "gauss"); S = sum_l c_l; loss L = S / (2N).

(E4)  noise_k = gamma alpha^2 lambda_k^2 (S - tau c_k)
      p'_k = alpha^2 lambda_k^2 c_k - 2 alpha beta lambda_k j_k + beta^2 p_k + noise_k
      j'_k = beta j_k - alpha lambda_k c_k + p'_k
      c'_k = c_k - 2 alpha lambda_k c_k + 2 beta j_k + p'_k

Every step costs O(N) per config; all configs of a grid (leading shape G) advance together.
Divergence (DESIGN.md §9): a config is marked diverged at the first step where L is non-finite or exceeds 1e30 L_0; its
state is frozen there and later loss entries are +inf.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from sgd_genfunc.theory.params import as_tensor, check_nonneg, check_spectrum, config_param, config_shape, value_at

DIVERGENCE_FACTOR = 1e30


class SDState(NamedTuple):
    """Per-mode second moments (c, j, p), each of shape (*G, N)."""

    c: torch.Tensor
    j: torch.Tensor
    p: torch.Tensor


class SDResult(NamedTuple):
    """loss, trace: (*G, n_steps+1) with trace = S_t and loss = S_t / (2N); diverged_at: (*G,) int64, -1 if never;
    tracked: (*G, n_steps//track_every + 1, N) per-mode c_k at t = 0, track_every, ... (None when not tracked)."""

    loss: torch.Tensor
    trace: torch.Tensor
    diverged_at: torch.Tensor
    tracked: torch.Tensor | None


def sd_init(c) -> SDState:
    """Initial state: c_k(0) given, j = p = 0."""
    c = as_tensor(c)
    return SDState(c.clone(), torch.zeros_like(c), torch.zeros_like(c))


def sd_step(state: SDState, lam, alpha, beta, gamma, tau) -> SDState:
    """One step of (E4). Scalars are floats or tensors of shape (*G, 1) (see `params.config_param`)."""
    c, j, p = state
    a = alpha * lam
    a2 = a * a
    S = c.sum(-1, keepdim=True)
    p_new = a2 * c - 2.0 * beta * a * j + (beta * beta) * p + gamma * a2 * (S - tau * c)
    j_new = beta * j - a * c + p_new
    c_new = c - 2.0 * a * c + 2.0 * beta * j + p_new
    return SDState(c_new, j_new, p_new)


CHUNK = 128


def _flat_coeff(x, G, N, dev) -> torch.Tensor:
    """A float or (*G, 1)/(*G, N) tensor as a contiguous (prod G, N) tensor."""
    t = x if isinstance(x, torch.Tensor) else torch.tensor(x, dtype=torch.float64, device=dev)
    return torch.broadcast_to(t, (*G, N)).reshape(-1, N).contiguous()


# CPU cache blocking: the static run advances blocks of configs whose working set (about a dozen (rows, N) float64
# arrays) fits in a core's L2 cache, instead of streaming all G x N arrays through memory twelve times a step.
BLOCK_BYTES = 3 * 2**19


def _block_rows(n_rows: int, N: int, dev: torch.device) -> int:
    """Configs per block: all of them on accelerators (one kernel per op is cheapest there), else ~1.5 MiB worth."""
    if dev.type != "cpu":
        return n_rows
    return max(1, min(n_rows, BLOCK_BYTES // (12 * 8 * N)))


def _run_static(lam, c0, n_steps, params, G, trace, limit, diverged_at, track_every, tracked, on_steps=None) -> None:
    """Constant-parameter SD run on flattened configs (views of the caller's outputs are filled in place).

    The coefficients of (E4) are precomputed per mode: p' = A1 c + B1 j + beta^2 p + src S, j' = beta j - a c + p',
    c' = (1 - 2a) c + 2 beta j + p' (about twelve tensor ops per step; with beta = 0 only c is needed:
    c' = (1 - 2a + A1) c + src S). Rows run in cache-sized blocks (`_block_rows`); every config is independent.
    """
    a_, b_, g_, t_ = params
    N, dev = lam.shape[0], lam.device
    a = _flat_coeff(a_ * lam, G, N, dev)
    A1 = a * a * _flat_coeff(1.0 - g_ * t_, G, N, dev)
    src = a * a * _flat_coeff(g_, G, N, dev)
    beta = _flat_coeff(b_, G, 1, dev)
    momentum = bool((beta != 0).any())
    rows = trace.shape[0]
    step = _block_rows(rows, N, dev)
    blocks = range(0, rows, step)
    report = None if on_steps is None else (lambda k: on_steps(k / len(blocks)))
    for i in blocks:
        sl = slice(i, i + step)
        coeffs = (a[sl], A1[sl], src[sl], beta[sl])
        tracked_rows = tracked[sl] if tracked is not None else None
        _run_block(c0[sl], n_steps, coeffs, momentum, trace[sl], limit[sl], diverged_at[sl], track_every, tracked_rows,
                   report)  # fmt: skip


def _run_block(c0, n_steps, coeffs, momentum, trace, limit, diverged_at, track_every, tracked, on_steps) -> None:
    """Advance one block of configs for n_steps (see `_run_static`); dead configs leave the active set."""
    a, A1, src, beta = coeffs
    dev = c0.device
    if momentum:
        B1, m_a, cc = -2.0 * beta * a, -a, 1.0 - 2.0 * a
        b2, tb = beta * beta, 2.0 * beta
    else:
        cc = 1.0 - 2.0 * a + A1
    cs = c0.clone()
    js, ps = torch.zeros_like(cs), torch.zeros_like(cs)
    active = None  # None: every config is active
    t0 = 1
    for n in range(1, n_steps + 1):
        S = cs.sum(-1, keepdim=True)
        if momentum:
            pn = torch.addcmul(A1 * cs, B1, js).addcmul_(b2, ps).addcmul_(src, S)
            jn = torch.addcmul(beta * js, m_a, cs).add_(pn)
            cs = torch.addcmul(cc * cs, tb, js).add_(pn)
            js, ps = jn, pn
        else:
            cs = torch.addcmul(cc * cs, src, S)
        if active is None:
            trace[:, n] = cs.sum(-1)
            if track_every and n % track_every == 0:
                tracked[:, n // track_every] = cs
        else:
            trace[active, n] = cs.sum(-1)
            if track_every and n % track_every == 0:
                tracked[active, n // track_every] = cs
        if n - t0 + 1 >= CHUNK or n == n_steps:
            dead = _mark_divergence(trace, t0, n + 1, limit, diverged_at)
            if on_steps is not None:
                on_steps(n + 1 - t0)
            t0 = n + 1
            idx = torch.arange(trace.shape[0], device=dev) if active is None else active
            keep = ~dead[idx]
            if not bool(keep.all()):
                active = idx[keep]
                cs, js, ps, a, A1, src, cc = (x[keep] for x in (cs, js, ps, a, A1, src, cc))
                beta = beta[keep]
                if momentum:
                    B1, m_a, b2, tb = (x[keep] for x in (B1, m_a, b2, tb))
                if active.numel() == 0:
                    trace[:, n + 1 :] = float("inf")
                    if on_steps is not None:
                        on_steps(n_steps - n)
                    break


def _mark_divergence(trace, t0, t1, limit, diverged_at):
    """Flag configs whose S left the finite range in steps [t0, t1); set their later trace entries to +inf."""
    window = trace[..., t0:t1]
    bad = ~torch.isfinite(window) | (window > limit.unsqueeze(-1))
    any_bad = bad.any(-1)
    new = any_bad & (diverged_at < 0)
    if bool(new.any()):
        first = t0 + bad.to(torch.int8).argmax(-1)
        diverged_at.copy_(torch.where(new, first, diverged_at))
    steps = torch.arange(trace.shape[-1], device=trace.device)
    after = (diverged_at >= 0).unsqueeze(-1) & (steps >= diverged_at.unsqueeze(-1))
    trace.masked_fill_(after, float("inf"))
    return diverged_at >= 0


def _run_scheduled(lam, c0, n_steps, params, trace, limit, diverged_at, track_every, tracked, on_steps=None) -> None:
    """SD run with step-dependent parameters (schedules): `sd_step` with the values at each step n >= 1."""
    dev = lam.device
    state = sd_init(c0)
    t0 = 1
    for n in range(1, n_steps + 1):
        values = [config_param(value_at(x, n), dev) for x in params]
        state = sd_step(state, lam, *values)
        trace[..., n] = state.c.sum(-1)
        if track_every and n % track_every == 0:
            tracked[..., n // track_every, :] = state.c
        if n - t0 + 1 >= CHUNK or n == n_steps:
            dead = _mark_divergence(trace, t0, n + 1, limit, diverged_at)
            if on_steps is not None:
                on_steps(n + 1 - t0)
            t0 = n + 1
            if bool(dead.any()):
                state = SDState(*(x.masked_fill(dead.unsqueeze(-1), 0.0) for x in state))


def sd_run(
    lam,
    c,
    n_steps: int,
    alpha=1.0,
    beta=0.0,
    gamma=1.0,
    tau=1.0,
    track_every: int = 0,
    on_steps: Callable[[int], None] | None = None,
) -> SDResult:
    """Run (E4) for n_steps from c_k(0) = c, j = p = 0, for every config of the broadcast grid at once.

    Args:
        lam: (N,) eigenvalues of K~ in [0, 1]. c: (N,) or (*G, N) initial c_k (>= 0).
        alpha, beta, gamma, tau: floats, tensors of config shape G, or callables of the step n >= 1.
        track_every: store c_k every this many steps (0: off).
        on_steps: called with the number of steps just done after every chunk (a progress bar's `update`).

    Notes: with constant scalars the coefficients of (E4) are precomputed per mode (about twelve tensor ops per
    step); with schedules `sd_step` is used.
    Divergence is checked every chunk of steps; a diverged config's state is frozen at zero (its later loss entries
    are +inf whatever the state).
    """
    lam = as_tensor(lam)
    check_spectrum(lam)
    c = as_tensor(c, device=lam.device)
    if c.shape[-1] != lam.shape[0]:
        raise ValueError(f"c has {c.shape[-1]} modes but lam has {lam.shape[0]}")
    if int(n_steps) < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
    check_nonneg("alpha", alpha)
    check_nonneg("gamma", gamma)
    n_steps = int(n_steps)
    N = lam.shape[0]
    G = tuple(torch.broadcast_shapes(config_shape(alpha, beta, gamma, tau), tuple(c.shape[:-1])))
    dev = lam.device
    scheduled = any(callable(x) for x in (alpha, beta, gamma, tau))

    c0 = c.expand(*G, N).contiguous()
    S0 = c0.sum(-1)
    limit = DIVERGENCE_FACTOR * S0
    trace = torch.full((*G, n_steps + 1), float("nan"), dtype=lam.dtype, device=dev)  # steps not yet run: NaN
    trace[..., 0] = S0
    diverged_at = torch.full(G, -1, dtype=torch.int64, device=dev)
    tracked = None
    if track_every:
        tracked = torch.empty(*G, n_steps // track_every + 1, N, dtype=lam.dtype, device=dev)
        tracked[..., 0, :] = c0

    if scheduled:
        params = (alpha, beta, gamma, tau)
        _run_scheduled(lam, c0, n_steps, params, trace, limit, diverged_at, track_every, tracked, on_steps)
    else:
        flat = (-1, n_steps + 1)
        tr_tracked = tracked.reshape(-1, tracked.shape[-2], N) if tracked is not None else None
        _run_static(
            lam,
            c0.reshape(-1, N),
            n_steps,
            [config_param(x, dev) for x in (alpha, beta, gamma, tau)],
            G,
            trace.reshape(flat),
            limit.reshape(-1),
            diverged_at.reshape(-1),
            track_every,
            tr_tracked,
            on_steps,
        )
    if tracked is not None:
        rows = torch.arange(tracked.shape[-2], device=dev) * track_every
        after = (diverged_at >= 0).unsqueeze(-1) & (rows >= diverged_at.unsqueeze(-1))
        tracked.masked_fill_(after.unsqueeze(-1), float("inf"))
    return SDResult(trace / (2.0 * N), trace, diverged_at, tracked)
