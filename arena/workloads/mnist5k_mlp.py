"""5,000 real MNIST images, forward_grad's fully connected net 784-256-256-10 (README.md §3); METRIC accuracy."""

from __future__ import annotations

from arena.workloads import _common as C
from forward_grad.nn_training.models import fc

NAME = "mnist5k_mlp"
METRIC, DIRECTION = "accuracy", "max"
BATCH_SIZE, STEP_HINT, EVAL_EVERY = 128, 400, 20
FAMILY, DAG = None, None
TIER = "cpu"

loss = C.classification_loss
criterion = C.criterion
evaluate = C.accuracy


def build(seed: int, device) -> dict:
    """forward_grad's FC (an nn.Sequential of blocks, so node-mode forward gradients apply) on 3000/1000/1000."""
    train, val, test = C.cached_split("mnist5k", 1000, 1000)
    return {"model": fc(784, width=256, num_classes=10).to(device), "train": train, "val": val, "test": test}
