"""Dataset registry: ``get_dataset(name, split)`` over builders registered by name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from common.cli import MissingInputError, UsageError

__all__ = ["DatasetNotFoundError", "register_dataset", "get_dataset", "list_datasets", "as_tensors", "require_files"]


class DatasetNotFoundError(MissingInputError):
    """A dataset's files are missing; the message is one line naming them and how to obtain them."""


@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., Any]
    splits: tuple[str, ...]
    default_split: str
    description: str


_REGISTRY: dict[str, _Entry] = {}


def register_dataset(
    name: str, splits: Sequence[str] = ("train", "test"), default_split: str | None = None, description: str = ""
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(split, root, **kw) -> Dataset`` under ``name`` (re-registering replaces the entry)."""
    default = default_split or splits[0]
    if default not in splits:
        raise UsageError(f"default split {default!r} not among {tuple(splits)}")

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[name] = _Entry(fn, tuple(splits), default, description or (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return decorate


def list_datasets() -> list[str]:
    """Names of all registered datasets, sorted."""
    return sorted(_REGISTRY)


def describe_datasets() -> dict[str, str]:
    """Name -> one-line description with the valid splits."""
    return {n: f"{e.description} (splits: {', '.join(e.splits)})" for n, e in sorted(_REGISTRY.items())}


def get_dataset(name: str, split: str | None = None, root: str | Path = "data", **kwargs: Any) -> Any:
    """Build dataset ``name`` for ``split`` (None: its default split) from files under ``root``.

    Raises ValueError for an unknown name or split and DatasetNotFoundError for missing files.
    """
    if name not in _REGISTRY:
        raise UsageError(f"unknown dataset {name!r}; available: {', '.join(list_datasets())}")
    entry = _REGISTRY[name]
    split = split or entry.default_split
    if split not in entry.splits:
        raise UsageError(f"dataset {name!r} has no split {split!r}; choose one of {', '.join(entry.splits)}")
    return entry.builder(split, Path(root), **kwargs)


def require_files(paths: Sequence[Path], dataset: str, how: str) -> None:
    """Raise DatasetNotFoundError (one line) when any of ``paths`` does not exist."""
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise DatasetNotFoundError(f"dataset {dataset!r}: missing {shown}; {how}")


def as_tensors(ds: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Materialise a dataset into (X, y) tensors; TensorDatasets and Subsets of them are not copied item by item."""
    if isinstance(ds, TensorDataset):
        return ds.tensors[0], ds.tensors[1]
    if callable(getattr(ds, "tensors", None)):  # ImageTensors: skip the per-item transform path
        return ds.tensors()
    if isinstance(ds, Subset) and isinstance(ds.dataset, TensorDataset):
        idx = torch.as_tensor(ds.indices)
        return ds.dataset.tensors[0][idx], ds.dataset.tensors[1][idx]
    xs, ys = zip(*(ds[i] for i in range(len(ds))))
    return torch.stack([torch.as_tensor(x) for x in xs]), torch.as_tensor(ys)
