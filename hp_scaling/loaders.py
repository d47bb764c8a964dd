"""In-memory data for hp_scaling, read through common.data (DESIGN.md §10).

``load_data(name, split, root)`` returns an :class:`ArrayData`: raw images (uint8 or float), labels, the class count,
the input shape and per-channel normalization. Batches are normalized on the fly, so CIFAR stays uint8 in memory.
digits are standardized per feature; digits and mnist5k, which have no official split, get a fixed seeded split
(digits: 1,437 train / 360 test; mnist5k: 4,000 / 1,000) and ``split="all"`` returns every sample.

Augmentation (``--aug``): random horizontal flip and random crop with zero padding (pad 4 CIFAR, 2 ImageNet16),
drawn from an explicit generator so that a resumed run sees the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from common.data import as_tensors, get_dataset

__all__ = ["ArrayData", "augment", "batch_order", "load_data", "AUG_PAD"]

_MEAN_STD = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "imagenet16_120": ((122.68 / 255, 116.66 / 255, 104.01 / 255), (63.22 / 255, 61.26 / 255, 65.09 / 255)),
}
AUG_PAD = {"cifar10": 4, "cifar100": 4, "imagenet16_120": 2, "svhn": 4}
_OWN_SPLIT = {"digits": 1437, "mnist5k": 4000}


@dataclass
class ArrayData:
    """Images x (N, C, H, W) or features, labels y, normalization (mean, std per channel or per feature)."""

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    mean: torch.Tensor
    std: torch.Tensor
    name: str = ""

    def __len__(self) -> int:
        return len(self.y)

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def to(self, device) -> ArrayData:
        return ArrayData(
            self.x.to(device), self.y.to(device), self.num_classes, self.mean.to(device), self.std.to(device), self.name
        )

    def batch(self, idx: torch.Tensor, aug_pad: int = 0, generator: torch.Generator | None = None):
        """Normalized float batch (and labels) for indices ``idx``; optional flip + padded crop."""
        xb = self.x[idx]
        xb = xb.float() / 255.0 if xb.dtype == torch.uint8 else xb.float()
        if aug_pad:
            xb = augment(xb, aug_pad, generator)
        return (xb - self.mean) / self.std, self.y[idx]


def augment(xb: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random horizontal flip, then a random crop of the zero-padded image (per sample, seeded by ``generator``)."""
    n, _, h, w = xb.shape
    flip = torch.rand(n, generator=generator) < 0.5
    xb = torch.where(flip.view(n, 1, 1, 1).to(xb.device), xb.flip(3), xb)
    padded = torch.nn.functional.pad(xb, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy.view(n, 1) + torch.arange(h)).to(xb.device)
    cols = (dx.view(n, 1) + torch.arange(w)).to(xb.device)
    bidx = torch.arange(n, device=xb.device).view(n, 1, 1, 1)
    cidx = torch.arange(xb.shape[1], device=xb.device).view(1, -1, 1, 1)
    return padded[bidx, cidx, rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]


def batch_order(n: int, batch_size: int, seed: int, epoch: int, drop_last: bool) -> list[torch.Tensor]:
    """Index batches of one epoch: a permutation from a generator seeded by (seed, epoch), independent of state."""
    g = torch.Generator().manual_seed(int(seed) * 100_003 + int(epoch))
    perm = torch.randperm(n, generator=g)
    stop = n - n % batch_size if drop_last else n
    return [perm[i : i + batch_size] for i in range(0, stop, batch_size)]


def _standardize(x: torch.Tensor, per_feature: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if per_feature:
        mean, std = x.mean(0, keepdim=True)[0], x.std(0, keepdim=True)[0]
    else:
        mean, std = x.mean().reshape(1), x.std().reshape(1)
    std = torch.where(std > 0, std, torch.ones_like(std))
    if x.dim() == 4 and not per_feature:
        mean, std = mean.view(1, 1, 1), std.view(1, 1, 1)
    return mean, std


def load_data(name: str, split: str, root: str = "data") -> ArrayData:
    """Load ``name`` (any common.data image set) for split train|test|all into memory."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be train, test or all, got {split!r}")
    if name in _OWN_SPLIT:
        x, y = as_tensors(get_dataset(name, "all", root=root))
        x = x.float()
        mean, std = _standardize(x, per_feature=(name == "digits"))
        if split != "all":
            perm = torch.from_numpy(np.random.default_rng(0).permutation(len(y)))
            cut = _OWN_SPLIT[name]
            keep = perm[:cut] if split == "train" else perm[cut:]
            x, y = x[keep], y[keep]
        return ArrayData(x, y.long(), 10, mean, std, name)
    splits = ("train", "test") if split == "all" else (split,)
    xs, ys = [], []
    for sp in splits:
        ds = get_dataset(name, sp, root=root)
        images = getattr(ds, "images", None)
        if isinstance(images, torch.Tensor) and images.dtype == torch.uint8:
            xs.append(images)
            ys.append(ds.targets)
        else:
            xb, yb = as_tensors(ds)
            xs.append(xb)
            ys.append(torch.as_tensor(yb))
    x, y = torch.cat(xs), torch.cat(ys).long()
    num_classes = {"cifar100": 100, "imagenet16_120": 120}.get(name, int(y.max()) + 1)
    if name in _MEAN_STD:
        m, s = _MEAN_STD[name]
        mean, std = torch.tensor(m).view(-1, 1, 1), torch.tensor(s).view(-1, 1, 1)
    else:
        xf = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        mean, std = _standardize(xf, per_feature=False)
    return ArrayData(x, y, num_classes, mean, std, name)
