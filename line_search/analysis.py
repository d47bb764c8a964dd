"""Diagnostics for the notebooks (DESIGN.md §10): Adam directions at a step, losses along a search line, their cosine.

d_pre = P*g (tested by AdamSLS and SaLSa), d_mom = P*m_hat (tested and taken by KenSLS), with
P = 1/(sqrt(v_hat) + eps) read from an optimizer's exp_avg / exp_avg_sq after step t (A1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

__all__ = ["adam_directions", "line_losses", "cosine"]


@torch.no_grad()
def adam_directions(opt) -> dict[str, list[torch.Tensor]]:
    """P*g and P*m_hat of the last step of an Adam-family ArmijoLineSearch (grads must still be in p.grad)."""
    t = opt.step_count
    out: dict[str, list[torch.Tensor]] = {"precond": [], "momentum": [], "grad": []}
    for g in opt.param_groups:
        b1, b2 = g["betas"]
        for p in g["params"]:
            if p.grad is None:
                continue
            st = opt.state[p]
            P = 1.0 / ((st["exp_avg_sq"] / (1 - b2**t)).sqrt() + g["eps"])
            out["precond"].append(P * p.grad)
            out["momentum"].append(P * st["exp_avg"] / (1 - b1**t))
            out["grad"].append(p.grad.clone())
    return out


def slope(grads: Sequence[torch.Tensor], d: Sequence[torch.Tensor]) -> float:
    """phi = g.d in float64 (A3)."""
    return sum(torch.sum(g * x, dtype=torch.float64).item() for g, x in zip(grads, d))


def cosine(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    """Cosine between two directions given as lists of tensors."""
    ab = slope(a, b)
    na, nb = math.sqrt(slope(a, a)), math.sqrt(slope(b, b))
    return ab / (na * nb) if na > 0 and nb > 0 else float("nan")


@torch.no_grad()
def line_losses(
    params: Sequence[torch.Tensor], w0: Sequence[torch.Tensor], d: Sequence[torch.Tensor], etas, loss_fn: Callable
) -> list[float]:
    """f(w0 - eta*d) for each eta; the parameters are restored to their current values afterwards."""
    keep = [p.detach().clone() for p in params]
    out = []
    for eta in etas:
        for p, w, x in zip(params, w0, d):
            p.copy_(w - eta * x)
        out.append(float(loss_fn()))
    for p, k in zip(params, keep):
        p.copy_(k)
    return out


def armijo_traces(steps: int = 300, snaps=(1, 50, 300), seed: int = 0, n_etas: int = 40) -> dict:
    """Train KenSLS on the digits MLP (batch 32) and record, at the `snaps` steps, f(w0 - eta*d) on that step's batch
    for d = P*g and d = P*m_hat over a log grid of eta, with phi, c and the accepted eta; and per step the cosine
    between P*g and P*m_hat and whether KenSLS fell back to P*g (A3)."""
    from torch import nn

    from line_search.harness.data import load_task
    from line_search.sls import KenSLS

    x, y = load_task("digits").train.tensors
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)
    )
    opt = KenSLS(model.parameters(), seed=seed)
    crit = nn.CrossEntropyLoss()
    params = list(model.parameters())
    gen = torch.Generator().manual_seed(seed)
    etas = torch.logspace(-5, 1, n_etas).tolist()
    out = {"etas": etas, "c": opt.c, "snaps": {}, "cos": [], "fallback": [], "eta": []}
    order = torch.cat([torch.randperm(len(y), generator=gen) for _ in range(steps * 32 // len(y) + 1)])
    for k in range(1, steps + 1):
        idx = order[(k - 1) * 32 : k * 32]
        bx, by = x[idx], y[idx]
        w0 = [p.detach().clone() for p in params]
        opt.zero_grad()
        f0 = opt.step(lambda bx=bx, by=by: crit(model(bx), by)).item()
        dirs = adam_directions(opt)
        out["cos"].append(cosine(dirs["precond"], dirs["momentum"]))
        out["fallback"].append(bool(opt.diagnostics["fallback"]))
        out["eta"].append(opt.eta)
        if k in snaps:
            snap = {"f0": f0, "eta_acc": opt.eta}
            for name in ("precond", "momentum"):
                snap[name] = line_losses(params, w0, dirs[name], etas, lambda bx=bx, by=by: crit(model(bx), by))
                snap[f"phi_{name}"] = slope(dirs["grad"], dirs[name])
            out["snaps"][k] = snap
    return out
