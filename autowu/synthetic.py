"""Synthetic loss-versus-LR curves that drive AutoWU without a model (DESIGN.md §7).

The "bowl": S = 50, E = 60, T = 3000, W = 1500 and L_u = 2 + 0.3 (log10 lr_u + 2)^2 + sigma eps_u, whose true minimum
(lr = 0.01) the exponential ramp reaches at update u = 901. eps_u = torch.randn((), generator=g) is drawn at every
update from g = torch.Generator().manual_seed(seed).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple

import torch

from autowu.scheduler import AutoWU

__all__ = ["CURVES", "curve_loss", "CurveRun", "CurveResult", "run_curve", "BOWL_MIN_LR", "BOWL_MIN_STEP"]

BOWL_MIN_LR = 0.01
BOWL_MIN_STEP = 901


def _bowl(u, lr, eps, noise):
    return 2.0 + 0.3 * (math.log10(max(lr, 1e-12)) + 2.0) ** 2 + noise * eps  # lr_T = 0 is clamped


def _flat(u, lr, eps, noise):
    return 2.0 + noise * eps


def _decreasing(u, lr, eps, noise):
    return 1.0 + 5.0 * math.exp(-u / 300.0) + noise * eps


def _nan(u, lr, eps, noise):
    return math.nan if lr >= 0.03 else _bowl(u, lr, eps, noise)


def _inf(u, lr, eps, noise):
    return math.inf if lr >= 0.03 else _bowl(u, lr, eps, noise)


def _jump(u, lr, eps, noise):
    return 20.0 if lr >= 0.03 else _bowl(u, lr, eps, noise)


def _flat_bowl(u, lr, eps, noise):
    return 2.5333 + 1e-4 * eps if u <= 500 else _bowl(u, lr, eps, noise)


def _nan_first_epoch(u, lr, eps, noise):
    return math.nan if u <= 50 else _bowl(u, lr, eps, noise)


CURVES: dict[str, Callable[[int, float, float, float], float]] = {
    "bowl": _bowl,
    "flat": _flat,
    "decreasing": _decreasing,
    "nan": _nan,
    "inf": _inf,
    "jump": _jump,
    "flat_bowl": _flat_bowl,
    "nan_first_epoch": _nan_first_epoch,
}


def curve_loss(curve: str, u: int, lr: float, eps: float, noise: float) -> float:
    """Loss of update u at LR lr for the named curve (DESIGN.md §7)."""
    if curve not in CURVES:
        raise ValueError(f"curve must be one of {sorted(CURVES)}; got {curve!r}")
    return CURVES[curve](u, lr, eps, noise)


class CurveResult(NamedTuple):
    lrs: list
    losses: list
    switch_step: int | None
    switch_lr: float | None
    peak_lr: float | None
    reason: str | None
    test_log: list
    test_seconds: float
    seconds: float


class CurveRun:
    """A resumable AutoWU run on a synthetic curve: a one-parameter SGD, the scheduler and the noise generator.

    `transform` maps the float loss to what step() receives (a tensor, a numpy scalar, ...).
    """

    def __init__(self, curve="bowl", noise=0.05, seed=0, steps_per_epoch=50, epochs=60, transform=None, **autowu_kw):
        if curve not in CURVES:
            raise ValueError(f"curve must be one of {sorted(CURVES)}; got {curve!r}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0; got {noise}")
        self.curve, self.noise, self.transform = curve, float(noise), transform
        self.param = torch.nn.Parameter(torch.zeros(1))
        self.optimizer = torch.optim.SGD([self.param], lr=0.1)
        self.scheduler = AutoWU(self.optimizer, steps_per_epoch, epochs, **autowu_kw)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.total_steps = steps_per_epoch * epochs
        self.u = 0
        self.lrs: list[float] = []
        self.losses: list[float] = []

    def run_until(self, u_end: int | None = None, callback=None) -> CurveRun:
        """Take updates u = self.u + 1 .. u_end (default T); callback(self) after each step."""
        u_end = self.total_steps if u_end is None else u_end
        fn = CURVES[self.curve]
        while self.u < u_end:
            self.u += 1
            lr = self.optimizer.param_groups[0]["lr"]
            lr = float(lr) if torch.is_tensor(lr) else lr
            eps = float(torch.randn((), generator=self.generator))
            loss = fn(self.u, lr, eps, self.noise)
            self.lrs.append(lr)
            self.losses.append(loss)
            self.scheduler.step(self.transform(loss) if self.transform else loss)
            if callback is not None:
                callback(self)
        return self

    def state_dict(self) -> dict:
        return {
            "u": self.u,
            "generator": self.generator.get_state(),
            "scheduler": self.scheduler.state_dict(),
            "lrs": list(self.lrs),
            "losses": list(self.losses),
        }

    def load_state_dict(self, st: dict) -> None:
        self.u = int(st["u"])
        self.generator.set_state(st["generator"])
        self.scheduler.load_state_dict(st["scheduler"])
        self.lrs, self.losses = list(st["lrs"]), list(st["losses"])

    def result(self, seconds: float = 0.0) -> CurveResult:
        s = self.scheduler
        log = s.test_log
        return CurveResult(
            list(self.lrs),
            list(self.losses),
            s.switch_step,
            s.switch_lr,
            s.peak_lr,
            s.switch_reason,
            log,
            sum(d["seconds"] for d in log),
            seconds,
        )


def run_curve(curve="bowl", noise=0.05, seed=0, steps_per_epoch=50, epochs=60, transform=None, **autowu_kw):
    """Run AutoWU over the whole curve and return a CurveResult (LR trace, switch step, eta_sw, peak, test log)."""
    t0 = time.perf_counter()
    run = CurveRun(curve, noise, seed, steps_per_epoch, epochs, transform, **autowu_kw)
    run.run_until()
    return run.result(time.perf_counter() - t0)
