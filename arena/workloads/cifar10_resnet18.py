"""GPU tier: CIFAR-10 with the CIFAR ResNet-18 of common.models (README.md §3); needs ``--device cuda`` and the data.

On the CPU the harness refuses it with one line; ``build(..., limit=n, width=w)`` is the tiny form the tests run.
"""

from __future__ import annotations

from arena.workloads import _cifar
from arena.workloads import _common as C
from common.models import get_model

NAME = "cifar10_resnet18"
METRIC, DIRECTION = "accuracy", "max"
BATCH_SIZE, STEP_HINT, EVAL_EVERY = 128, 7000, 350
FAMILY, DAG = None, None
TIER = "gpu"

loss = C.classification_loss
criterion = C.criterion
evaluate = C.accuracy
check_data = _cifar.check_data


def build(seed: int, device, limit: int | None = None, width: int = 64) -> dict:
    """resnet_cifar(depth=18, width) on 45,000/5,000/10,000 CIFAR-10 images."""
    train, val, test = _cifar.splits(limit)
    model = get_model("resnet_cifar", depth=18, width=width, num_classes=10).to(device)
    return {"model": model, "train": train, "val": val, "test": test}
