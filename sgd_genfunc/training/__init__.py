"""Sampled regimes: linearized residual dynamics, real-network training, and the four-regime driver."""

from sgd_genfunc.training.batches import batch_streams, draw_batches
from sgd_genfunc.training.linearized import (
    LinearizedResult,
    ResidualAdam,
    ResidualSGD,
    residual_gradient,
    train_linearized,
)
from sgd_genfunc.training.nn import NNTrainOptions, train_nn
from sgd_genfunc.training.regimes import RegimeOptions, run_regimes

__all__ = [
    "batch_streams",
    "draw_batches",
    "LinearizedResult",
    "ResidualAdam",
    "ResidualSGD",
    "residual_gradient",
    "train_linearized",
    "NNTrainOptions",
    "train_nn",
    "RegimeOptions",
    "run_regimes",
]
