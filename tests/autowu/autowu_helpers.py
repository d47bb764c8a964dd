"""Shared recipes and helpers for the AutoWU tests (DESIGN.md §7); imported as `autowu_helpers`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from autowu import AutoWU


@dataclass(frozen=True)
class Recipe:
    """One AutoWU mode: constructor kwargs and capability fields."""

    name: str
    kwargs: dict = field(default_factory=dict)
    immediate: bool = True


RECIPES = [
    Recipe("cosine", {}),
    Recipe("const_cos", {"immediate_cooldown": False}, immediate=False),
    Recipe("const_cos_f09", {"immediate_cooldown": False, "decay_phase_factor": 0.9}, immediate=False),
    Recipe(
        "plateau", {"immediate_cooldown": False, "decay_phase_stat": "loss", "decay_phase_factor": 0.5}, immediate=False
    ),
    Recipe("half_cosine", {"cooldown_type": "half_cosine"}),
    Recipe("linear", {"warmup_type": "linear"}),
    Recipe("epoch", {"warmup_unit": "epoch"}),
    Recipe("adam_fit", {"gp_fit": "adam", "gp_fit_iters": 20}),  # fewer Adam iterations keep the row cheap
    Recipe("ignore", {"on_nonfinite": "ignore"}),
]

# a short setting for contract tests: S = 10, E = 20, T = 200, W = 100, tests at 10..90
SHORT = {"steps_per_epoch": 10, "epochs": 20}


def make_sched(optimizer=None, s=50, e=60, **kw):
    if optimizer is None:
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    return optimizer, AutoWU(optimizer, s, e, **kw)


def drive(sched, losses):
    """Step the scheduler with each loss; return the LR used by every update (group 0)."""
    lrs = []
    for loss in losses:
        lr = sched.optimizer.param_groups[0]["lr"]
        lrs.append(float(lr))
        sched.step(loss)
    return lrs


def assert_rel(actual, expected, rel, what):
    assert math.isclose(actual, expected, rel_tol=rel, abs_tol=0.0), f"{what}: got {actual!r}, expected {expected!r}"
