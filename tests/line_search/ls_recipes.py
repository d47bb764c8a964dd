"""Shared recipes and helpers for the line_search tests (one table, one place for all test files)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from line_search.sls import SLS, AdamSLS, ArmijoLineSearch, KenSLS, SaLSa


@dataclass(frozen=True)
class Recipe:
    cls: type
    kwargs: dict = field(default_factory=dict)
    moments: bool = True  # has Adam state (exp_avg, exp_avg_sq)
    fails_at_eta_min: bool = True  # forced failure ends at eta_min (else at max_trials)

    @property
    def name(self) -> str:
        return self.cls.__name__


RECIPES = [
    Recipe(SLS, moments=False, fails_at_eta_min=False),
    Recipe(AdamSLS),
    Recipe(KenSLS, fails_at_eta_min=False),
    Recipe(SaLSa),
]
IDS = [r.name for r in RECIPES]


def mlp(seed: int = 0, dropout: float = 0.0, dtype=torch.float32, norm: bool = False) -> nn.Module:
    """The 64-128-128-10 ReLU MLP of DESIGN.md §5 (optionally with dropout or BatchNorm)."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(64, 128)]
    if norm:
        layers.append(nn.BatchNorm1d(128))
    layers += [nn.ReLU(), nn.Dropout(dropout), nn.Linear(128, 128), nn.ReLU(), nn.Dropout(dropout), nn.Linear(128, 10)]
    return nn.Sequential(*layers).to(dtype)


def batches(x: torch.Tensor, y: torch.Tensor, n_steps: int, batch: int = 32, seed: int = 0):
    """Yield n_steps shuffled mini-batches (epochs of a seeded permutation)."""
    g = torch.Generator().manual_seed(seed)
    step = 0
    while True:
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), batch):
            if step == n_steps:
                return
            idx = perm[i : i + batch]
            yield x[idx], y[idx]
            step += 1


def train(opt, model, x, y, n_steps: int, seed: int = 0, skip: int = 0):
    """Run `n_steps` seed-style steps (zero-argument closure); returns the list of returned losses."""
    crit = nn.CrossEntropyLoss()
    losses = []
    for i, (bx, by) in enumerate(batches(x, y, skip + n_steps, seed=seed)):
        if i < skip:
            continue
        opt.zero_grad()
        if isinstance(opt, ArmijoLineSearch):
            losses.append(opt.step(closure=lambda bx=bx, by=by: crit(model(bx), by)).item())
        else:  # a torch.optim baseline: plain backward, then step
            loss = crit(model(bx), by)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


def flat_params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])
