"""A user's own contestant as one file: Adam at lr 5e-3, no schedule (self ruleset)."""

from __future__ import annotations

import torch

NAME = "plugin_half_adam"
RULESET = "self"


def init(model, workload, hparams, budget):
    return torch.optim.Adam(model.parameters(), lr=5e-3)


def step(model, workload, batch, state, step):
    state.zero_grad()
    loss = workload.loss(model, batch)
    loss.backward()
    state.step()
    return float(loss.detach())
