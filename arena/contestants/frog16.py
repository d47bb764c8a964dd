"""forward_grad (external ruleset): training without backprop, frog forward gradients with K = 16 tangents and
plain SGD; the harness draws the LR over forward_grad's search range 10^-6 .. 10^0 (README.md §4).

The estimator runs in the paper's default node (activity) perturbation mode where the network is a sequence of
blocks (an nn.Sequential or a ``.blocks`` list) and in weight perturbation mode otherwise. It needs the workload's
per-output ``criterion``; a workload without one is n/a.
"""

from __future__ import annotations

import torch

from forward_grad.forward_gradient import ForwardGradient, model_blocks
from forward_grad.lr_search.search import SearchConfig

NAME = "frog16"
RULESET = "external"
K = 16
_LO, _HI = SearchConfig(mode="nn").limits
SEARCH_SPACE = {"lr": {"min": 10.0**_LO, "max": 10.0**_HI, "scaling": "log"}}


def applicable(workload) -> bool:
    return callable(getattr(workload, "criterion", None))


def _mode(model) -> str:
    try:
        model_blocks(model)
    except ValueError:
        return "weight"
    return "node"


def init(model, workload, hparams, budget):
    gen = torch.Generator().manual_seed(workload.spec.seed)
    est = ForwardGradient(K, "frog", perturbation_mode=_mode(model), generator=gen)
    return {"est": est, "opt": torch.optim.SGD(model.parameters(), lr=hparams["lr"])}


def step(model, workload, batch, state, step):
    opt = state["opt"]
    opt.zero_grad(set_to_none=True)
    result = state["est"].step(model, batch, loss_fn=workload.criterion)
    opt.step()
    return float(result.loss)
