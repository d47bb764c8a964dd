"""Generating functions of the SD loss, (E5)-(E7).

Symbols: lambda_k (modes of K~), c_k (initial per-mode error), alpha, beta, gamma, tau as in (E4); gt = gamma * tau.

(E5) Per mode, (c, j, p) evolve by a 3x3 map A_lambda (E4 without the S term; the c-coefficient of p' is
     alpha^2 lambda^2 (1 - gamma tau)), and the source gamma alpha^2 lambda^2 S_t enters c, j and p. Hence the renewal
     S_t = v_t + sum_{m=1..t} u_m S_{t-m},  v_t = sum_k c_k [A_k^t e_c]_c,
     u_m = gamma alpha^2 sum_k lambda_k^2 [A_k^{m-1} (1,1,1)]_c.
(E6) S_lambda(z) = det(I - z A_lambda)
       = 1 - z[1+beta+beta^2 - 2 alpha lambda (1+beta) + alpha^2 lambda^2 (1 - gt)]
         + beta z^2 [1+beta+beta^2 - 2 alpha lambda (1+beta) + alpha^2 lambda^2 (1 + gt)] - beta^3 z^3,
     U_lambda(z) = (1 + beta z)/S_lambda(z),
     V_lambda(z) = (1 - beta(1+beta) z + beta^3 z^2 + 2 alpha beta lambda z)/S_lambda(z),
     U~(z) = gamma alpha^2 z sum_k lambda_k^2 U_k(z),  V~(z) = sum_k c_k V_k(z),
     L~(z) = sum_t L_t z^t = V~(z) / (2N (1 - U~(z))).
(E7) At z = 1: S_lambda(1) = alpha lambda D_lambda, D_lambda = 2(1-beta^2) + alpha lambda [gt (1+beta) - (1-beta)],
     U~(1) = gamma alpha (1+beta) sum_k lambda_k / D_k,
     V~(1) = sum_k c_k [2 alpha beta lambda_k + (1-beta)(1-beta^2)] / (alpha lambda_k D_k),
     sum_{t>=0} L_t = V~(1) / (2N (1 - U~(1)))   (exact for SD, any tau).

All functions take float64 tensors/arrays; z may have any shape (the mode axis is appended and summed over).
"""

from __future__ import annotations

import math

import torch

from sgd_genfunc.theory.params import as_tensor


def _z(z) -> torch.Tensor:
    return as_tensor(z).unsqueeze(-1)


def mode_denominator(z, lam, alpha, beta, gamma_tau) -> torch.Tensor:
    """S_lambda(z) = det(I - z A_lambda), (E6); broadcasts z against lam."""
    z, lam = as_tensor(z), as_tensor(lam)
    a = alpha * lam
    base = 1.0 + beta + beta * beta - 2.0 * a * (1.0 + beta)
    t1 = base + a * a * (1.0 - gamma_tau)
    t2 = base + a * a * (1.0 + gamma_tau)
    return 1.0 - z * t1 + beta * z * z * t2 - beta**3 * z**3


def u_mode(z, lam, alpha, beta, gamma_tau) -> torch.Tensor:
    """U_lambda(z) = (1 + beta z) / S_lambda(z), (E6)."""
    return (1.0 + beta * z) / mode_denominator(z, lam, alpha, beta, gamma_tau)


def v_mode(z, lam, alpha, beta, gamma_tau) -> torch.Tensor:
    """V_lambda(z) = (1 - beta(1+beta) z + beta^3 z^2 + 2 alpha beta lambda z) / S_lambda(z), (E6)."""
    num = 1.0 - beta * (1.0 + beta) * z + beta**3 * z * z + 2.0 * alpha * beta * lam * z
    return num / mode_denominator(z, lam, alpha, beta, gamma_tau)


def u_tilde(z, lam, alpha, beta=0.0, gamma=1.0, tau=1.0) -> torch.Tensor:
    """U~(z) = gamma alpha^2 z sum_k lambda_k^2 U_k(z), (E6); shape of z."""
    zz, lam = _z(z), as_tensor(lam)
    return gamma * alpha**2 * zz[..., 0] * (lam**2 * u_mode(zz, lam, alpha, beta, gamma * tau)).sum(-1)


def v_tilde(z, lam, c, alpha, beta=0.0, gamma=1.0, tau=1.0) -> torch.Tensor:
    """V~(z) = sum_k c_k V_k(z), (E6); shape of z."""
    zz, lam, c = _z(z), as_tensor(lam), as_tensor(c)
    return (c * v_mode(zz, lam, alpha, beta, gamma * tau)).sum(-1)


def loss_genfunc(z, lam, c, alpha, beta=0.0, gamma=1.0, tau=1.0) -> torch.Tensor:
    """L~(z) = V~(z) / (2N (1 - U~(z))), (E6)."""
    N = as_tensor(lam).shape[-1]
    U = u_tilde(z, lam, alpha, beta, gamma, tau)
    return v_tilde(z, lam, c, alpha, beta, gamma, tau) / (2 * N * (1.0 - U))


def mode_D(lam, alpha, beta, gamma_tau) -> torch.Tensor:
    """D_lambda = 2(1 - beta^2) + alpha lambda [gamma tau (1+beta) - (1-beta)], (E7)."""
    lam = as_tensor(lam)
    return 2.0 * (1.0 - beta * beta) + alpha * lam * (gamma_tau * (1.0 + beta) - (1.0 - beta))


def u_tilde_at_1(lam, alpha, beta=0.0, gamma=1.0, tau=1.0) -> float:
    """U~(1) = gamma alpha (1+beta) sum_k lambda_k / D_k, (E7); +inf if some D_k <= 0 (with lambda_k > 0)."""
    lam = as_tensor(lam)
    lam = lam[lam > 0]
    D = mode_D(lam, alpha, beta, gamma * tau)
    if bool((D <= 0).any()):
        return math.inf
    return float(gamma * alpha * (1.0 + beta) * (lam / D).sum())


def v_tilde_at_1(lam, c, alpha, beta=0.0, gamma=1.0, tau=1.0) -> float:
    """V~(1) = sum_k c_k [2 alpha beta lambda_k + (1-beta)(1-beta^2)] / (alpha lambda_k D_k), (E7).

    +inf when a mode with c_k > 0 has lambda_k = 0 (it never decays) or some D_k <= 0.
    """
    lam, c = as_tensor(lam), as_tensor(c)
    if bool(((lam <= 0) & (c > 0)).any()) or alpha <= 0:
        return math.inf
    m = lam > 0
    lam, c = lam[m], c[m]
    D = mode_D(lam, alpha, beta, gamma * tau)
    if bool((D <= 0).any()):
        return math.inf
    return float((c * (2 * alpha * beta * lam + (1 - beta) * (1 - beta * beta)) / (alpha * lam * D)).sum())


def loss_sum(lam, c, alpha, beta=0.0, gamma=1.0, tau=1.0) -> float:
    """sum_{t>=0} L_t = V~(1) / (2N (1 - U~(1))), (E7); +inf when the dynamics do not converge (E8)."""
    from sgd_genfunc.theory.stability import is_stable

    lam = as_tensor(lam)
    if not is_stable(lam, alpha, beta, gamma, tau):
        return math.inf
    N = lam.shape[-1]
    U1 = u_tilde_at_1(lam, alpha, beta, gamma, tau)
    return v_tilde_at_1(lam, c, alpha, beta, gamma, tau) / (2 * N * (1.0 - U1))


def mode_matrix(lam, alpha, beta, gamma_tau) -> torch.Tensor:
    """A_lambda of (E5) for every mode: shape (N, 3, 3), state order (c, j, p)."""
    lam = as_tensor(lam)
    a = alpha * lam
    q = a * a * (1.0 - gamma_tau)
    b2 = torch.full_like(a, beta * beta)  # every entry is a tensor of the modes' shape
    entries = [1.0 - 2.0 * a + q, 2.0 * beta * (1.0 - a), b2, q - a, beta * (1.0 - 2.0 * a), b2, q, -2.0 * a * beta, b2]
    rows = [torch.stack(entries[3 * i : 3 * i + 3], -1) for i in range(3)]
    return torch.stack(rows, -2)


def propagators(lam, c, alpha, beta=0.0, gamma=1.0, tau=1.0, n: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """Renewal kernels (u_m, v_m) of (E5) for m = 0..n (u_0 = 0, v_0 = sum c)."""
    lam, c = as_tensor(lam), as_tensor(c)
    A = mode_matrix(lam, alpha, beta, gamma * tau)
    x = torch.ones(lam.shape[0], 3, dtype=lam.dtype, device=lam.device)  # A^{m-1} (1,1,1)
    y = torch.zeros_like(x)
    y[:, 0] = 1.0  # A^m e_c
    u = torch.zeros(n + 1, dtype=lam.dtype, device=lam.device)
    v = torch.zeros_like(u)
    v[0] = c.sum()
    w = gamma * alpha**2 * lam**2
    for m in range(1, n + 1):
        u[m] = (w * x[:, 0]).sum()
        x = torch.einsum("kij,kj->ki", A, x)
        y = torch.einsum("kij,kj->ki", A, y)
        v[m] = (c * y[:, 0]).sum()
    return u, v


def renewal_trace(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Solve S_t = v_t + sum_{m=1..t} u_m S_{t-m} for t = 0..n, (E5)."""
    n = v.shape[0] - 1
    S = torch.zeros_like(v)
    for t in range(n + 1):
        S[t] = v[t] + (u[1 : t + 1] * S[:t].flip(0)).sum()
    return S
