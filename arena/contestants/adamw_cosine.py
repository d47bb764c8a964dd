"""Baseline (external ruleset): AdamW, linear warmup then cosine to 0 over STEP_HINT (README.md §4).

The harness draws learning rate, weight decay and warmup fraction from SEARCH_SPACE for every trial.
"""

from __future__ import annotations

import torch

from arena.contestants._common import backprop_step, with_schedule

NAME = "adamw_cosine"
RULESET = "external"
SEARCH_SPACE = {
    "lr": {"min": 1e-4, "max": 3e-2, "scaling": "log"},
    "weight_decay": {"min": 1e-5, "max": 1e-1, "scaling": "log"},
    "warmup": {"min": 0.0, "max": 0.1, "scaling": "linear"},
}


def init(model, workload, hparams, budget):
    opt = torch.optim.AdamW(model.parameters(), lr=hparams["lr"], weight_decay=hparams["weight_decay"])
    return with_schedule(opt, workload.STEP_HINT, hparams.get("warmup", 0.05))


def step(model, workload, batch, state, step):
    return backprop_step(model, workload, batch, state)
