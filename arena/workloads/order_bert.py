"""line_search's synthetic_order task (does token A come before token B?), a tiny BERT from a config (README.md §3).

Sequences of 24 tokens over a vocabulary of 64; the model is common.models' bert_tiny (2 layers, width 32, dropout
0.1, random init). METRIC accuracy on 1000 validation sequences.
"""

from __future__ import annotations

from functools import lru_cache

import torch.nn.functional as F

from arena.workloads import _common as C
from common.data import as_tensors, get_dataset
from common.models import get_model

NAME = "order_bert"
METRIC, DIRECTION = "accuracy", "max"
BATCH_SIZE, STEP_HINT, EVAL_EVERY = 64, 400, 50
FAMILY, DAG = None, None
TIER = "cpu"

criterion = C.criterion
evaluate = C.accuracy


def loss(model, batch):
    """Mean cross-entropy of the [CLS] classifier on one (input_ids, labels) batch."""
    x, y = batch
    return F.cross_entropy(model(x), y)


@lru_cache(maxsize=1)
def _splits():
    import line_search.harness.data  # noqa: F401 - registers synthetic_order in common.data

    x, y = as_tensors(get_dataset("synthetic_order", "train", root=C.DATA_ROOT, n=3000))
    train, val, _ = C.split_tensors(x, y, 1000, 0)
    xt, yt = as_tensors(get_dataset("synthetic_order", "test", root=C.DATA_ROOT))
    return train, val, C.TensorDataset(xt, yt)


def build(seed: int, device) -> dict:
    """bert_tiny(num_labels=2) on 2000/1000 (train/val) sequences and the task's own 500 test sequences."""
    train, val, test = _splits()
    return {"model": get_model("bert_tiny", num_labels=2).to(device), "train": train, "val": val, "test": test}
