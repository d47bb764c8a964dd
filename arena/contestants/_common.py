"""Helpers of the contestant files: the warmup-cosine schedule and the plain backprop step (README.md §4)."""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["warmup_cosine", "backprop_step", "with_schedule"]


def warmup_cosine(total_steps: int, warmup_fraction: float = 0.0):
    """LR factor for LambdaLR: linear warmup over warmup_fraction * total, then cosine to 0 at total (0 after)."""
    warm = int(round(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if step >= total_steps:
            return 0.0
        progress = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def with_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float = 0.0) -> dict[str, Any]:
    """State of a scheduled backprop contestant: the optimizer and its warmup-cosine LambdaLR."""
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, warmup_fraction))
    return {"opt": optimizer, "sched": sched}


def backprop_step(model, workload, batch, state: dict[str, Any]) -> float:
    """zero_grad, loss, backward, optimizer step, scheduler step; returns the batch loss."""
    opt = state["opt"]
    opt.zero_grad(set_to_none=True)
    loss = workload.loss(model, batch)
    loss.backward()
    opt.step()
    if state.get("sched") is not None:
        state["sched"].step()
    return float(loss.detach())
