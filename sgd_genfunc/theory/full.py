"""Exact batch-averaged ("full") second-moment dynamics of mini-batch heavy-ball SGD, (E3).

Symbols: K~ = U diag(lambda) U^T (N x N, scaled so lambda_1 = 1); C = E[d d^T], J = E[d v^T], P = E[v v^T] with v the
last increment of the residual d; alpha step size, beta momentum, gamma batch noise factor (E2); L_t = tr C_t / (2N).

(E3)  P' = beta^2 P - alpha beta (K~J + J^T K~) + alpha^2 [(1 - gamma) K~CK~ + gamma N K~ diag(C) K~]
      J' = beta J - alpha C K~ + P'
      C' = C - alpha (K~C + CK~) + beta (J + J^T) + P'

`FullStepper` (a loop's steps, buffers reused) and `full_step` (one step) work in the eigenbasis of K~ (DESIGN.md §3.2):
every term is elementwise there except diag(C) and the noise,
dg_i = sum_kl U_ik C_kl U_il = rowsum((U C) * U) and the symmetric Z = N U^T diag(dg) U, 1.75 N x N matmuls per step
(Z from three half-size blocks; in-place elementwise work on row-major arrays, J^T carried explicitly).
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


STEP_STREAMS = 49  # N x N array reads + writes of FullStepper.step's elementwise work, counted by hand


class FullStepper:
    """Steps of (E3) in the eigenbasis of K~ with every N x N buffer allocated once (DESIGN.md §8 B1).

    Per step: one N x N matmul for dg_i = rowsum((U C) * U), 3/4 of one for the symmetric Z = N U^T diag(dg) U
    (three half-size blocks), and elementwise passes that read or write an N x N array about STEP_STREAMS = 49
    times in all (the memory traffic of the roofline in DESIGN.md §8 B1).
    Each step writes into one of two output states, never the one it reads, so the state passed to `step` stays
    valid (and can be kept, e.g. frozen at divergence) until the step after the next.
    """

    def __init__(self, lam: torch.Tensor, U: torch.Tensor):
        # every N x N array row-major: U (from eigh or QR) is column-major, and an elementwise op over arrays of mixed
        # layouts reads one of them with a stride of N (several times slower than a contiguous stream)
        self.lam, self.U = lam, U.contiguous()
        self.lam_outer = torch.outer(lam, lam)  # lam_k lam_l: exactly symmetric, constant over the run
        self._W, self._Z = self._empty(), self._empty()
        self._outs: list[FullState] = []

    def _empty(self) -> torch.Tensor:
        return torch.empty(self.U.shape, dtype=self.U.dtype, device=self.U.device)

    def _out_for(self, state: FullState) -> FullState:
        used = {x.data_ptr() for x in state if x is not None}
        for out in self._outs:
            if not used.intersection(x.data_ptr() for x in out):
                return out
        out = FullState(*(self._empty() for _ in range(4)))
        self._outs.append(out)
        return out

    def _symmetric_noise(self, W: torch.Tensor) -> torch.Tensor:
        """Z + Z^T for Z = W^T U (symmetric in exact arithmetic), from three of its four half-size blocks.

        The lower-left block is the mirror of the upper-right one, so the matmul costs 3/4 of an N x N product and
        the result is exactly symmetric without a transposed pass over all of Z. Overwrites W with the result.
        """
        U, N = self.U, self.U.shape[0]
        h, m = N // 2, N - N // 2
        z = self._Z.view(-1)
        Z11, Z12, Z22 = z[: h * h].view(h, h), z[h * h : h * N].view(h, m), z[h * N : h * N + m * m].view(m, m)
        torch.matmul(W[:, :h].T, U[:, :h], out=Z11)
        torch.matmul(W[:, :h].T, U[:, h:], out=Z12)
        torch.matmul(W[:, h:].T, U[:, h:], out=Z22)
        torch.add(Z11, Z11.T, out=W[:h, :h])
        torch.add(Z12, Z12, out=W[:h, h:])
        W[h:, :h].copy_(W[:h, h:].T)
        torch.add(Z22, Z22.T, out=W[h:, h:])
        return W

    def step(self, state: FullState, alpha: float, beta: float, gamma: float) -> FullState:
        """One step of (E3) from `state` (eigenbasis); returns C', J', P', J'^T in this stepper's buffers.

        J^T is carried as its own array and the noise term is built exactly symmetric from three blocks, so no step
        reads a whole N x N array transposed. C and P stay exactly symmetric (DESIGN.md §3.9): every term of P'
        pairs (k, l) with (l, k) through the same rounded factors, and C' = C + J' + J'^T - P' (equal to (E3)'s C'
        since J' + J'^T = beta (J + J^T) - alpha (K~C + CK~) + 2 P') is a sum of J' and its carried transpose,
        symmetric by commutativity.
        """
        C, J, P = (x.contiguous() for x in state[:3])
        Jt = J.T.contiguous() if state.Jt is None else state.Jt.contiguous()
        U, lam, W, Z = self.U, self.lam, self._W, self._Z
        C_new, J_new, P_new, Jt_new = self._out_for(state)
        N = lam.shape[0]
        dg = torch.matmul(U, C, out=W).mul_(U).sum(1)  # diag of the sample-basis C: rowsum((U C) * U)
        torch.mul(U, (0.5 * gamma * alpha * alpha * N * dg)[:, None], out=W)
        noise = self._symmetric_noise(W)  # alpha^2 gamma N U^T diag(dg) U, exactly symmetric, in W
        noise.add_(C, alpha=alpha * alpha * (1.0 - gamma)).mul_(self.lam_outer)
        ab = -alpha * beta * lam
        torch.mul(J, ab[:, None], out=P_new)  # -alpha beta (K~J + J^T K~): (k, l) and (l, k) pair the same products
        P_new.add_(torch.mul(Jt, ab[None, :], out=Z)).add_(P, alpha=beta * beta).add_(noise)
        a = -alpha * lam
        torch.add(P_new, J, alpha=beta, out=J_new).addcmul_(C, a[None, :])
        torch.add(P_new, Jt, alpha=beta, out=Jt_new).addcmul_(C, a[:, None])
        torch.add(J_new, Jt_new, out=C_new).add_(C).sub_(P_new)
        return FullState(C_new, J_new, P_new, Jt_new)


def full_step(state: FullState, lam, U, alpha, beta, gamma) -> FullState:
    """One step of (E3) in the eigenbasis of K~ (1.75 N x N matmuls; floats alpha, beta, gamma), fresh output arrays.

    A loop should hold one `FullStepper` instead (as `full_run` does): it reuses its buffers across steps.
    """
    return FullStepper(as_tensor(lam), as_tensor(U)).step(state, alpha, beta, gamma)


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
    stepper = FullStepper(lam, U) if form == "eig" else None
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
            new = stepper.step(state, a, bt, g)
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
