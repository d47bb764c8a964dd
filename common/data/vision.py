"""Image datasets read from their genuine file formats under ``root`` (torchvision's folder layout).

mnist, cifar10/cifar100 and svhn through torchvision.datasets (download=False; torchvision checks the md5 of every
CIFAR/SVHN file: ``check_md5=False``, or COMMON_DATA_CHECK_MD5=0 in the environment, skips that for tiny files
written in the genuine format, as the test suite does),
imagenet (ImageFolder) and imagenet16_120 (NAS-Bench-201's pickled 16x16 batches, md5-checked here: torchvision has
no reader for them). Array-backed sets return
:class:`ImageTensors`: uint8 images (N, C, H, W) served as float tensors in [0, 1] through an optional transform.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from common.data.registry import DatasetNotFoundError, register_dataset, require_files

__all__ = ["ImageTensors", "IMAGENET16_MD5", "md5sum"]


class ImageTensors(Dataset):
    """uint8 images (N, C, H, W) and int64 targets; items are (float image in [0, 1] after transform, label)."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, transform: Callable | None = None) -> None:
        if images.ndim != 4 or len(images) != len(targets):
            raise ValueError(f"expected images (N, C, H, W) and N targets, got {tuple(images.shape)}, {len(targets)}")
        self.images = images
        self.targets = targets.to(torch.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index].float().div_(255.0)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.targets[index])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images as float32 in [0, 1] (no transform) and the targets."""
        return self.images.float() / 255.0, self.targets


def md5sum(path: Path) -> str:
    """md5 of a file, by torchvision's own routine (the one that checks CIFAR/SVHN)."""
    from torchvision.datasets.utils import calculate_md5

    return calculate_md5(str(path))


MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@register_dataset("mnist", splits=("train", "test"), description="MNIST 60k/10k 28x28 (idx files)")
def _mnist(split: str, root: Path, download: bool = False, transform: Callable | None = None) -> ImageTensors:
    raw = root / "MNIST" / "raw"
    if not download:
        require_files(
            [raw / f for f in MNIST_FILES],
            "mnist",
            "get them from https://ossci-datasets.s3.amazonaws.com/mnist/ (gunzip into "
            f"{raw}), pass download=True when online, or use --dataset mnist5k",
        )
    from torchvision.datasets import MNIST

    ds = MNIST(str(root), train=split == "train", download=download)
    return ImageTensors(ds.data.unsqueeze(1), ds.targets, transform)


def _load_pickle(path: Path) -> dict[str, Any]:
    """One NAS-Bench-201 ImageNet16 batch (a pickled dict; md5-checked by the caller before it is opened)."""
    with open(path, "rb") as handle:
        entry = pickle.load(handle, encoding="latin1")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}


def _without_md5(cls: type) -> type:
    """A torchvision dataset class whose file table carries no md5 (files only need to exist): for files you made."""
    attrs: dict[str, Any] = {}
    for name in ("train_list", "test_list"):
        if hasattr(cls, name):
            attrs[name] = [[f, None] for f, _ in getattr(cls, name)]
    if hasattr(cls, "meta"):
        attrs["meta"] = {**cls.meta, "md5": None}
    if hasattr(cls, "split_list"):
        attrs["split_list"] = {k: [url, f, None] for k, (url, f, _) in cls.split_list.items()}
    return type(f"{cls.__name__}Unchecked", (cls,), attrs)


MD5_ENV = "COMMON_DATA_CHECK_MD5"


def _check_md5(value: bool | None) -> bool:
    """``check_md5`` as given, else the environment: COMMON_DATA_CHECK_MD5=0 turns it off (the test suite does)."""
    if value is not None:
        return bool(value)
    return os.environ.get(MD5_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _torchvision(cls: type, name: str, check_md5: bool | None, how: str, **kw: Any) -> Any:
    """Build a torchvision dataset (download=False); a failed md5 check becomes a DatasetNotFoundError."""
    check_md5 = _check_md5(check_md5)
    try:
        return (cls if check_md5 else _without_md5(cls))(**kw, download=False)
    except RuntimeError as exc:
        if "corrupted" not in str(exc):
            raise
        raise DatasetNotFoundError(
            f"dataset {name!r}: files under {kw['root']} fail torchvision's md5 check ({exc}); {how} "
            f"(check_md5=False or {MD5_ENV}=0 accepts files you wrote yourself)"
        ) from None


def _cifar(
    cls_name: str,
    split: str,
    root: Path,
    name: str,
    check_md5: bool | None,
    download: bool,
    transform: Callable | None,
) -> ImageTensors:
    """CIFAR-10/100 through torchvision.datasets (which reads the pickled batches and checks their md5)."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, cls_name)
    base = root / cls.base_folder
    files = [f for f, _ in (cls.train_list if split == "train" else cls.test_list)] + [cls.meta["filename"]]
    how = f"download and untar {cls.url} into {root}"
    if download:
        cls(str(root), train=split == "train", download=True)
    require_files([base / f for f in files], name, how)
    ds = _torchvision(cls, name, check_md5, how, root=str(root), train=split == "train")
    images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))  # torchvision keeps NHWC
    return ImageTensors(images, torch.as_tensor(ds.targets, dtype=torch.int64), transform)


@register_dataset("cifar10", splits=("train", "test"), description="CIFAR-10 50k/10k 32x32 (torchvision)")
def _cifar10(
    split: str, root: Path, transform: Callable | None = None, download: bool = False, check_md5: bool | None = None
) -> ImageTensors:
    return _cifar("CIFAR10", split, root, "cifar10", check_md5, download, transform)


@register_dataset("cifar100", splits=("train", "test"), description="CIFAR-100 50k/10k 32x32 (torchvision)")
def _cifar100(
    split: str, root: Path, transform: Callable | None = None, download: bool = False, check_md5: bool | None = None
) -> ImageTensors:
    return _cifar("CIFAR100", split, root, "cifar100", check_md5, download, transform)


@register_dataset("svhn", splits=("train", "test"), description="SVHN 73,257/26,032 32x32 (torchvision, .mat)")
def _svhn(
    split: str, root: Path, transform: Callable | None = None, download: bool = False, check_md5: bool | None = None
) -> ImageTensors:
    """SVHN through torchvision.datasets.SVHN (reads the .mat, checks its md5, maps label 10 to digit 0)."""
    from torchvision.datasets import SVHN

    url, filename, _ = SVHN.split_list[split]
    how = f"download {url} into {root}"
    if download:
        SVHN(str(root), split=split, download=True)
    require_files([root / filename], "svhn", how)
    ds = _torchvision(SVHN, "svhn", check_md5, how, root=str(root), split=split)
    images = torch.from_numpy(np.ascontiguousarray(ds.data))  # torchvision already gives N, C, H, W
    return ImageTensors(images, torch.as_tensor(ds.labels, dtype=torch.int64).reshape(-1), transform)


@register_dataset("imagenet", splits=("train", "val"), description="ImageNet-1k as ImageFolder (train/val)")
def _imagenet(split: str, root: Path, transform: Callable | None = None) -> Dataset:
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    folder = root / "imagenet" / split
    if not folder.is_dir() or not any(folder.iterdir()):
        raise DatasetNotFoundError(
            f"dataset 'imagenet': missing {folder} (one sub-folder of JPEGs per class); extract ILSVRC2012 from "
            "https://image-net.org there (val sorted into class folders)"
        )
    if transform is None:
        transform = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])
    return ImageFolder(str(folder), transform=transform)


IMAGENET16_MD5 = {
    "train_data_batch_1": "27846dcaa50de8e21a7d1a35f30f0e91",
    "train_data_batch_2": "c7254a054e0e795c69120a5727050e3f",
    "train_data_batch_3": "4333d3df2e5ffb114b05d2ffc19b1e87",
    "train_data_batch_4": "1620cdf193304f4a92677b695d70d10f",
    "train_data_batch_5": "348b3c2fdbb3940c4e9e834affd3b18d",
    "train_data_batch_6": "6e765307c242a1b3d7d5ef9139b48945",
    "train_data_batch_7": "564926d8cbf8fc4818ba23d2faac7564",
    "train_data_batch_8": "f4755871f718ccb653440b9dd0ebac66",
    "train_data_batch_9": "bb6dd660c38c58552125b1a92f86b5d4",
    "train_data_batch_10": "8f03f34ac4b42271a294f91bf480f29b",
    "val_data": "3410e3017fdaefba8d5073aaa65e4bd6",
}


@register_dataset(
    "imagenet16_120",
    splits=("train", "test"),
    description="ImageNet16-120 (NAS-Bench-201): 151,700/6,000 16x16 images, 120 classes",
)
def _imagenet16_120(
    split: str, root: Path, transform: Callable | None = None, check_md5: bool = True, num_classes: int = 120
) -> ImageTensors:
    base = root / "ImageNet16"
    files = [f"train_data_batch_{i}" for i in range(1, 11)] if split == "train" else ["val_data"]
    require_files(
        [base / f for f in files],
        "imagenet16_120",
        f"place NAS-Bench-201's ImageNet16 pickles (Imagenet16_train.zip, Imagenet16_val.zip from "
        f"https://image-net.org/download-images, 'Downsampled ImageNet 16x16') in {base}",
    )
    data, labels = [], []
    for f in files:
        if check_md5 and md5sum(base / f) != IMAGENET16_MD5[f]:
            raise DatasetNotFoundError(
                f"dataset 'imagenet16_120': {base / f} fails its md5 check "
                f"(expected {IMAGENET16_MD5[f]}); re-download it"
            )
        entry = _load_pickle(base / f)
        data.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 16, 16))
        labels.append(np.asarray(entry["labels"], dtype=np.int64))
    x, y = np.concatenate(data), np.concatenate(labels)
    keep = (y >= 1) & (y <= num_classes)  # labels are 1-based; ImageNet16-120 keeps the first 120 classes
    return ImageTensors(torch.from_numpy(x[keep]), torch.from_numpy(y[keep] - 1), transform)
