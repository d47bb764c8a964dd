"""Datasets of the AutoWU experiments: ImageNet with the pinned transforms, and the offline sets (DESIGN.md §5).

ImageNet: torchvision ``ImageNet`` when the devkit archive is present, else ``ImageFolder`` on ``train/`` and
``val/``. Train transform: timm ``create_transform(224, is_training=True, color_jitter=0.4)`` with AlexNet PCA
lighting (alpha_std 0.1) inserted before Normalize; eval transform: resize 256 (bicubic), center crop 224.
Offline sets come from common.data: digits and mnist5k (stratified 80/20 split, random_state 0), mnist1d
(4000/1000 x 40 as (N, 1, 40)) and the teacher-student set ("synthetic").
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from common.cli import MissingInputError, UsageError

__all__ = ["OFFLINE_DATASETS", "DATASETS", "Lighting", "imagenet_sets", "load_offline", "build_datasets"]

OFFLINE_DATASETS = ("digits", "mnist5k", "mnist1d", "synthetic")
DATASETS = ("imagenet", *OFFLINE_DATASETS)
_DEVKIT = "ILSVRC2012_devkit_t12.tar.gz"


class Lighting:
    """AlexNet PCA lighting noise on a CHW tensor in [0, 1]: img + V (alpha * lambda), alpha ~ N(0, alpha_std^2)."""

    eigval = torch.tensor([0.2175, 0.0188, 0.0045])
    eigvec = torch.tensor([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])

    def __init__(self, alpha_std: float = 0.1) -> None:
        self.alpha_std = alpha_std

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        alpha = torch.randn(3) * self.alpha_std
        return img + (self.eigvec @ (alpha * self.eigval)).view(3, 1, 1)


def imagenet_sets(root: str | Path) -> tuple[Dataset, Dataset]:
    """(train, val) ImageNet datasets with the pinned transforms; MissingInputError names the root if absent."""
    import torchvision.transforms as T
    from timm.data import create_transform
    from torchvision.datasets import ImageFolder, ImageNet

    root_p = Path(root)
    if not (root_p / "train").is_dir() and not (root_p / _DEVKIT).exists():
        raise MissingInputError(
            f"ImageNet not found under {root}: expected train/ and val/ folders (ImageFolder layout) or {_DEVKIT}"
        )
    train_tf = create_transform(224, is_training=True, color_jitter=0.4)
    steps = list(train_tf.transforms)
    norm_at = next((i for i, t in enumerate(steps) if isinstance(t, T.Normalize)), len(steps))
    train_tf = T.Compose(steps[:norm_at] + [Lighting(0.1)] + steps[norm_at:])
    norm = T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    val_tf = T.Compose(
        [T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(), norm]
    )
    if (root_p / _DEVKIT).exists():
        return ImageNet(str(root), "train", transform=train_tf), ImageNet(str(root), "val", transform=val_tf)
    return ImageFolder(root_p / "train", train_tf), ImageFolder(root_p / "val", val_tf)


def load_offline(name: str, root: str | Path = "data"):
    """(train (x, y), test (x, y), model kwargs) for an offline dataset (DESIGN.md §5).

    digits and mnist5k: stratified 80/20 split with random_state 0; mnist1d: 4000/1000 x 40 as (N, 1, 40);
    synthetic: the teacher-student set (20 features).
    """
    from common.data import get_dataset

    if name not in OFFLINE_DATASETS:
        raise UsageError(
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


def build_datasets(
    dataset: str, data_root: str | Path | None, smoke_size: int | None = None, cache: str | Path = "data"
) -> tuple[Dataset, Dataset, dict, int]:
    """(train, val, model kwargs, number of classes); ``smoke_size`` keeps the first that many samples per split."""
    if dataset == "imagenet":
        if data_root is None:
            raise UsageError("--dataset imagenet needs --data-root DIR")
        train_ds, val_ds = imagenet_sets(data_root)
        data_kw, num_classes = {"in_channels": 3}, len(getattr(train_ds, "classes", range(1000)))
    else:
        (x, y), (xt, yt), data_kw = load_offline(dataset, cache)
        train_ds, val_ds, num_classes = TensorDataset(x, y), TensorDataset(xt, yt), int(y.max()) + 1
    if smoke_size is not None:
        train_ds = Subset(train_ds, range(min(smoke_size, len(train_ds))))
        val_ds = Subset(val_ds, range(min(smoke_size, len(val_ds))))
    return train_ds, val_ds, data_kw, num_classes
