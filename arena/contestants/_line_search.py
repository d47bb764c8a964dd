"""Shared init/step of the line_search contestants: the optimizer at its class defaults, driven by a closure."""

from __future__ import annotations

from typing import Any


def make_init(cls):
    def init(model, workload, hparams, budget) -> dict[str, Any]:
        # class defaults only (README.md §4); `model` lets the optimizer restore BatchNorm statistics after trials,
        # `seed` fixes its own generator for the replayed dropout masks
        return {"opt": cls(model.parameters(), model=model, seed=workload.spec.seed)}

    return init


def step(model, workload, batch, state, step) -> float:
    opt = state["opt"]
    opt.zero_grad(set_to_none=True)
    loss = opt.step(closure=lambda: workload.loss(model, batch))
    return float(loss)
