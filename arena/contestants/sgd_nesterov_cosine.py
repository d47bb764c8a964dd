"""Baseline (external ruleset): SGD with Nesterov momentum 0.9, 5% linear warmup, cosine to 0 over STEP_HINT
(README.md §4); the harness draws learning rate and weight decay."""

from __future__ import annotations

import torch

from arena.contestants._common import backprop_step, with_schedule

NAME = "sgd_nesterov_cosine"
RULESET = "external"
SEARCH_SPACE = {
    "lr": {"min": 1e-3, "max": 1.0, "scaling": "log"},
    "weight_decay": {"min": 1e-6, "max": 1e-2, "scaling": "log"},
}
WARMUP = 0.05


def init(model, workload, hparams, budget):
    opt = torch.optim.SGD(
        model.parameters(), lr=hparams["lr"], momentum=0.9, nesterov=True, weight_decay=hparams["weight_decay"]
    )
    return with_schedule(opt, workload.STEP_HINT, WARMUP)


def step(model, workload, batch, state, step):
    return backprop_step(model, workload, batch, state)
