"""GPU tier: CIFAR-10 with the small ViT of common.models (patch 4, 6 layers, width 256) (README.md §3).

Needs ``--device cuda`` and the data; ``build(..., limit=n, hidden_dim=h)`` is the tiny form the tests run on the CPU.
"""

from __future__ import annotations

from arena.workloads import _cifar
from arena.workloads import _common as C
from common.models import get_model

NAME = "cifar10_vit"
METRIC, DIRECTION = "accuracy", "max"
BATCH_SIZE, STEP_HINT, EVAL_EVERY = 128, 7000, 350
FAMILY, DAG = None, None
TIER = "gpu"

loss = C.classification_loss
criterion = C.criterion
evaluate = C.accuracy
check_data = _cifar.check_data


def build(seed: int, device, limit: int | None = None, hidden_dim: int = 256, num_layers: int = 6) -> dict:
    """vit_small(image_size=32, patch_size=4, hidden_dim, num_layers) on the CIFAR-10 splits."""
    train, val, test = _cifar.splits(limit)
    model = get_model(
        "vit_small",
        image_size=32,
        patch_size=4,
        num_layers=num_layers,
        num_heads=4,
        hidden_dim=hidden_dim,
        mlp_dim=2 * hidden_dim,
        num_classes=10,
    ).to(device)
    return {"model": model, "train": train, "val": val, "test": test}
