"""GPU-tier CIFAR-10 data (README.md §3): the genuine python-pickle files under data/cifar-10-batches-py/.

Validation is the last 5,000 of a fixed permutation of the 50,000 training images; the official 10,000 are test.
``limit`` keeps only the first rows of every split (the tests build tiny genuine-format files on the CPU).
"""

from __future__ import annotations

import torch
from torch.utils.data import Subset

from arena.workloads import _common as C
from common.data import get_dataset

N_VAL = 5000


def check_data() -> None:
    """Raise common.data.DatasetNotFoundError (one line, exit 2 in the harness) when the CIFAR-10 files are missing."""
    get_dataset("cifar10", "test", root=C.DATA_ROOT)


def splits(limit: int | None = None) -> tuple:
    """(train, val, test) as Datasets of (3 x 32 x 32 float image, label)."""
    full = get_dataset("cifar10", "train", root=C.DATA_ROOT)
    test = get_dataset("cifar10", "test", root=C.DATA_ROOT)
    perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(C.SPLIT_SEED))
    n_val = min(N_VAL, len(full) // 5)
    train_idx, val_idx = perm[n_val:], perm[:n_val]
    if limit is not None:
        train_idx, val_idx = train_idx[:limit], val_idx[:limit]
        test = Subset(test, range(min(limit, len(test))))
    return Subset(full, train_idx.tolist()), Subset(full, val_idx.tolist()), test
