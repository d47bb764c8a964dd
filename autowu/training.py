"""The shared training loop of train.py and reproduce.py: optimizers, schedules and a seeded in-memory loop.

One update = one mini-batch; AutoWU gets the mini-batch loss tensor after optimizer.step() (no host sync), the
baseline gets a LambdaLR step. Data order comes from a generator seeded 1000 + seed (spec section 6).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from autowu.scheduler import AutoWU
from autowu.schedules import BaselineFactor

__all__ = [
    "DEFAULT_WEIGHT_DECAY",
    "OPTIMIZERS",
    "OFFLINE_DATASETS",
    "make_optimizer",
    "make_scheduler",
    "FitResult",
    "fit_tensors",
    "evaluate",
    "load_offline",
    "build_small_model",
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
    """'autowu' -> AutoWU(**autowu_kw); 'cosine' -> the section 6 baseline (linear warmup to `peak`, cosine)."""
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
    """Train on in-memory tensors (x, y) for `epochs`; evaluate once at the end (spec section 6)."""
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


OFFLINE_DATASETS = ("digits", "mnist5k", "mnist1d", "synthetic")


def load_offline(name: str, root="data"):
    """(train (x, y), test (x, y), model kwargs) for an offline dataset (spec section 5).

    digits and mnist5k: stratified 80/20 split with random_state 0; mnist1d: 4000/1000 x 40 as (N, 1, 40);
    synthetic: the teacher-student set (20 features).
    """
    from common.data import get_dataset

    if name not in OFFLINE_DATASETS:
        raise ValueError(
            f"dataset must be one of {list(OFFLINE_DATASETS)} (or imagenet with --data-root); got {name!r}"
        )
    if name == "mnist1d":
        (x, y), (xt, yt) = (get_dataset("mnist1d", s, root=root).tensors for s in ("train", "test"))
        return (x[:, None], y), (xt[:, None], yt), {"in_channels": 1, "length": x.shape[-1]}
    if name == "synthetic":
        (x, y), (xt, yt) = (get_dataset("teacher_student", s, root=root).tensors for s in ("train", "test"))
        return (x, y), (xt, yt), {"in_features": x.shape[-1]}
    from sklearn.model_selection import train_test_split

    x, y = get_dataset(name, "all", root=root).tensors
    idx = torch.arange(x.shape[0])
    tr, te = train_test_split(idx.numpy(), test_size=0.2, stratify=y.numpy(), random_state=0)
    tr, te = torch.as_tensor(tr), torch.as_tensor(te)
    return (x[tr], y[tr]), (x[te], y[te]), {"in_channels": x.shape[1], "image_size": x.shape[-1]}


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
