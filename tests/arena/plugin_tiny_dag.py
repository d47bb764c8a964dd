"""A tiny hp_scaling DAG workload (a family member with its own TARGET and BUDGET) for the arch_scaled contestant."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from hp_scaling.models import build_model

NAME = "plugin_tiny_dag"
METRIC, DIRECTION = "accuracy", "max"
BATCH_SIZE, STEP_HINT, EVAL_EVERY = 32, 20, 5
FAMILY, FAMILY_BASE = "tiny_dag", "plugin_tiny_dag"
DAG = "2_12"
TARGET, BUDGET = 0.99, 0.4


def _data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    w = torch.randn(8, 3, generator=torch.Generator().manual_seed(123))
    return TensorDataset(x, (x @ w).argmax(1))


def build(seed: int, device) -> dict:
    model = build_model("mlp", DAG, in_shape=(8,), num_classes=3, width=8, init="paper").to(device)
    return {"model": model, "train": _data(256, 1), "val": _data(128, 2), "test": _data(128, 3)}


def criterion(outputs, targets, reduction="mean"):
    return F.cross_entropy(outputs, targets, reduction=reduction)


def loss(model, batch):
    x, y = batch
    return F.cross_entropy(model(x), y)


@torch.no_grad()
def evaluate(model, dataset) -> float:
    x, y = dataset.tensors
    return float((model(x).argmax(1) == y).float().mean())
