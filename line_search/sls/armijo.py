"""Scalar rules of the Armijo line search, as pure functions of Python floats (DESIGN.md §3.1).

Symbols (DESIGN.md §3.1): eta = step size, c = Armijo constant, phi = slope g.d of the tested direction d,
beta_s = EMA factor of the smoothed criterion (SaLSa), s = smoothed slope, h = smoothed loss decrease,
delta = f(w0) - f(w0 - eta*d), e_fast / e_slow = EMAs of accepted step sizes, L = search interval of the speed-up.

These functions hold the math so that it can be tested in 1-D without an optimizer (scipy's two layers);
`ArmijoLineSearch.step` calls them once per step or per trial.
"""

from __future__ import annotations

import math
from typing import NamedTuple

__all__ = [
    "ArmijoTrial",
    "armijo_test",
    "candidate_step_size",
    "trial_step_size",
    "smoothed_slope",
    "speedup_emas",
    "search_interval",
    "should_search",
]

RESET_KEEP, RESET_GROW, RESET_INIT = 0, 1, 2


def candidate_step_size(
    eta_prev: float,
    grow: float,
    init_step_size: float,
    eta_min: float,
    eta_max: float | None,
    reset_option: int = RESET_GROW,
) -> float:
    """(A2): eta_cand = clip(eta_{k-1} * grow, eta_min, eta_max); reset_option 0 keeps eta_{k-1}, 2 resets to eta_0."""
    if reset_option == RESET_KEEP:
        eta = eta_prev
    elif reset_option == RESET_GROW:
        eta = eta_prev * grow
    elif reset_option == RESET_INIT:
        eta = init_step_size
    else:
        raise ValueError(f"reset_option must be 0, 1 or 2, got {reset_option!r}")
    if eta_max is not None:
        eta = min(eta, eta_max)
    return max(eta, eta_min)


def trial_step_size(eta_cand: float, shrink: float, j: int, eta_min: float) -> float:
    """(A5): eta_j = max(eta_cand * shrink^j, eta_min) for trial j = 0, 1, ..."""
    return max(eta_cand * shrink**j, eta_min)


def smoothed_slope(s_prev: float, phi: float, beta_s: float) -> float:
    """(A4): s_k = beta_s * s_{k-1} + (1 - beta_s) * phi, with s_0 = 0 and no bias correction."""
    return beta_s * s_prev + (1.0 - beta_s) * phi


class ArmijoTrial(NamedTuple):
    """Outcome of one Armijo test (A5): whether it accepts and the smoothed decrease h it would commit."""

    accepted: bool
    h: float
    delta: float


def armijo_test(
    f0: float, f_trial: float, eta: float, s: float, h_prev: float, c: float, beta_s: float, accept_ties: bool = True
) -> ArmijoTrial:
    """(A5): accept when h_try = beta_s*h_{k-1} + (1-beta_s)*(f0 - f_trial) >= c*eta*s_k.

    With beta_s = 0 this is the plain Armijo condition f(w0 - eta*d) <= f(w0) - c*eta*phi. A tie (f_trial == f0
    exactly) is accepted when `accept_ties` (the references' rule). A NaN or infinite trial loss is a rejection.
    """
    delta = f0 - f_trial
    if not math.isfinite(f_trial) or not math.isfinite(delta):
        return ArmijoTrial(False, h_prev, delta)
    h_try = beta_s * h_prev + (1.0 - beta_s) * delta
    accepted = h_try >= c * eta * s or (accept_ties and delta == 0.0)
    return ArmijoTrial(accepted, h_try, delta)


def speedup_emas(e_fast: float, e_slow: float, eta: float) -> tuple[float, float]:
    """(A9): e_fast = 0.9*e_fast + 0.1*eta, e_slow = 0.99*e_slow + 0.01*eta (both start at 1e-8, no bias correction)."""
    return 0.9 * e_fast + 0.1 * eta, 0.99 * e_slow + 0.01 * eta


def search_interval(e_fast: float, e_slow: float, cap: float = 10.0) -> float:
    """(A9): r = e_fast/e_slow (inverted if < 1); L_k = min(cap, 1/(r - 1 + 1e-8))."""
    r = e_fast / e_slow
    if r < 1.0:
        r = 1.0 / r
    return min(cap, 1.0 / (r - 1.0 + 1e-8))


def should_search(t: int, steps_since_search: int, interval: float, warmup: int = 10) -> bool:
    """(A9): search at t <= 10 or when the steps since the last search reach L_k."""
    return t <= warmup or steps_since_search >= interval
