"""A user's own workload as one file (README.md §3 of arena): 256 teacher-student rows, an MLP of nn.Sequential
blocks, its own TARGET and BUDGET. Used by tests/arena by path."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

NAME = "plugin_tiny_mlp"
METRIC, DIRECTION = "accuracy", "max"
BATCH_SIZE, STEP_HINT, EVAL_EVERY = 32, 20, 5
FAMILY, DAG = None, None
TARGET, BUDGET = 0.99, 0.4  # CPU-seconds


def _data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    w = torch.randn(8, 3, generator=torch.Generator().manual_seed(123))
    return TensorDataset(x, (x @ w).argmax(1))


def build(seed: int, device) -> dict:
    model = nn.Sequential(nn.Sequential(nn.Linear(8, 16), nn.ReLU()), nn.Linear(16, 3)).to(device)
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
