"""sklearn diabetes (442 x 10), MLP 10-64-64-1 on standardised features and target (README.md §3); METRIC rmse.

Standardisation uses the training rows' mean and standard deviation, so an rmse of 1.0 is the constant predictor.
"""

from __future__ import annotations

from functools import lru_cache

from arena.workloads import _common as C
from common.models import get_model

NAME = "regression"
METRIC, DIRECTION = "rmse", "min"
BATCH_SIZE, STEP_HINT, EVAL_EVERY = 32, 800, 25
FAMILY, DAG = None, None
TIER = "cpu"
SQUARED_LOSS = True  # the loss is the plain mean squared error (twice the theory's 0.5 * MSE)

loss = C.mse_loss
criterion = C.mse_criterion
evaluate = C.rmse


@lru_cache(maxsize=1)
def _splits():
    train, val, test = C.cached_split("diabetes", 100, 50)
    x, y = train.tensors
    mx, sx, my, sy = x.mean(0), x.std(0), y.mean(), y.std()

    def norm(ds):
        a, b = ds.tensors
        return C.TensorDataset((a - mx) / sx, (b - my) / sy)

    return norm(train), norm(val), norm(test)


def build(seed: int, device) -> dict:
    """mlp(10, (64, 64), 1) on the fixed 292/100/50 split."""
    train, val, test = _splits()
    model = get_model("mlp", in_features=10, hidden=(64, 64), num_classes=1).to(device)
    return {"model": model, "train": train, "val": val, "test": test}
