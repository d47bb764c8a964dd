"""Stacked multi-LR training: step 1 of the method (find eta_base by a grid search), G learning rates at once.

All G copies start from one seeded init and see one minibatch order, so stacked training equals the sequential
grid search (DESIGN.md §6, lr_sweep). Modes (``stack=``):
  bmm   DagMLP fast path: parameters carry a leading G dim; one batched forward/backward per step.
  vmap  any module: torch.func.stack_module_state-style stacking + vmap(grad(functional_call)); BN through
        torch.func.replace_all_batch_norm_modules_ (batch statistics, no running stats).
  none  each LR in turn as an nn.Module with torch.optim.SGD (the oracle and the benchmark baseline).
A copy whose loss turns non-finite is frozen (no more updates) and masked; its loss then counts as +inf.
Updates follow torch.optim.SGD: d = g + wd p; b = mu b + d (b = d at the first step); d = d + mu b (Nesterov) or b;
p <- p - eta d.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hp_scaling.loaders import ArrayData, batch_order
from hp_scaling.models.mlp_dags import DagMLP

__all__ = ["STACK_MODES", "StackedResult", "train_lrs", "resolve_stack"]

STACK_MODES = ("auto", "bmm", "vmap", "none")


@dataclass(frozen=True)
class StackedResult:
    """Per-LR results: ``losses`` (steps, G) per-step minibatch losses (inf after divergence)."""

    lrs: tuple[float, ...]
    losses: torch.Tensor
    diverged_step: tuple[int, ...]  # -1 when the copy never diverged
    steps: int
    mode: str

    @property
    def mean_loss(self) -> torch.Tensor:
        """Epoch-mean minibatch training loss per LR (+inf for diverged copies)."""
        return self.losses.mean(0)

    @property
    def final_loss(self) -> torch.Tensor:
        """Mean loss over the last 10% of steps (at least one step) per LR."""
        k = max(1, math.ceil(0.1 * self.steps))
        return self.losses[-k:].mean(0)


def resolve_stack(mode: str, model: nn.Module) -> str:
    """auto -> bmm for a DagMLP without BN, else vmap."""
    if mode not in STACK_MODES:
        raise ValueError(f"stack must be one of {STACK_MODES}, got {mode!r}")
    bmm_ok = isinstance(model, DagMLP) and len(model.norms) == 0
    if mode == "auto":
        return "bmm" if bmm_ok else "vmap"
    if mode == "bmm" and not bmm_ok:
        raise ValueError("--stack bmm needs a DagMLP without --bn; use --stack vmap")
    return mode


def _schedule(data: ArrayData, batch_size: int, epochs: int, steps: int | None, seed: int):
    batches = []
    for e in range(epochs):
        batches.extend(batch_order(len(data), batch_size, seed, e, drop_last=True))
        if steps is not None and len(batches) >= steps:
            break
    return batches[:steps] if steps is not None else batches


def _sgd_update(params, grads, bufs, neg_lr, momentum, weight_decay, nesterov, first):
    """In-place SGD on stacked tensors (every copy here is alive); neg_lr has shape (G,)."""
    lr2 = neg_lr.view(-1, 1)
    for name, p in params.items():
        d = grads[name]
        if weight_decay:
            d = d + weight_decay * p
        if momentum:
            bufs[name] = d.clone() if first else bufs[name].mul_(momentum).add_(d)
            d = d + momentum * bufs[name] if nesterov else bufs[name]
        g_count = p.shape[0]
        p.view(g_count, -1).addcmul_(lr2, d.reshape(g_count, -1))  # 2-D broadcast: twice as fast as 3-D


def _group_by_source(model: DagMLP, params: dict) -> tuple[dict, list]:
    """Stacked parameters regrouped for the bmm path: the Linear edges leaving node s become one (G, n, k*n) block.

    One batched matmul per source node then replaces one per edge (the complete 5-node DAG: 4 instead of 10), and
    act(z_s) is computed once per node. Weights are stored transposed ((G, in, out), contiguous): the forward
    matmul reads them without a transposed view and autograd returns contiguous weight gradients, so the SGD
    update never copies. Returns the new parameter dict and the plan: per source s, the targets of its Linear
    edges (in order) and of its skip edges. Only the stacked trainer sees this layout.
    """
    n = model.dag.n_nodes
    plan = []
    grouped = {}
    for key in ("stem", "readout"):
        grouped[f"{key}.weight"] = params[f"{key}.weight"].transpose(1, 2).contiguous()
        if f"{key}.bias" in params:
            grouped[f"{key}.bias"] = params[f"{key}.bias"]
    for s in range(n - 1):
        lin = [t for (ss, t, par) in model.edge_list if ss == s and par]
        skip = [t for (ss, t, par) in model.edge_list if ss == s and not par]
        if lin:
            weight = torch.cat([params[f"edges.{s}_{t}.weight"] for t in lin], dim=1)
            grouped[f"src{s}.weight"] = weight.transpose(1, 2).contiguous()
            if f"edges.{s}_{lin[0]}.bias" in params:
                grouped[f"src{s}.bias"] = torch.cat([params[f"edges.{s}_{t}.bias"] for t in lin], dim=1)
        plan.append((s, lin, skip))
    return grouped, plan


def _grouped_forward(plan, n_nodes, params, x, act, block, width):
    """Logits (G, B, classes) of the stacked DagMLP; the same sums as ``dag_forward``, in the same order."""
    g = params.get
    h0 = torch.matmul(x, params["stem.weight"])
    if g("stem.bias") is not None:
        h0 = h0 + g("stem.bias").unsqueeze(-2)
    acc: list = [None] * n_nodes
    acc[0] = h0 if block == "pre" else act(h0)
    for s, lin, skip in plan:
        node = acc[s] if acc[s] is not None else torch.zeros_like(acc[0])
        acc[s] = node
        if lin:
            src = act(node) if block == "pre" else node
            y = torch.matmul(src, params[f"src{s}.weight"])
            if g(f"src{s}.bias") is not None:
                y = y + g(f"src{s}.bias").unsqueeze(-2)
            if block == "post":
                y = act(y)
            for t, part in zip(lin, y.split(width, dim=-1)):
                acc[t] = part if acc[t] is None else acc[t] + part
        for t in skip:
            acc[t] = node if acc[t] is None else acc[t] + node
    last = acc[-1] if acc[-1] is not None else torch.zeros_like(acc[0])
    last = act(last) if block == "pre" else last
    out = torch.matmul(last, params["readout.weight"])
    return out if g("readout.bias") is None else out + g("readout.bias").unsqueeze(-2)


def _train_stacked(model, data, lrs, batches, mode, momentum, weight_decay, nesterov):
    """Stacked SGD; diverged copies are dropped from the stack (frozen), so they cost nothing afterwards."""
    dev = next(model.parameters()).device
    g_count = len(lrs)
    alive = list(range(g_count))  # stack position -> LR index
    neg_lr = -torch.tensor(lrs, dtype=torch.float32, device=dev)
    diverged = [-1] * g_count
    params = {k: v.detach().unsqueeze(0).repeat(g_count, *([1] * v.dim())) for k, v in model.named_parameters()}
    bufs: dict[str, torch.Tensor] = {}
    losses = torch.full((len(batches), g_count), math.inf)
    buffers = {}
    if mode == "bmm":
        params, plan = _group_by_source(model, params)

        def logits_of(p, x):
            return _grouped_forward(plan, model.dag.n_nodes, p, x, model._act, model.block, model.width)

    if mode == "vmap":
        from torch.func import functional_call, grad, replace_all_batch_norm_modules_, vmap

        base = copy.deepcopy(model)
        replace_all_batch_norm_modules_(base)
        buffers = {k: v.unsqueeze(0).repeat(g_count, *([1] * v.dim())) for k, v in base.named_buffers()}

        def loss_fn(p, b, x, y):
            out = F.cross_entropy(functional_call(base, (p, b), (x,)), y)
            return out, out.detach()

        grad_fn = vmap(grad(loss_fn, has_aux=True), in_dims=(0, 0, None, None))
    for step, idx in enumerate(batches):
        if not alive:
            break
        xb, yb = data.batch(idx)
        if mode == "bmm":
            for v in params.values():
                v.requires_grad_(True)
            logits = logits_of(params, xb.flatten(1))
            per = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.repeat(len(alive)), reduction="none")
            loss_g = per.view(len(alive), -1).mean(1)
        else:
            grads, loss_g = grad_fn(params, buffers, xb, yb)
        values = loss_g.detach().cpu()
        finite = torch.isfinite(values)
        losses[step, alive] = values.float()
        if not bool(finite.all()):
            keep = torch.nonzero(finite).flatten()
            for pos in torch.nonzero(~finite).flatten().tolist():
                diverged[alive[pos]] = step
                losses[step, alive[pos]] = math.inf
            alive = [alive[i] for i in keep.tolist()]
            if not alive:
                break
            kd = keep.to(dev)
            params = {k: v.detach()[kd] for k, v in params.items()}
            bufs = {k: v[kd] for k, v in bufs.items()}
            buffers = {k: v[kd] for k, v in buffers.items()}
            neg_lr = neg_lr[kd]
            if mode == "bmm":  # recompute on the survivors only (same values: copies are independent)
                for v in params.values():
                    v.requires_grad_(True)
                logits = logits_of(params, xb.flatten(1))
                per = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.repeat(len(alive)), reduction="none")
                loss_g = per.view(len(alive), -1).mean(1)
            else:
                grads = {k: v[kd] for k, v in grads.items()}
        if mode == "bmm":
            gl = torch.autograd.grad(loss_g.sum(), list(params.values()), allow_unused=True)
            # parameters on edges that cannot reach the output get no gradient
            grads = {k: torch.zeros_like(v) if g is None else g for (k, v), g in zip(params.items(), gl)}
            params = {k: v.detach() for k, v in params.items()}
        with torch.no_grad():
            _sgd_update(params, grads, bufs, neg_lr, momentum, weight_decay, nesterov, step == 0)
    return losses, diverged


def _train_sequential(model, data, lrs, batches, momentum, weight_decay, nesterov):
    losses = torch.full((len(batches), len(lrs)), math.inf)
    diverged = [-1] * len(lrs)
    for gi, lr in enumerate(lrs):
        m = copy.deepcopy(model)
        m.train()
        opt = torch.optim.SGD(m.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
        for step, idx in enumerate(batches):
            xb, yb = data.batch(idx)
            loss = F.cross_entropy(m(xb), yb)
            if not torch.isfinite(loss):
                diverged[gi] = step
                break
            losses[step, gi] = loss.item()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return losses, diverged


def train_lrs(
    model: nn.Module,
    data: ArrayData,
    lrs,
    *,
    batch_size: int = 16,
    epochs: int = 1,
    steps: int | None = None,
    seed: int = 0,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    stack: str = "auto",
    max_stack: int | None = None,
) -> StackedResult:
    """Train one copy of ``model`` per learning rate in ``lrs`` (plain SGD, CE loss) on one batch order.

    Batches come from ``batch_order(len(data), batch_size, seed, epoch, drop_last=True)``; ``steps`` caps the
    total. ``max_stack`` chunks the LRs (every chunk restarts from the same init and order).
    """
    lrs = tuple(float(v) for v in lrs)
    if not lrs or any(not (v > 0 and math.isfinite(v)) for v in lrs):
        raise ValueError(f"learning rates must be positive and finite, got {lrs}")
    if batch_size < 1 or epochs < 1 or (steps is not None and steps < 1):
        raise ValueError(f"batch_size, epochs and steps must be >= 1, got {batch_size}, {epochs}, {steps}")
    if nesterov and momentum <= 0:
        raise ValueError("nesterov needs momentum > 0")
    mode = resolve_stack(stack, model)
    batches = _schedule(data, batch_size, epochs, steps, seed)
    if not batches:
        raise ValueError(f"no full batch of {batch_size} in {len(data)} samples")
    chunk = max_stack or len(lrs)
    if chunk < 1:
        raise ValueError(f"max_stack must be >= 1, got {max_stack}")
    parts, div = [], []
    for i in range(0, len(lrs), chunk):
        sub = lrs[i : i + chunk]
        if mode == "none":
            losses, d = _train_sequential(model, data, sub, batches, momentum, weight_decay, nesterov)
        else:
            losses, d = _train_stacked(model, data, sub, batches, mode, momentum, weight_decay, nesterov)
        parts.append(losses)
        div.extend(d)
    return StackedResult(lrs, torch.cat(parts, 1), tuple(div), len(batches), mode)
