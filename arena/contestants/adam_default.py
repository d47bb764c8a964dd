"""Baseline (self ruleset, no tuning at all): Adam at lr 1e-3, cosine to 0 over STEP_HINT (README.md §4)."""

from __future__ import annotations

import torch

from arena.contestants._common import backprop_step, with_schedule

NAME = "adam_default"
RULESET = "self"
SEARCH_SPACE: dict = {}
LR = 1e-3


def init(model, workload, hparams, budget):
    return with_schedule(torch.optim.Adam(model.parameters(), lr=LR), workload.STEP_HINT, 0.0)


def step(model, workload, batch, state, step):
    return backprop_step(model, workload, batch, state)
