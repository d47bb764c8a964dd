"""Single-model training loop shared by main.py and nb201_compare.py (DESIGN.md §7, 4).

SGD with optional momentum/Nesterov/weight decay, CE loss, per-step linear warmup to the (scaled) LR and an optional
cosine decay stepped per epoch (T_max = epochs, eta_min = 0), both in closed form:
    lr(t) = eta * min(1, (t + 1) / (warmup * steps_per_epoch)) * (0.5 (1 + cos(pi * epoch / epochs)) if decreasing)
A non-finite training loss stops the run with status "diverged". Top-1 accuracy is over all classes (decision 4).
Checkpoints (atomic, latest epoch) hold model, optimizer, scheduler and RNG states; batch order and augmentation are
drawn from generators seeded by (seed, epoch), so a resumed CPU run is bit-identical.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from common.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from hp_scaling.loaders import ArrayData, batch_order
from hp_scaling.tables import write_table

__all__ = ["TrainConfig", "TrainResult", "WarmupCosine", "evaluate", "lr_factor", "per_class_recall", "top1", "train"]


def lr_factor(step: int, steps_per_epoch: int, epochs: int, warmup_epochs: float, decreasing: bool) -> float:
    """Closed-form LR factor at global step ``step`` (0-based): linear warmup per step times per-epoch cosine."""
    w = warmup_epochs * steps_per_epoch
    warm = min(1.0, (step + 1) / w) if w > 0 else 1.0
    epoch = step // max(steps_per_epoch, 1)
    cos = 0.5 * (1.0 + math.cos(math.pi * epoch / epochs)) if decreasing else 1.0
    return warm * cos


class WarmupCosine(torch.optim.lr_scheduler.LRScheduler):
    """Per-step scheduler: lr = base_lr * lr_factor(step, ...) (closed form, no chained factors)."""

    def __init__(
        self,
        optimizer,
        steps_per_epoch: int,
        epochs: int,
        warmup_epochs: float = 0.0,
        decreasing: bool = False,
        last_epoch: int = -1,
    ):
        self.steps_per_epoch, self.epochs = steps_per_epoch, epochs
        self.warmup_epochs, self.decreasing = warmup_epochs, decreasing
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t = max(self.last_epoch, 0)
        f = lr_factor(t, self.steps_per_epoch, self.epochs, self.warmup_epochs, self.decreasing)
        return [base * f for base in self.base_lrs]


def top1(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Standard top-1 accuracy over all classes."""
    return (logits.argmax(1) == y).float().mean().item()


def per_class_recall(pred: torch.Tensor, y: torch.Tensor, num_classes: int) -> float:
    """Mean per-class recall over the classes present in ``y``."""
    recalls = []
    for c in range(num_classes):
        mask = y == c
        if mask.any():
            recalls.append((pred[mask] == c).float().mean().item())
    return sum(recalls) / len(recalls) if recalls else math.nan


@torch.no_grad()
def evaluate(model: nn.Module, data: ArrayData, batch_size: int = 512) -> dict:
    """Test loss (nats), top-1 accuracy and mean per-class recall."""
    was = model.training
    model.eval()
    total, correct, preds = 0.0, 0, []
    for i in range(0, len(data), batch_size):
        idx = torch.arange(i, min(i + batch_size, len(data)))
        xb, yb = data.batch(idx)
        out = model(xb)
        total += F.cross_entropy(out, yb, reduction="sum").item()
        p = out.argmax(1)
        correct += (p == yb).sum().item()
        preds.append(p)
    model.train(was)
    pred = torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)
    n = max(len(data), 1)
    return {
        "test_loss": total / n,
        "test_acc": correct / n,
        "test_acc_per_class": per_class_recall(pred, data.y[: len(pred)], data.num_classes),
    }


@dataclass
class TrainConfig:
    epochs: int = 1
    steps: int | None = None
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False
    warmup: float = 0.0
    decreasing_lr: bool = False
    aug_pad: int = 0
    seed: int = 0
    per_class_acc: bool = False

    def validate(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.epochs < 1 or (self.steps is not None and self.steps < 1):
            raise ValueError(f"epochs and steps must be >= 1, got {self.epochs}, {self.steps}")
        if self.momentum < 0 or self.weight_decay < 0 or self.warmup < 0:
            raise ValueError("momentum, weight_decay and warmup must be >= 0")
        if self.nesterov and self.momentum <= 0:
            raise ValueError("--nesterov needs --momentum > 0")


@dataclass
class TrainResult:
    status: str
    final_test_acc: float
    best_test_acc: float
    final_train_loss: float
    epochs_done: int
    wall_s: float
    history: list = field(default_factory=list)
    steps: list = field(default_factory=list)


@dataclass
class _State:
    """The loop's mutable state, saved in and restored from checkpoint.pt."""

    history: list = field(default_factory=list)
    steps: list = field(default_factory=list)
    epoch: int = 0
    best: float = 0.0
    status: str = "ok"


CHECKPOINT_VERSION = 1


def _restore(ckpt: Path, model, opt, sched) -> _State:
    state = load_checkpoint(ckpt)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return _State(state["history"], state["steps"], state["epoch"], state["best"], state.get("status", "ok"))


def _save(ckpt: Path, model, opt, sched, st: _State, model_args: dict | None) -> None:
    save_checkpoint(
        ckpt,
        {
            "version": CHECKPOINT_VERSION,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "rng": rng_state(),
            "epoch": st.epoch,
            "history": st.history,
            "steps": st.steps,
            "best": st.best,
            "status": st.status,
            "model_args": model_args or {},
        },
    )


def train_epoch(model, opt, sched, data: ArrayData, cfg: TrainConfig, epoch: int, steps_per_epoch: int, st: _State):
    """One epoch of SGD; appends per-step rows to ``st.steps``; returns (mean loss, accuracy) or None if diverged."""
    batches = batch_order(len(data), cfg.batch_size, cfg.seed, epoch, drop_last=False)[:steps_per_epoch]
    gen = torch.Generator().manual_seed(cfg.seed * 7919 + epoch + 1)
    tot, correct, seen = 0.0, 0, 0
    for i, idx in enumerate(batches):
        xb, yb = data.batch(idx, cfg.aug_pad, gen)
        out = model(xb)
        loss = F.cross_entropy(out, yb)
        lr_now = opt.param_groups[0]["lr"]
        step = epoch * steps_per_epoch + i
        if not torch.isfinite(loss):
            st.status = "diverged"
            st.steps.append({"epoch": epoch, "step": step, "lr": lr_now, "loss": math.inf})
            return None
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        tot += loss.item() * len(yb)
        correct += (out.argmax(1) == yb).sum().item()
        seen += len(yb)
        st.steps.append({"epoch": epoch, "step": step, "lr": lr_now, "loss": loss.item()})
    return tot / max(seen, 1), correct / max(seen, 1)


def train(
    model: nn.Module,
    train_data: ArrayData,
    test_data: ArrayData,
    cfg: TrainConfig,
    *,
    out_dir: Path | None = None,
    resume: bool = False,
    model_args: dict | None = None,
    progress=None,
) -> TrainResult:
    """Train ``model`` with SGD; writes metrics.csv, steps.csv, checkpoint.pt into ``out_dir`` when given."""
    cfg.validate()
    t0 = time.time()
    epochs = 1 if cfg.steps is not None else cfg.epochs
    steps_per_epoch = math.ceil(len(train_data) / cfg.batch_size)
    if cfg.steps is not None:
        steps_per_epoch = min(steps_per_epoch, cfg.steps)
    opt = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov
    )
    sched = WarmupCosine(opt, steps_per_epoch, epochs, cfg.warmup, cfg.decreasing_lr)
    ckpt = out_dir / "checkpoint.pt" if out_dir is not None else None
    st = _restore(ckpt, model, opt, sched) if resume and ckpt is not None and ckpt.exists() else _State()
    model.train()
    while st.status == "ok" and st.epoch < epochs:
        fit = train_epoch(model, opt, sched, train_data, cfg, st.epoch, steps_per_epoch, st)
        if fit is None:
            break
        ev = evaluate(model, test_data)
        st.best = max(st.best, ev["test_acc"])
        st.epoch += 1
        row = {
            "epoch": st.epoch,
            "step": st.epoch * steps_per_epoch,
            "lr": opt.param_groups[0]["lr"],
            "train_loss": fit[0],
            "train_acc": fit[1],
            "test_loss": ev["test_loss"],
            "test_acc": ev["test_acc"],
        }
        if cfg.per_class_acc:
            row["test_acc_per_class"] = ev["test_acc_per_class"]
        st.history.append(row)
        if progress is not None:
            progress(row)
        if ckpt is not None:
            _save(ckpt, model, opt, sched, st, model_args)
    if out_dir is not None:
        for name, rows in (("metrics.csv", st.history), ("steps.csv", st.steps)):
            if rows:
                write_table(out_dir / name, rows)
    last = st.history[-1] if st.history else {}
    return TrainResult(
        st.status,
        last.get("test_acc", math.nan),
        st.best if st.history else math.nan,
        last.get("train_loss", math.nan),
        len(st.history),
        time.time() - t0,
        st.history,
        st.steps,
    )
