"""Former name of :mod:`autowu.harness` (and of the offline loaders now in :mod:`autowu.data`); kept for imports."""

from autowu.data import OFFLINE_DATASETS, load_offline
from autowu.harness import (
    DEFAULT_WEIGHT_DECAY,
    OPTIMIZERS,
    FitResult,
    build_small_model,
    evaluate,
    fit_tensors,
    make_optimizer,
    make_scheduler,
)

__all__ = [
    "DEFAULT_WEIGHT_DECAY",
    "OPTIMIZERS",
    "OFFLINE_DATASETS",
    "make_optimizer",
    "make_scheduler",
    "FitResult",
    "fit_tensors",
    "evaluate",
    "load_offline",
    "build_small_model",
]
