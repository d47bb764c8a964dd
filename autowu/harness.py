"""The training harness shared by train.py and reproduce.py: optimizers, schedules, small models, a seeded loop.

One update = one mini-batch; AutoWU gets the mini-batch loss tensor after optimizer.step() (no host sync), the
baseline gets a LambdaLR step. Data order comes from a generator seeded 1000 + seed (DESIGN.md §6.2).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from autowu.scheduler import AutoWU
from autowu.schedules import BaselineFactor
from common.runs import Run, open_run, write_csv

__all__ = [
    "DEFAULT_WEIGHT_DECAY",
    "OPTIMIZERS",
    "make_optimizer",
    "make_scheduler",
    "FitResult",
    "fit_tensors",
    "evaluate",
    "build_small_model",
    "open_autowu_run",
    "write_rows_csv",
]

DEFAULT_WEIGHT_DECAY = {"adamp": 0.1, "lamb": 0.01, "adamw": 0.05, "sgd": 5e-5}
OPTIMIZERS = tuple(DEFAULT_WEIGHT_DECAY)


def make_optimizer(name: str, params, lr: float = 1e-3, weight_decay: float | None = None):
    """timm AdamP (betas .9/.999, eps 1e-8, delta .1, wd_ratio .1), timm Lamb (max_grad_norm 1), AdamW or SGD."""
    if name not in DEFAULT_WEIGHT_DECAY:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}; got {name!r}")
    wd = DEFAULT_WEIGHT_DECAY[name] if weight_decay is None else float(weight_decay)
    if wd < 0:
        raise ValueError(f"weight_decay must be >= 0; got {wd}")
    if name == "adamp":
        from timm.optim import AdamP

        return AdamP(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, delta=0.1, wd_ratio=0.1, weight_decay=wd)
    if name == "lamb":
        from timm.optim import Lamb

        return Lamb(params, lr=lr, weight_decay=wd, max_grad_norm=1.0)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd)


def make_scheduler(
    kind: str,
    optimizer,
    steps_per_epoch: int,
    epochs: int,
    *,
    peak: float | None = None,
    warmup_frac: float = 0.05,
    **autowu_kw,
):
    """'autowu' -> AutoWU(**autowu_kw); 'cosine' -> the DESIGN.md §6.2 baseline (linear warmup to `peak`, cosine)."""
    if kind == "autowu":
        return AutoWU(optimizer, steps_per_epoch, epochs, **autowu_kw)
    if kind == "cosine":
        if peak is None or not peak > 0:
            raise ValueError(f"the cosine baseline needs a peak lr > 0; got {peak}")
        for g in optimizer.param_groups:
            g["lr"] = peak
            g["initial_lr"] = peak
        return torch.optim.lr_scheduler.LambdaLR(optimizer, BaselineFactor(warmup_frac, steps_per_epoch * epochs))
    raise ValueError(f"schedule must be 'autowu' or 'cosine'; got {kind!r}")


@dataclass
class FitResult:
    test_acc: float
    test_loss: float
    train_loss: float
    lrs: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    switch_step: int | None = None
    switch_epoch: int | None = None
    switch_lr: float | None = None
    peak_lr: float | None = None
    reason: str | None = None
    test_log: list = field(default_factory=list)
    seconds: float = 0.0


@torch.no_grad()
def evaluate(model, x, y, batch_size=1024):
    """(accuracy in %, mean CE loss) of `model` in eval mode."""
    model.eval()
    correct, total_loss = 0, 0.0
    for i in range(0, x.shape[0], batch_size):
        out = model(x[i : i + batch_size])
        total_loss += float(F.cross_entropy(out, y[i : i + batch_size], reduction="sum"))
        correct += int((out.argmax(1) == y[i : i + batch_size]).sum())
    model.train()
    return 100.0 * correct / x.shape[0], total_loss / x.shape[0]


def fit_tensors(
    model, train, test, *, optimizer, scheduler, epochs: int, batch_size: int, seed: int, progress=None
) -> FitResult:
    """Train on in-memory tensors (x, y) for `epochs`; evaluate once at the end (DESIGN.md §6.2)."""
    t0 = time.perf_counter()
    x, y = train
    n = x.shape[0]
    steps = math.ceil(n / batch_size)
    gen = torch.Generator().manual_seed(1000 + seed)
    is_autowu = isinstance(scheduler, AutoWU)
    lrs, losses = [], []
    model.train()
    epoch_iter = range(epochs) if progress is None else progress(range(epochs))
    for _ in epoch_iter:
        perm = torch.randperm(n, generator=gen)
        epoch_losses = []
        for b in range(steps):
            idx = perm[b * batch_size : (b + 1) * batch_size]
            lrs.append(float(optimizer.param_groups[0]["lr"]))
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step(loss.detach()) if is_autowu else scheduler.step()
            epoch_losses.append(loss.detach())
        losses.extend(torch.stack(epoch_losses).tolist())
    acc, test_loss = evaluate(model, *test)
    res = FitResult(acc, test_loss, float(sum(losses[-steps:]) / steps), lrs, losses, seconds=time.perf_counter() - t0)
    if is_autowu:
        res.switch_step, res.switch_lr, res.peak_lr = scheduler.switch_step, scheduler.switch_lr, scheduler.peak_lr
        res.reason, res.test_log = scheduler.switch_reason, scheduler.test_log
        if res.switch_step is not None:
            res.switch_epoch = res.switch_step // steps
    return res


def build_small_model(name: str, width: int, data_kw: dict, num_classes: int = 10):
    """cnn1d_bn, cnn_bn or mlp from common.models, sized for the dataset."""
    from common.models import get_model

    if name == "cnn1d_bn":
        return get_model(
            "cnn1d_bn",
            in_channels=data_kw.get("in_channels", 1),
            num_classes=num_classes,
            width=width,
            length=data_kw.get("length", 40),
        )
    if name == "cnn_bn":
        return get_model(
            "cnn_bn",
            in_channels=data_kw.get("in_channels", 1),
            num_classes=num_classes,
            width=width,
            image_size=data_kw.get("image_size", 28),
        )
    if name == "mlp":
        in_features = data_kw.get("in_features")
        if in_features is None:
            in_features = data_kw.get("in_channels", 1) * (data_kw.get("length") or data_kw.get("image_size", 8) ** 2)
        return get_model("mlp", in_features=in_features, hidden=(8 * width, 8 * width), num_classes=num_classes)
    raise ValueError(f"small model must be one of cnn1d_bn, cnn_bn, mlp; got {name!r}")


def open_autowu_run(
    experiment: str,
    config,
    *,
    name: str | None = None,
    root: str | Path = "results",
    save_dir: str | Path | None = None,
    tensorboard: bool = False,
) -> Run:
    """The run folder of an AutoWU script: ``<root>/autowu/<experiment>/<name>``, or ``save_dir`` when given.

    ``--save-dir`` is the seed's flag and names the run folder itself; ``--out`` stays the results root.
    """
    if save_dir is None:
        return open_run("autowu", experiment, config, name=name, root=root, tensorboard=tensorboard)
    path = Path(save_dir)
    if path.name in ("", ".", ".."):
        path = path.resolve()
    return open_run("", "", config, name=path.name, root=path.parent, tensorboard=tensorboard)


def write_rows_csv(path: str | Path, rows: list[dict]) -> Path:
    """Write a list of dicts as one CSV table (header from the union of keys in order); an empty file if no rows.

    Run.log appends per-step rows to metrics.csv; tables written once at the end (test log, ramp, trace) go here.
    """
    path = Path(path)
    return write_csv(path, rows)
