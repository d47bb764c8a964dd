"""autowu (self ruleset): AdamW at autowu's defaults (weight decay 0.05) under the AutoWU scheduler at its defaults,
with T = STEP_HINT steps (README.md §4).

An AutoWU epoch is one pass over the workload's training set (S = n_train // BATCH_SIZE steps); the epoch count is
chosen so that S * E is the step hint rounded to whole epochs.
"""

from __future__ import annotations

from autowu import AutoWU
from autowu.training import make_optimizer

NAME = "autowu_adamw"
RULESET = "self"
SEARCH_SPACE: dict = {}


def init(model, workload, hparams, budget):
    opt = make_optimizer("adamw", model.parameters())
    steps_per_epoch = max(1, workload.n_train // workload.BATCH_SIZE)
    epochs = max(1, round(workload.STEP_HINT / steps_per_epoch))
    return {"opt": opt, "sched": AutoWU(opt, steps_per_epoch, epochs, seed=workload.spec.seed)}


def step(model, workload, batch, state, step):
    opt, sched = state["opt"], state["sched"]
    opt.zero_grad(set_to_none=True)
    loss = workload.loss(model, batch)
    loss.backward()
    opt.step()
    sched.step(loss.detach())
    return float(loss.detach())
