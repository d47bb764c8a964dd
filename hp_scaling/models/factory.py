"""build_model(arch, code, ...): DagMLP, DagCNN or TinyNetwork with the chosen init (DESIGN.md §3, 5)."""

from __future__ import annotations

import math

from torch import nn

from hp_scaling.models.cnn_dags import DagCNN
from hp_scaling.models.mlp_dags import DagMLP
from hp_scaling.models.tiny_network import TinyNetwork

__all__ = ["ARCHS", "build_model"]

ARCHS = ("mlp", "cnn", "tinynetwork")


def build_model(
    arch: str,
    code: str,
    *,
    in_shape: tuple[int, ...],
    num_classes: int,
    width: int | None = None,
    init: str = "paper",
    block: str = "auto",
    act: str = "relu",
    bn: bool = False,
    kernel_size: int = 3,
    stride: int = 1,
    cells_per_stage: int = 5,
) -> nn.Module:
    """Build an arch for inputs of shape (C, H, W) (or (D,)); width defaults to 16 (tinynetwork) or 64."""
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    if width is None:
        width = 16 if arch == "tinynetwork" else 64
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    if arch == "mlp":
        return DagMLP(code, math.prod(in_shape), width, num_classes, act, block, bn, True, init)
    if len(in_shape) != 3:
        raise ValueError(f"{arch} needs image input (C, H, W), got shape {tuple(in_shape)}")
    if arch == "cnn":
        return DagCNN(code, in_shape[0], width, num_classes, act, block, bn, True, init, kernel_size, stride)
    return TinyNetwork(code, C=width, N=cells_per_stage, num_classes=num_classes, in_ch=in_shape[0], init=init)
