"""5,000 real MNIST images, the small BatchNorm CNN of common.models (width 16) (README.md §3); METRIC accuracy."""

from __future__ import annotations

from arena.workloads import _common as C
from common.models import get_model

NAME = "mnist5k_cnn"
METRIC, DIRECTION = "accuracy", "max"
BATCH_SIZE, STEP_HINT, EVAL_EVERY = 64, 300, 30
FAMILY, DAG = None, None
TIER = "cpu"

loss = C.classification_loss
criterion = C.criterion
evaluate = C.accuracy


def build(seed: int, device) -> dict:
    """cnn_bn(width=16) on the fixed 3000/1000/1000 split of mnist5k."""
    train, val, test = C.cached_split("mnist5k", 1000, 1000)
    model = get_model("cnn_bn", in_channels=1, num_classes=10, width=16, image_size=28).to(device)
    return {"model": model, "train": train, "val": val, "test": test}
