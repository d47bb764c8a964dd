"""hp_scaling (external on a family's base workload, 0 trials on the other members) (README.md §4).

SGD with momentum 0.9 and cosine decay over STEP_HINT on networks with the paper's init (eq. 4, built by the
workload). On the family's base workload the harness tunes the learning rate like any external contestant; on the
other members no trial is drawn: the LR is the base's best LR times the eq. 8 multiplier ratio
``lr_multiplier(member) / lr_multiplier(base)`` and the base search is charged to the member's total cost. Outside a
DAG family the method does not apply (n/a).
"""

from __future__ import annotations

import torch

from arena.contestants._common import backprop_step, with_schedule
from hp_scaling.scaling import lr_multiplier

NAME = "arch_scaled"
RULESET = "external"
SEARCH_SPACE = {"lr": {"min": 1e-3, "max": 1.0, "scaling": "log"}}


def applicable(workload) -> bool:
    return getattr(workload, "FAMILY", None) is not None and getattr(workload, "DAG", None) is not None


def transfer(base_hparams: dict, base_workload, workload) -> dict:
    """eq. 8: eta_member = eta_base * sqrt(S_base / S_member) (the multipliers' ratio)."""
    ratio = lr_multiplier(workload.DAG, "mlp") / lr_multiplier(base_workload.DAG, "mlp")
    return {**base_hparams, "lr": base_hparams["lr"] * ratio, "lr_base": base_hparams["lr"], "ratio": ratio}


def init(model, workload, hparams, budget):
    opt = torch.optim.SGD(model.parameters(), lr=hparams["lr"], momentum=0.9)
    return with_schedule(opt, workload.STEP_HINT, 0.0)


def step(model, workload, batch, state, step):
    return backprop_step(model, workload, batch, state)
