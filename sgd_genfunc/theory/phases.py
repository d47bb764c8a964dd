"""Power-law phases and loss exponents, (E9).

Symbols: lambda_k ~ Lambda k^-nu; tail sum_{l>=k} c_l ~ C_tail k^-kappa; zeta = kappa/nu; alpha_eff = alpha/(1-beta);
K = C_tail Lambda^-zeta / (2N), so that the error mass below spectral level lambda is K lambda^zeta (loss units).

(E9) signal phase (nu > 1, kappa < 2 nu - 1): L_t ~ K Gamma(zeta+1) (2 alpha_eff t)^-zeta / (1 - U~(1));
     noise phase (kappa >= 2 nu - 1): L_t ~ u_t V~(1) / (2N (1 - U~(1))^2) with
     u_t ~ (gamma/nu) Gamma(2 - 1/nu) Lambda^(1/nu) alpha_eff^2 (2 alpha_eff t)^-(2 - 1/nu).
     Loss exponent xi = min(kappa/nu, 2 - 1/nu); nu <= 1 is "divergent" (sum lambda_k grows with N; nu = 1 included).
"""

from __future__ import annotations

import math

import numpy as np


def classify_phase(nu: float, kappa: float) -> str:
    """'divergent' if nu <= 1, else 'signal' if kappa < 2 nu - 1, else 'noise' (E9)."""
    if nu <= 1:
        return "divergent"
    return "signal" if kappa < 2 * nu - 1 else "noise"


def loss_exponent(nu: float, kappa: float) -> float:
    """xi = min(kappa/nu, 2 - 1/nu) (E9); +inf in the divergent phase."""
    if nu <= 0:
        raise ValueError(f"nu must be > 0, got {nu}")
    if nu <= 1:
        return math.inf
    return min(kappa / nu, 2.0 - 1.0 / nu)


def signal_asymptote(t, K: float, zeta: float, alpha_eff: float, u1: float = 0.0) -> np.ndarray:
    """L_t ~ K Gamma(zeta+1) (2 alpha_eff t)^-zeta / (1 - U~(1)) (signal phase, E9)."""
    t = np.asarray(t, dtype=float)
    return K * math.gamma(zeta + 1.0) * (2.0 * alpha_eff * t) ** (-zeta) / (1.0 - u1)


def noise_asymptote(t, nu: float, gamma: float, alpha_eff: float, v1: float, u1: float, N: int, Lambda: float = 1.0):
    """L_t ~ u_t V~(1) / (2N (1 - U~(1))^2), u_t ~ (gamma/nu) Gamma(2-1/nu) Lambda^(1/nu) alpha_eff^2
    (2 alpha_eff t)^-(2-1/nu) (noise phase, E9)."""
    t = np.asarray(t, dtype=float)
    u_t = (gamma / nu) * math.gamma(2.0 - 1.0 / nu) * Lambda ** (1.0 / nu) * alpha_eff**2
    u_t = u_t * (2.0 * alpha_eff * t) ** (-(2.0 - 1.0 / nu))
    return u_t * v1 / (2.0 * N * (1.0 - u1) ** 2)


def fit_slope(t, L, t_min: float, t_max: float) -> float:
    """Least-squares slope of log L against log t over t in [t_min, t_max] (finite, positive points only)."""
    t = np.asarray(t, dtype=float)
    L = np.asarray(L, dtype=float)
    m = (t >= t_min) & (t <= t_max) & (t > 0) & np.isfinite(L) & (L > 0)
    if m.sum() < 2:
        raise ValueError(f"fit_slope needs at least 2 points in [{t_min}, {t_max}], got {int(m.sum())}")
    return float(np.polyfit(np.log(t[m]), np.log(L[m]), 1)[0])
