"""Convergence conditions and the critical step size of SD dynamics, (E8).

(E8) The SD loss converges iff (i) the mean is stable: |beta| < 1 and 0 < alpha lambda_k < 2(1+beta) for all modes
     with lambda_k > 0; (ii) D_k > 0 for all k (E7; automatic under (i) when gamma tau >= 0); (iii) U~(1) < 1.
     U~(1) increases with alpha, so the critical alpha_c is the root of U~(1) = 1 below
     alpha_mode = min(2(1+beta)/lambda_1, first zero of D_1), or alpha_mode itself when U~(1) < 1 up to it.

Closed forms: gamma = 0 gives alpha_c = 2(1+beta)/lambda_max; b = 1, beta = 0, tau = 1 gives alpha_c = 2 / Tr K~.
Asymptotes: beta -> -1: 2(1+beta)/lambda_max; beta -> 1: 2(1-beta)/(gamma lambda_crit), where lambda_crit solves
sum_k lambda_k/(lambda_k + lambda_crit) = 1.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq

from sgd_genfunc.theory.params import as_tensor


def _lam_np(lam) -> np.ndarray:
    arr = as_tensor(lam).detach().cpu().numpy().astype(np.float64)
    if arr.ndim != 1:
        raise ValueError(f"lam must be 1-D, got shape {arr.shape}")
    return arr


def _u1(lam: np.ndarray, alpha: float, beta: float, gamma: float, tau: float) -> float:
    """U~(1) of (E7) in numpy; +inf when some D_k <= 0."""
    D = 2.0 * (1.0 - beta * beta) + alpha * lam * (gamma * tau * (1.0 + beta) - (1.0 - beta))
    if np.any(D <= 0):
        return math.inf
    return float(gamma * alpha * (1.0 + beta) * np.sum(lam / D))


def mode_alpha_bound(lam, beta: float = 0.0, gamma: float = 1.0, tau: float = 1.0) -> float:
    """alpha_mode = min(2(1+beta)/lambda_1, first zero of D_1) of (E8); 0.0 when |beta| >= 1."""
    lam_np = _lam_np(lam)
    if abs(beta) >= 1:
        return 0.0
    lam1 = float(lam_np.max())
    bound = 2.0 * (1.0 + beta) / lam1
    slope = gamma * tau * (1.0 + beta) - (1.0 - beta)  # D_1 = 2(1 - beta^2) + alpha lam1 slope
    if slope < 0:
        bound = min(bound, 2.0 * (1.0 - beta * beta) / (lam1 * -slope))
    return bound


def _critical_alpha_one(lam: np.ndarray, beta: float, gamma: float, tau: float) -> float:
    if abs(beta) >= 1:
        return 0.0
    lam_pos = lam[lam > 0]
    a_mode = mode_alpha_bound(lam_pos, beta, gamma, tau)
    if gamma == 0:
        return a_mode

    def f(a: float) -> float:
        u = _u1(lam_pos, a, beta, gamma, tau)
        return min(u, 1e300) - 1.0

    if f(a_mode) < 0:
        return a_mode
    return float(brentq(f, 0.0, a_mode, xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=500))


def critical_alpha(lam, beta=0.0, gamma: float = 1.0, tau: float = 1.0):
    """Critical step size alpha_c(beta) of (E8): U~(1) = 1, capped by alpha_mode; brentq with xtol 1e-14.

    beta may be a float (returns a float) or an array (returns a numpy array of the same shape).
    """
    lam_np = _lam_np(lam)
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if np.ndim(beta) == 0:
        return _critical_alpha_one(lam_np, float(beta), float(gamma), float(tau))
    betas = np.asarray(beta, dtype=float)
    out = np.array([_critical_alpha_one(lam_np, float(b), float(gamma), float(tau)) for b in betas.ravel()])
    return out.reshape(betas.shape)


def is_stable(lam, alpha: float, beta: float = 0.0, gamma: float = 1.0, tau: float = 1.0) -> bool:
    """True iff conditions (i)-(iii) of (E8) hold."""
    lam_np = _lam_np(lam)
    lam_pos = lam_np[lam_np > 0]
    if abs(beta) >= 1 or alpha <= 0:
        return False
    if np.any(alpha * lam_pos >= 2.0 * (1.0 + beta)):
        return False
    return _u1(lam_pos, float(alpha), float(beta), float(gamma), float(tau)) < 1.0


def lambda_crit(lam) -> float:
    """The root lambda_crit > 0 of sum_k lambda_k / (lambda_k + lambda_crit) = 1 (beta -> 1 asymptote, E8)."""
    lam_np = _lam_np(lam)
    lam_pos = lam_np[lam_np > 0]
    if lam_pos.size < 2:
        raise ValueError("lambda_crit needs at least two positive eigenvalues")

    def f(x: float) -> float:
        return float(np.sum(lam_pos / (lam_pos + x))) - 1.0

    hi = float(lam_pos.sum())  # f(hi) < 0 since each term < lam_k / hi
    return float(brentq(f, 1e-300, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500))


def asymptote_minus1(beta, lam_max: float = 1.0):
    """beta -> -1 asymptote of the critical alpha: 2(1+beta)/lambda_max."""
    return 2.0 * (1.0 + np.asarray(beta, dtype=float)) / lam_max


def asymptote_plus1(beta, gamma: float, lam):
    """beta -> +1 asymptote of the critical alpha: 2(1-beta)/(gamma lambda_crit)."""
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0 for the beta -> 1 asymptote, got {gamma}")
    return 2.0 * (1.0 - np.asarray(beta, dtype=float)) / (gamma * lambda_crit(lam))
