"""Exact batch-averaged ("full") second-moment dynamics of mini-batch heavy-ball SGD, (E3).

Symbols: K~ = U diag(lambda) U^T (N x N, scaled so lambda_1 = 1); C = E[d d^T], J = E[d v^T], P = E[v v^T] with v the
last increment of the residual d; alpha step size, beta momentum, gamma batch noise factor (E2); L_t = tr C_t / (2N).

(E3)  P' = beta^2 P - alpha beta (K~J + J^T K~) + alpha^2 [(1 - gamma) K~CK~ + gamma N K~ diag(C) K~]
      J' = beta J - alpha C K~ + P'
      C' = C - alpha (K~C + CK~) + beta (J + J^T) + P'

`full_step` works in the eigenbasis of K~ (DESIGN.md §3.2):
every term is elementwise there except diag(C) and the noise,
dg_i = sum_kl U_ik C_kl U_il = rowsum((U C) * U) and Z = N U^T diag(dg) U, two N x N matmuls per step (in-place
elementwise work, J^T carried explicitly so that only Z needs a transposed read).
`full_step_naive` is (E3) written in the sample basis (five matmuls), the test oracle and benchmark baseline.

Notes: the reference recursion was unstable in floating point (its antisymmetric part grows); here the dynamics run in
float64 only and C, P are symmetrized after every step (DESIGN.md §3.9).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from sgd_genfunc.theory.params import as_tensor, check_nonneg, check_spectrum, value_at
from sgd_genfunc.theory.sd import DIVERGENCE_FACTOR


class FullState(NamedTuple):
    """C, J, P in the eigenbasis of K~ (each N x N, float64); Jt = J^T carried along (None: computed on demand)."""

    C: torch.Tensor
    J: torch.Tensor
    P: torch.Tensor
    Jt: torch.Tensor | None = None


class FullResult(NamedTuple):
    """loss: (n_steps+1,); diverged_at: step of divergence or -1; state: the final (or frozen) FullState."""

    loss: torch.Tensor
    diverged_at: int
    state: FullState


def _sym(X: torch.Tensor) -> torch.Tensor:
    return 0.5 * (X + X.T)


def full_init(lam, U, C0) -> FullState:
    """State at t = 0: C = U^T C0 U (C0 = d_0 d_0^T or any second moment), J = P = 0."""
    lam, U = as_tensor(lam), as_tensor(U)
    C0 = as_tensor(C0, device=U.device)
    if U.shape != (lam.shape[0], lam.shape[0]) or C0.shape != U.shape:
        raise ValueError(f"shapes disagree: lam {tuple(lam.shape)}, U {tuple(U.shape)}, C0 {tuple(C0.shape)}")
    C = _sym(U.T @ C0 @ U)
    return FullState(C, torch.zeros_like(C), torch.zeros_like(C), torch.zeros_like(C))


def to_sample_basis(state: FullState, U) -> FullState:
    """Rotate an eigenbasis state back to the sample basis (X -> U X U^T)."""
    U = as_tensor(U)
    return FullState(*(U @ X @ U.T for X in state[:3]))


def full_step(state: FullState, lam, U, alpha, beta, gamma) -> FullState:
    """One step of (E3) in the eigenbasis of K~ (two N x N matmuls; floats alpha, beta, gamma).

    J^T is carried as its own array (J^T' = beta J^T - alpha K~C + P'), so no term needs a transposed read except the
    noise matrix Z, which is symmetrized once; every other term is symmetric by construction, so C and P stay exactly
    symmetric (the symmetrization of DESIGN.md §3.9) with one transposed pass per step instead of three.
    """
    C, J, P, Jt = state
    if Jt is None:
        Jt = J.T.contiguous()
    N = lam.shape[0]
    lk, ll = lam[:, None], lam[None, :]
    W = U @ C
    W.mul_(U)
    dg = W.sum(1)  # diag of the sample-basis C
    torch.mul(U, (N * dg)[:, None], out=W)
    Z = U.T @ W  # N U^T diag(dg) U (not exactly symmetric)
    torch.add(Z, Z.T, out=W)  # exactly symmetric
    noise = W.mul_(0.5 * gamma).add_(C, alpha=1.0 - gamma).mul_(lk * ll).mul_(alpha * alpha)
    P_new = torch.mul(J, lk).add_(torch.mul(Jt, ll))  # K~J + J^T K~: symmetric by construction (no fused op)
    P_new.mul_(-alpha * beta).add_(P, alpha=beta * beta).add_(noise)
    J_new = torch.mul(C, ll).mul_(-alpha).add_(J, alpha=beta).add_(P_new)
    Jt_new = torch.mul(C, lk).mul_(-alpha).add_(Jt, alpha=beta).add_(P_new)
    C_new = torch.mul(C, lk + ll).mul_(-alpha).add_(C)
    C_new.add_(torch.add(J, Jt), alpha=beta).add_(P_new)
    return FullState(C_new, J_new, P_new, Jt_new)


def full_step_naive(C, J, P, K, alpha, beta, gamma, symmetrize: bool = True):
    """One step of (E3) in the sample basis with five matmuls; returns (C', J', P')."""
    N = K.shape[0]
    KJ = K @ J
    JtK = J.T @ K
    KC = K @ C
    KCK = KC @ K
    KdK = (K * torch.diagonal(C)[None, :]) @ K
    P_new = (beta * beta) * P - (alpha * beta) * (KJ + JtK) + (alpha * alpha) * ((1.0 - gamma) * KCK + gamma * N * KdK)
    if symmetrize:
        P_new = _sym(P_new)
    J_new = beta * J - alpha * KC.T + P_new
    C_new = C - alpha * (KC + KC.T) + beta * (J + J.T) + P_new
    if symmetrize:
        C_new = _sym(C_new)
    return C_new, J_new, P_new


def full_run(lam, U, C0, n_steps: int, alpha=1.0, beta=0.0, gamma=1.0, form: str = "eig", on_steps=None) -> FullResult:
    """Run (E3) for n_steps; alpha, beta, gamma are floats or callables of the step n >= 1.

    form="eig" (default) uses `full_step`; form="naive" uses `full_step_naive` on K~ = U diag(lam) U^T.
    L_t = tr(C_t)/(2N) (the trace is basis independent). Divergence as in `sd_run` (state frozen, loss +inf).
    on_steps: called with 1 after every step (a progress bar's `update`).
    """
    if form not in ("eig", "naive"):
        raise ValueError(f"form must be 'eig' or 'naive', got {form!r}")
    lam, U = as_tensor(lam), as_tensor(U)
    check_spectrum(lam)
    check_nonneg("alpha", alpha)
    check_nonneg("gamma", gamma)
    n_steps = int(n_steps)
    N = lam.shape[0]
    state = full_init(lam, U, C0)
    K = None
    if form == "naive":
        K = (U * lam[None, :]) @ U.T
        state = to_sample_basis(state, U)
    loss = torch.empty(n_steps + 1, dtype=lam.dtype, device=lam.device)
    loss[0] = torch.trace(state.C) / (2 * N)
    limit = DIVERGENCE_FACTOR * float(loss[0])
    diverged_at = -1
    for n in range(1, n_steps + 1):
        a, bt, g = (float(value_at(x, n)) for x in (alpha, beta, gamma))
        if form == "eig":
            new = full_step(state, lam, U, a, bt, g)
        else:
            new = FullState(*full_step_naive(state.C, state.J, state.P, K, a, bt, g), None)
        L = torch.trace(new.C) / (2 * N)
        loss[n] = L
        if not (torch.isfinite(L) and L <= limit):  # one host sync per step: N^2 work dominates anyway
            diverged_at = n
            loss[n:] = float("inf")
            break
        state = new
        if on_steps is not None:
            on_steps(1)
    if form == "naive":
        state = FullState(*(U.T @ X @ U for X in state[:3]))
    return FullResult(loss, diverged_at, state)
