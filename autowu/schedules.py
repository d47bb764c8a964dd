"""Closed-form learning-rate schedules of AutoWU (DESIGN.md §3.1) and the tuned baseline (DESIGN.md §6.2).

Every function maps an update index u (1-based: u is the update that uses the LR) and a few stored anchors to an
LR, so a scheduler never multiplies factors step by step and a resumed run reproduces the same floats.

Symbols: S steps per epoch, E epochs, T = S*E updates, W = floor(f_w*T) warmup cap, r = eta_max/eta_min,
t_sw / eta_sw switch step and LR, t_c / eta_c start of the cooldown in constant-then-cosine mode, f the middle-phase
factor, t_0 / eta_0 the anchor of the final (cosine) phase.
"""

from __future__ import annotations

import math

__all__ = [
    "WARMUP_TYPES",
    "WARMUP_UNITS",
    "COOLDOWN_TYPES",
    "warmup_lr",
    "ramp_estimate",
    "cooldown_lr",
    "middle_lr",
    "cooldown_start",
    "warmup_steps",
    "BaselineFactor",
    "baseline_lr",
]

WARMUP_TYPES = ("exp", "linear")
WARMUP_UNITS = ("step", "epoch")
COOLDOWN_TYPES = ("cosine", "half_cosine")


def warmup_steps(total_steps: int, max_warmup_fraction: float) -> int:
    """W = floor(f_w * T), the last step at which warmup may still run (DESIGN.md §3.1)."""
    return int(math.floor(max_warmup_fraction * total_steps + 1e-9))


def warmup_lr(
    u: int,
    min_lr: float,
    max_lr: float,
    warmup: int,
    warmup_type: str = "exp",
    warmup_unit: str = "step",
    steps_per_epoch: int = 1,
    warmup_epochs: int | None = None,
) -> float:
    """LR of update u during warmup (DESIGN.md §3.1, rows "warmup").

    exp:    eta_min * r^((u-1)/W)                   (per step gamma = r^(1/W))
    linear: eta_min + (eta_max - eta_min) (u-1)/W
    epoch:  eta_min * r^(floor((u-1)/S) / floor(f_w E))   (staircase; linear analogue for warmup_type='linear')

    Args: u >= 1; warmup = W >= 1; warmup_epochs = floor(f_w*E) for the staircase (defaults to W // S).
    """
    if warmup <= 0:
        return max_lr
    if warmup_unit == "epoch":
        num = (u - 1) // steps_per_epoch
        den = warmup_epochs if warmup_epochs is not None else warmup // steps_per_epoch
        den = max(int(den), 1)
    else:
        num, den = u - 1, warmup
    if warmup_type == "linear":
        return min_lr + (max_lr - min_lr) * num / den
    return min_lr * (max_lr / min_lr) ** (num / den)


def ramp_estimate(z: float, min_lr: float, now_lr: float, warmup_type: str = "exp") -> float:
    """LR at relative position z in [0, 1] of the ramp from eta_min to eta_now (DESIGN.md §3.2, decay-start LR).

    exp: eta_min (eta_now/eta_min)^z; linear: eta_min + (eta_now - eta_min) z.
    """
    if warmup_type == "linear":
        return min_lr + (now_lr - min_lr) * z
    return min_lr * (now_lr / min_lr) ** z


def cooldown_lr(u: int, t0: int, eta0: float, total_steps: int, cooldown_type: str = "cosine") -> float:
    """Final-phase LR of update u > t0 (DESIGN.md §3.1).

    cosine:      eta_0 * 1/2 (1 + cos(pi (u - t0)/(T - t0)))             (lr_T = 0)
    half_cosine: eta_0 * (1/2 + 1/2 cos(pi/2 (1 + (u - t0)/(T - t0))))    (halves at once, as in the reference)
    Updates past T keep lr_T.
    """
    u = min(u, total_steps)
    span = total_steps - t0
    frac = 1.0 if span <= 0 else (u - t0) / span
    if cooldown_type == "half_cosine":
        return eta0 * (0.5 + 0.5 * math.cos(0.5 * math.pi * (1.0 + frac)))
    return eta0 * 0.5 * (1.0 + math.cos(math.pi * frac))


def middle_lr(u: int, t_sw: int, eta_sw: float, factor: float, steps_per_epoch: int, reductions: int | None = None):
    """Middle ('decay') phase of constant-then-cosine, t_sw < u <= t_c (DESIGN.md §3.1).

    eta_sw * f^m with m = 1 + floor((u - 1 - t_sw)/S); with decay_phase_stat='loss', m = plateau reductions so far.
    f = 1 gives a constant (1.0 ** m == 1.0 exactly).
    """
    m = reductions if reductions is not None else 1 + (u - 1 - t_sw) // steps_per_epoch
    return eta_sw * factor**m


def cooldown_start(total_steps: int, cooldown_fraction: float) -> int:
    """t_c = the smallest step >= (1 - c) T (DESIGN.md §3.1); rounding noise of (1 - c) T is removed first."""
    return int(math.ceil(round((1.0 - cooldown_fraction) * total_steps, 9)))


def baseline_lr(u: int, peak: float, warmup_frac: float, total_steps: int) -> float:
    """The DESIGN.md §6.2 baseline: linear warmup to `peak` over W_b = int(w T) updates, then cosine to 0.

    update u uses peak * u / W_b for u <= W_b, else peak * 1/2 (1 + cos(pi (u - 1 - W_b)/(T - W_b))).
    """
    wb = int(warmup_frac * total_steps)
    if u <= wb:
        return peak * (u / wb)
    span = max(total_steps - wb, 1)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(u - 1 - wb, span) / span))


class BaselineFactor:
    """Picklable LambdaLR factor for the DESIGN.md §6.2 baseline; the optimizer's lr is the peak.

    LambdaLR evaluates the factor at k = updates done, and update u = k + 1 uses it, so
    factor(k) = baseline_lr(k + 1, 1, w, T).
    """

    def __init__(self, warmup_frac: float, total_steps: int):
        if not 0.0 <= warmup_frac <= 1.0:
            raise ValueError(f"warmup_frac must lie in [0, 1]; got {warmup_frac}")
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1; got {total_steps}")
        self.warmup_frac = float(warmup_frac)
        self.total_steps = int(total_steps)

    def __call__(self, k: int) -> float:
        return baseline_lr(k + 1, 1.0, self.warmup_frac, self.total_steps)
