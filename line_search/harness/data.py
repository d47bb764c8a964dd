"""Data for the line search harness (DESIGN.md §5): the synthetic_order task, digits / mnist5k splits, real image sets.

synthetic_order (registered in common.data from here): sequences of length 24 over a vocabulary of 64; token 1 = [CLS]
at position 0; tokens 4 (A) and 5 (B) once each at distinct random positions; other tokens uniform in 6..63;
label = [A precedes B]. The train set uses generator seed 100, the test set 101.
digits: standardised with the train mean/std (std 0 -> 1), stratified 75/25 split with random_state 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset, TensorDataset

from common.cli import UsageError
from common.data import as_tensors, get_dataset, register_dataset

__all__ = ["TaskData", "synthetic_order", "load_task", "IMG_DATASETS", "NLP_DATASETS", "GLUE_TASKS"]

GLUE_TASKS = ("sst2", "qnli", "mnli", "mrpc")
IMG_DATASETS = ("digits", "mnist5k", "mnist", "cifar10", "cifar100", "imagenet")
NLP_DATASETS = ("synthetic_order", *GLUE_TASKS)
CLS, TOKEN_A, TOKEN_B = 1, 4, 5


def synthetic_order(n: int, seed: int, length: int = 24, vocab: int = 64) -> TensorDataset:
    """The synthetic_order task: input_ids (n, length) int64 and labels [A precedes B] (n,) int64."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(6, vocab, (n, length), generator=g)
    x[:, 0] = CLS
    pos = torch.rand(n, length - 1, generator=g).argsort(dim=1)[:, :2] + 1
    rows = torch.arange(n)
    x[rows, pos[:, 0]] = TOKEN_A
    x[rows, pos[:, 1]] = TOKEN_B
    return TensorDataset(x, (pos[:, 0] < pos[:, 1]).long())


@register_dataset("synthetic_order", splits=("train", "test"), description="A-before-B token order task (line_search)")
def _synthetic_order(split: str, root: Path, n: int | None = None, length: int = 24) -> TensorDataset:
    n = n or (2000 if split == "train" else 500)
    return synthetic_order(n, 100 if split == "train" else 101, length=length)


@dataclass
class TaskData:
    """Train and test sets of one task with what a model builder needs."""

    train: Dataset
    test: Dataset
    num_classes: int
    kind: str  # "img" | "nlp"
    in_shape: tuple[int, ...]


def _stratified(x: torch.Tensor, y: torch.Tensor, standardise: bool) -> tuple[TensorDataset, TensorDataset]:
    from sklearn.model_selection import train_test_split

    idx = torch.arange(len(y)).numpy()
    tr, te = train_test_split(idx, test_size=0.25, stratify=y.numpy(), random_state=0)
    tr, te = torch.as_tensor(tr), torch.as_tensor(te)
    xtr, xte = x[tr], x[te]
    if standardise:
        mean, std = xtr.mean(0, keepdim=True), xtr.std(0, keepdim=True)
        std = torch.where(std == 0, torch.ones_like(std), std)
        xtr, xte = (xtr - mean) / std, (xte - mean) / std
    return TensorDataset(xtr.contiguous(), y[tr]), TensorDataset(xte.contiguous(), y[te])


def _subset(ds: Dataset, n: int) -> Dataset:
    if n and n < len(ds):
        return torch.utils.data.Subset(ds, range(n))
    return ds


def load_task(
    dataset: str, root: str | Path = "data", n_train: int = 0, n_test: int = 0, max_len: int = 24, tokenizer=None
) -> TaskData:
    """Build the train/test sets of `dataset` (DESIGN.md §5). n_train / n_test = 0 keeps all examples."""
    name = dataset.lower()
    if name in ("digits", "mnist5k"):
        x, y = as_tensors(get_dataset(name, "all", root=root))
        train, test = _stratified(x.float(), y.long(), standardise=name == "digits")
        data = TaskData(train, test, 10, "img", tuple(x.shape[1:]))
    elif name == "synthetic_order":
        train = get_dataset(name, "train", root=root, n=n_train or 2000, length=max_len)
        test = get_dataset(name, "test", root=root, n=n_test or 500, length=max_len)
        return TaskData(train, test, 2, "nlp", (max_len,))
    elif name in ("mnist", "cifar10", "cifar100"):
        data = _vision(name, root)
    elif name == "imagenet":
        data = _imagenet(root)
    elif name in GLUE_TASKS:
        data = _glue(name, root, max_len, tokenizer)
    else:
        raise UsageError(f"unknown dataset {dataset!r}; choose from {', '.join(IMG_DATASETS + NLP_DATASETS)}")
    data.train, data.test = _subset(data.train, n_train), _subset(data.test, n_test)
    return data


def _vision(name: str, root) -> TaskData:
    from torchvision import transforms as T

    if name == "mnist":
        train_tf = test_tf = T.ToTensor()
        classes, shape = 10, (1, 28, 28)
    else:
        train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor()])
        test_tf = T.ToTensor()
        classes, shape = (10 if name == "cifar10" else 100), (3, 32, 32)
    train = get_dataset(name, "train", root=root, transform=train_tf)
    test = get_dataset(name, "test", root=root, transform=test_tf)
    return TaskData(train, test, classes, "img", shape)


def _imagenet(root) -> TaskData:
    from torchvision import transforms as T

    train_tf = T.Compose([T.Resize(256), T.RandomCrop(224), T.RandomHorizontalFlip(), T.ToTensor()])
    test_tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])
    train = get_dataset("imagenet", "train", root=root, transform=train_tf)
    test = get_dataset("imagenet", "val", root=root, transform=test_tf)
    return TaskData(train, test, 1000, "img", (3, 224, 224))


def _glue(task: str, root, max_len: int, tokenizer) -> TaskData:
    """GLUE task tokenised to (input_ids, attention_mask, label) tensors; MNLI evaluates on validation_matched."""
    if tokenizer is None:
        raise UsageError(f"GLUE task {task!r} needs a tokenizer: pass --model_path with bert-base-uncased files")
    keys = {"sst2": ("sentence", None), "qnli": ("question", "sentence"), "mnli": ("premise", "hypothesis")}
    keys["mrpc"] = ("sentence1", "sentence2")
    a, b = keys[task]
    out = []
    for split in ("train", "validation_matched" if task == "mnli" else "validation"):
        ds = get_dataset("glue", split, root=root, task=task)
        enc = tokenizer(
            list(ds[a]), list(ds[b]) if b else None, truncation=True, max_length=max_len, padding="max_length"
        )
        ids = torch.tensor(enc["input_ids"])
        mask = torch.tensor(enc["attention_mask"])
        out.append(TensorDataset(ids, mask, torch.tensor(list(ds["label"]))))
    return TaskData(out[0], out[1], 3 if task == "mnli" else 2, "nlp", (max_len,))
