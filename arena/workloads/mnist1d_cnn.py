"""MNIST-1D, autowu's 1-D BatchNorm CNN (cnn1d_bn, width 16) (README.md §3); METRIC accuracy."""

from __future__ import annotations

from functools import lru_cache

from arena.workloads import _common as C
from common.data import as_tensors, get_dataset
from common.models import get_model

NAME = "mnist1d_cnn"
METRIC, DIRECTION = "accuracy", "max"
BATCH_SIZE, STEP_HINT, EVAL_EVERY = 128, 600, 25
FAMILY, DAG = None, None
TIER = "cpu"

loss = C.classification_loss
criterion = C.criterion
evaluate = C.accuracy


@lru_cache(maxsize=1)
def _splits():
    x, y = as_tensors(get_dataset("mnist1d", "train", root=C.DATA_ROOT))
    train, val, _ = C.split_tensors(x.unsqueeze(1), y, 1000, 0)
    xt, yt = as_tensors(get_dataset("mnist1d", "test", root=C.DATA_ROOT))
    return train, val, C.TensorDataset(xt.unsqueeze(1), yt)


def build(seed: int, device) -> dict:
    """cnn1d_bn(width=16, length=40); validation 1000 of the 4000 training rows, the official 1000 as test."""
    train, val, test = _splits()
    model = get_model("cnn1d_bn", in_channels=1, num_classes=10, width=16, length=40).to(device)
    return {"model": model, "train": train, "val": val, "test": test}
