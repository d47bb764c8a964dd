"""Helpers shared by the workload files: fixed splits, classification/regression losses and metrics.

Splits are seed-independent (README.md §3): a permutation drawn once with seed 0 carves validation (and test where the
source has no test split) out of the training data, so every trial of every contestant sees the same sets.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

from common.data import as_tensors, get_dataset

SPLIT_SEED = 0
DATA_ROOT = str(Path(__file__).resolve().parents[2] / "data")  # the repository's data/; --data_root overrides


def split_tensors(
    x: torch.Tensor, y: torch.Tensor, n_val: int, n_test: int
) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
    """(train, val, test) from one fixed permutation (seed 0): the last n_val + n_test rows go to val and test."""
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_train = len(y) - n_val - n_test
    if n_train <= 0:
        raise ValueError(f"split needs more than {n_val + n_test} rows, got {len(y)}")
    tr, va, te = perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]
    return TensorDataset(x[tr], y[tr]), TensorDataset(x[va], y[va]), TensorDataset(x[te], y[te])


@lru_cache(maxsize=8)
def cached_split(name: str, n_val: int, n_test: int, root: str | None = None) -> tuple[Dataset, Dataset, Dataset]:
    """The fixed split of an offline dataset with one split (digits, mnist5k, diabetes), cached per process."""
    x, y = as_tensors(get_dataset(name, root=root or DATA_ROOT))
    return split_tensors(x, y, n_val, n_test)


def classification_loss(model: torch.nn.Module, batch) -> torch.Tensor:
    """Mean cross-entropy of one (inputs, labels) batch."""
    x, y = batch
    return F.cross_entropy(model(x), y)


def criterion(outputs: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """The per-output loss behind :func:`classification_loss` (forward-gradient contestants need it split off)."""
    return F.cross_entropy(outputs, targets, reduction=reduction)


def _batches(dataset: Dataset, batch_size: int = 1000):
    if isinstance(dataset, TensorDataset):
        n = len(dataset)
        for i in range(0, n, batch_size):
            yield tuple(t[i : i + batch_size] for t in dataset.tensors)
        return
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    yield from loader


@torch.no_grad()
def accuracy(model: torch.nn.Module, dataset: Dataset) -> float:
    """Top-1 accuracy on a whole split (the harness has set eval mode)."""
    device = next(model.parameters()).device
    correct, total = 0, 0
    for x, y in _batches(dataset):
        x, y = x.to(device), y.to(device)
        correct += int((model(x).argmax(-1) == y).sum())
        total += len(y)
    return correct / max(total, 1)


@torch.no_grad()
def mean_cross_entropy(model: torch.nn.Module, dataset: Dataset) -> float:
    """Mean cross-entropy on a whole split (validation loss as METRIC where the split is small)."""
    device = next(model.parameters()).device
    total, n = 0.0, 0
    for x, y in _batches(dataset):
        x, y = x.to(device), y.to(device)
        total += float(F.cross_entropy(model(x), y, reduction="sum"))
        n += len(y)
    return total / max(n, 1)


def mse_loss(model: torch.nn.Module, batch) -> torch.Tensor:
    """Mean squared error of one (inputs, targets) batch; the model outputs one value per row."""
    x, y = batch
    return F.mse_loss(model(x).reshape(-1), y.reshape(-1))


def mse_criterion(outputs: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Per-output squared error behind :func:`mse_loss`."""
    return F.mse_loss(outputs.reshape(-1), targets.reshape(-1), reduction=reduction)


@torch.no_grad()
def rmse(model: torch.nn.Module, dataset: Dataset) -> float:
    """Root mean squared error on a whole split."""
    device = next(model.parameters()).device
    total, n = 0.0, 0
    for x, y in _batches(dataset):
        x, y = x.to(device), y.to(device)
        total += float(((model(x).reshape(-1) - y.reshape(-1)) ** 2).sum())
        n += len(y)
    return (total / max(n, 1)) ** 0.5
