"""Datasets, splits and normalization of DESIGN.md §5.1 on top of common.data.

Splits use random_split semantics with a generator seeded 0: MNIST 50k/10k + official test; CIFAR-10 40k/10k + test;
SVHN 47225/26032 + test; mnist5k 3500/750/750; digits 1257/270/270. MNIST and mnist5k: (x - 0.1307)/0.3081;
CIFAR-10 and SVHN: per-channel standardization with training-split statistics; digits: train mean/std. No
augmentation. Batch 64 for MNIST, mnist5k, digits; 128 otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from common.cli import UsageError
from common.data import DatasetNotFoundError, as_tensors, get_dataset

__all__ = ["DATASETS", "Splits", "load_splits", "batches", "DEFAULT_BATCH"]

DATASETS = ("mnist", "cifar10", "svhn", "mnist5k", "digits")
DEFAULT_BATCH = {"mnist": 64, "mnist5k": 64, "digits": 64, "cifar10": 128, "svhn": 128}
_OFFICIAL_SPLIT = {"mnist": (50000, 10000), "cifar10": (40000, 10000), "svhn": (47225, 26032)}
_ALL_SPLIT = {"mnist5k": (3500, 750, 750), "digits": (1257, 270, 270)}


@dataclass
class Splits:
    """Tensors of one dataset: (X, y) per split, image geometry and the default batch size."""

    name: str
    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor] | None
    test: tuple[torch.Tensor, torch.Tensor]
    in_channels: int
    image_size: int
    num_classes: int
    batch_size: int


def _perm(n: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(0))


def _load(name: str, split: str, root: str):
    try:
        return as_tensors(get_dataset(name, split, root=root))
    except DatasetNotFoundError as exc:
        first = str(exc).splitlines()[0]
        hint = "" if "mnist5k" in first else " (or use --dataset mnist5k, bundled offline)"
        raise DatasetNotFoundError(first + hint) from None


def load_splits(name: str, root: str = "data", no_val_set: bool = False) -> Splits:
    """Train/val/test tensors of DESIGN.md §5.1 (no_val_set: the validation part joins the training split)."""
    if name not in DATASETS:
        raise UsageError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    if name in _ALL_SPLIT:
        X, y = _load(name, "all", root)
        a, b, _ = _ALL_SPLIT[name]
        idx = _perm(len(y))
        parts = idx[:a], idx[a : a + b], idx[a + b :]
        train, val, test = ((X[i], y[i]) for i in parts)
    else:
        X, y = _load(name, "train", root)
        a, b = _OFFICIAL_SPLIT[name]
        if len(y) != a + b:
            raise UsageError(f"{name}: expected {a + b} training images, found {len(y)}")
        idx = _perm(len(y))
        train, val = (X[idx[:a]], y[idx[:a]]), (X[idx[a:]], y[idx[a:]])
        test = _load(name, "test", root)
    X_tr = train[0].float()
    if X_tr.dim() == 3:
        X_tr = X_tr.unsqueeze(1)
    if name in ("mnist", "mnist5k"):
        mean, std = torch.tensor(0.1307), torch.tensor(0.3081)
    elif name == "digits":
        mean, std = X_tr.mean(), X_tr.std()
    else:
        mean = X_tr.mean(dim=(0, 2, 3), keepdim=True)[0]
        std = X_tr.std(dim=(0, 2, 3), keepdim=True)[0]

    def norm(part):
        X_, y_ = part
        X_ = X_.float()
        if X_.dim() == 3:
            X_ = X_.unsqueeze(1)
        return ((X_ - mean) / std).contiguous(), y_.long()

    train, val, test = norm(train), norm(val), norm(test)
    if no_val_set:
        train = (torch.cat([train[0], val[0]]), torch.cat([train[1], val[1]]))
        val = None
    return Splits(
        name=name,
        train=train,
        val=val,
        test=test,
        in_channels=train[0].shape[1],
        image_size=train[0].shape[-1],
        num_classes=int(max(train[1].max(), test[1].max())) + 1,
        batch_size=DEFAULT_BATCH[name],
    )


def batches(
    X: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches in the order of a permutation drawn from generator (None: in order, for evaluation)."""
    n = len(y)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        yield X[idx], y[idx]
