"""sklearn digits (1797 real 8x8 images), MLP 64-128-128-10 (README.md §3).

The validation split has 400 images, too few for a stable accuracy target (it moves in steps of 1/400), so METRIC is
the validation cross-entropy (lower is better).
"""

from __future__ import annotations

from arena.workloads import _common as C
from common.models import get_model

NAME = "digits_mlp"
METRIC, DIRECTION = "val_loss", "min"
BATCH_SIZE, STEP_HINT, EVAL_EVERY = 64, 1200, 50
FAMILY, DAG = None, None
TIER = "cpu"

loss = C.classification_loss
criterion = C.criterion
evaluate = C.mean_cross_entropy


def build(seed: int, device) -> dict:
    """Model (seeded by the harness before this call) and the fixed 1100/400/297 split."""
    train, val, test = C.cached_split("digits", 400, 297)
    model = get_model("mlp", in_features=64, hidden=(128, 128), num_classes=10).to(device)
    return {"model": model, "train": train, "val": val, "test": test}
