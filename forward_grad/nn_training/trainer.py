"""Training loop for DESIGN.md §3.3/4 (train.py and the search's nn mode): bp or forward gradients, node or weight mode.

Step: sample V (QR for frog) -> jvps -> aggregate -> write .grad -> optimizer.step(). Optimizer `plain_sgd` (torch
SGD, constant LR, no momentum, no weight decay; all paper runs) or `plain_adam`. Epoch 0 is evaluation only. A train
loss >= 10 or a non-finite loss stops the run (`diverged`); early stopping on the validation loss (patience epochs,
min_delta 1e-6). Seeds: model init and data order from `seed`, tangents from `seed + 1`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from common.cli import UsageError
from forward_grad.forward_gradient import ForwardGradient
from forward_grad.nn_training.data import batches, load_splits
from forward_grad.nn_training.models import build_model

__all__ = ["TrainConfig", "Trainer", "GRADIENTS", "OPTIMIZERS", "DIVERGENCE_LOSS"]

GRADIENTS = ("bp", "fg", "frog")
OPTIMIZERS = ("plain_sgd", "plain_adam")
DIVERGENCE_LOSS = 10.0
MIN_DELTA = 1e-6


@dataclass
class TrainConfig:
    dataset: str = "mnist"
    model: str = "fc"
    model_width: int = 1024
    model_kw: dict = field(default_factory=dict)
    gradient: str = "bp"
    perturbation_mode: str = "node"
    num_directions: int = 1
    aggregation: str | None = None
    tangent_sampler: str = "normal"
    normalize_tangents: bool = False
    scaling_correction: bool = False
    frog_mode: str = "qr"
    jvp_backend: str = "vmap"
    jvp_chunk_size: int | None = None
    optimizer: str = "plain_sgd"
    lr: float = 0.1
    epochs: int = 200
    batch_size: int | None = None
    early_stopping_patience: int = 10
    no_val_set: bool = False
    seed: int = 0
    device: str = "cpu"
    data_root: str = "data"
    max_batches: int | None = None  # cap per epoch (smoke tests)

    def validate(self) -> None:
        if self.gradient not in GRADIENTS:
            raise UsageError(f"unknown gradient computation {self.gradient!r}; choose from {', '.join(GRADIENTS)}")
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"unknown optimizer {self.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UsageError(f"learning rate must be positive, got {self.lr}")
        if self.num_directions <= 0:
            raise UsageError(f"num_directions K must be positive, got {self.num_directions}")
        if self.epochs < 0:
            raise UsageError(f"epochs must be >= 0, got {self.epochs}")


class Trainer:
    """Holds model, optimizer, estimator, data and RNG states; `run()` yields one metrics dict per epoch."""

    def __init__(self, cfg: TrainConfig):
        cfg.validate()
        self.cfg = cfg
        self.device = torch.device(cfg.device)
        self.splits = load_splits(cfg.dataset, cfg.data_root, cfg.no_val_set)
        s = self.splits
        torch.manual_seed(cfg.seed)
        kw = dict(cfg.model_kw)
        if cfg.model == "fc":
            kw.setdefault("width", cfg.model_width)
        self.model = build_model(cfg.model, s.in_channels, s.image_size, s.num_classes, **kw).to(self.device)
        opt_cls = torch.optim.SGD if cfg.optimizer == "plain_sgd" else torch.optim.Adam
        self.optimizer = opt_cls(self.model.parameters(), lr=cfg.lr)
        self.data_gen = torch.Generator().manual_seed(cfg.seed)
        self.estimator = None
        if cfg.gradient != "bp":
            agg = cfg.aggregation or ("mean" if cfg.gradient == "fg" else "frog")
            self.estimator = ForwardGradient(
                cfg.num_directions,
                agg,
                cfg.tangent_sampler,
                normalize_tangents=cfg.normalize_tangents,
                frog_mode=cfg.frog_mode,
                scaling_correction=cfg.scaling_correction,
                perturbation_mode=cfg.perturbation_mode,
                jvp_backend=cfg.jvp_backend,
                jvp_chunk_size=cfg.jvp_chunk_size,
                generator=torch.Generator().manual_seed(cfg.seed + 1),
            )
        self.batch_size = cfg.batch_size or s.batch_size
        self.epoch = 0
        self.best_val = math.inf
        self.bad_epochs = 0
        self.history: list[dict] = []

    # --- state -------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "version": 1,
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "data_gen": self.data_gen.get_state(),
            "tangent_gen": self.estimator.generator.get_state() if self.estimator else None,
            "best_val": self.best_val,
            "bad_epochs": self.bad_epochs,
            "history": self.history,
            "config": asdict(self.cfg),
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch = state["epoch"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.data_gen.set_state(state["data_gen"])
        if self.estimator is not None and state["tangent_gen"] is not None:
            self.estimator.generator.set_state(state["tangent_gen"])
        self.best_val, self.bad_epochs = state["best_val"], state["bad_epochs"]
        self.history = list(state["history"])

    # --- loops -------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, part) -> tuple[float, float]:
        if part is None:
            return math.nan, math.nan
        self.model.eval()
        X, y = part
        total, correct = 0.0, 0
        for xb, yb in batches(X, y, 1024):
            xb, yb = xb.to(self.device), yb.to(self.device)
            out = self.model(xb)
            total += float(F.cross_entropy(out, yb, reduction="sum").detach())
            correct += int((out.argmax(1) == yb).sum())
        self.model.train()
        return total / len(y), correct / len(y)

    def train_epoch(self) -> tuple[float, bool]:
        """One epoch; returns (mean step loss, diverged)."""
        self.model.train()
        X, y = self.splits.train
        losses = []
        for i, (xb, yb) in enumerate(batches(X, y, self.batch_size, self.data_gen)):
            if self.cfg.max_batches is not None and i >= self.cfg.max_batches:
                break
            xb, yb = xb.to(self.device), yb.to(self.device)
            if self.estimator is None:
                self.optimizer.zero_grad(set_to_none=False)
                loss = F.cross_entropy(self.model(xb), yb)
                loss.backward()
                value = float(loss.detach())
            else:
                value = self.estimator.step(self.model, (xb, yb)).loss
            if not math.isfinite(value) or value >= DIVERGENCE_LOSS:
                return value, True
            self.optimizer.step()
            losses.append(value)
        return (sum(losses) / max(len(losses), 1)), False

    def metrics(self, seconds: float, train_step_loss: float | None = None) -> dict:
        tr = self.evaluate(self.splits.train)
        va = self.evaluate(self.splits.val)
        te = self.evaluate(self.splits.test)
        return {
            "epoch": self.epoch,
            "train_loss": tr[0],
            "train_acc": tr[1],
            "train_step_loss": train_step_loss if train_step_loss is not None else math.nan,
            "val_loss": va[0],
            "val_acc": va[1],
            "test_loss": te[0],
            "test_acc": te[1],
            "lr": self.cfg.lr,
            "seconds": seconds,
        }

    def run(self) -> Iterator[dict]:
        """Yield metrics per epoch (epoch 0: evaluation only); the last dict carries `stop_reason`."""
        if self.epoch == 0 and not self.history:
            row = self.metrics(0.0)
            self.history.append(row)
            yield row
        while self.epoch < self.cfg.epochs:
            start = time.perf_counter()
            step_loss, diverged = self.train_epoch()
            self.epoch += 1
            if diverged:
                row = {**self.metrics(time.perf_counter() - start, step_loss), "stop_reason": "diverged"}
                self.history.append(row)
                yield row
                return
            row = self.metrics(time.perf_counter() - start, step_loss)
            watch = row["val_loss"] if self.splits.val is not None else row["train_loss"]
            if watch < self.best_val - MIN_DELTA:
                self.best_val, self.bad_epochs = watch, 0
            else:
                self.bad_epochs += 1
            if not math.isfinite(watch) or watch >= DIVERGENCE_LOSS:
                row["stop_reason"] = "diverged"
            elif self.bad_epochs >= self.cfg.early_stopping_patience:
                row["stop_reason"] = "early_stopped"
            elif self.epoch >= self.cfg.epochs:
                row["stop_reason"] = "max_epochs"
            self.history.append(row)
            yield row
            if "stop_reason" in row:
                return
