"""NAS-Bench-201 TinyNetwork (DESIGN.md §10) with the eq. 4 init of DESIGN.md §3.

stem conv3x3 + BN -> N cells at C -> reduction to 2C -> N cells -> reduction to 4C -> N cells -> BN-ReLU -> global
pool -> Linear. Init (``paper``/``reference``/``he``): only conv weights are redrawn, N(0, 2/(fan_in * d)) with
fan_in = C_in q^2; in cells d = d_in(target) (paper) or max(d_in(source), 1) (reference), counting non-none inputs;
reduction (conv_a, conv_b, shortcut) degrees (1, 2, 2) paper, (2, 1, 2) reference; stem degree 1; he: d = 1.
Classifier std sqrt(2)/fan_in (paper, he) or 2/fan_in (reference). Biases 0, BN gamma 1 beta 0. ``torch``: defaults.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hp_scaling.dags import _as_dag
from hp_scaling.models.cell_operations import InferCell, ReLUConvBN, ResNetBasicblock
from hp_scaling.scaling import BASE_INITS

__all__ = ["REDUCTION_DEGREES", "TinyNetwork"]

REDUCTION_DEGREES = {"paper": (1, 2, 2), "reference": (2, 1, 2), "he": (1, 1, 1)}


def _conv_normal_(conv: nn.Conv2d, d: int) -> None:
    fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
    conv.weight.normal_(0.0, math.sqrt(2.0 / (fan_in * max(d, 1))))


class TinyNetwork(nn.Module):
    """NB201 macro skeleton around one cell code (or arch string)."""

    def __init__(self, code: str, C: int = 16, N: int = 5, num_classes: int = 10, in_ch: int = 3, init: str = "paper"):
        super().__init__()
        if C < 1 or N < 1 or num_classes < 1:
            raise ValueError(f"C, N and num_classes must be >= 1, got {C}, {N}, {num_classes}")
        self.dag = _as_dag(code, "nb201")
        self.code, self.C, self.N, self.num_classes = self.dag.code, C, N, num_classes
        self.stem = nn.Sequential(nn.Conv2d(in_ch, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        cells = []
        c_prev = C
        for stage, c in enumerate((C, 2 * C, 4 * C)):
            if stage > 0:
                cells.append(ResNetBasicblock(c_prev, c))
            cells.extend(InferCell(self.dag.code, c) for _ in range(N))
            c_prev = c
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=False))
        self.classifier = nn.Linear(c_prev, num_classes)
        self.init = init
        self.reset_parameters(init)

    def reset_parameters(self, init: str) -> None:
        if init not in BASE_INITS:
            raise ValueError(f"init must be one of {BASE_INITS}, got {init!r}")
        if init == "torch":
            return
        dag = self.dag
        with torch.no_grad():
            _conv_normal_(self.stem[0], 1)
            for cell in self.cells:
                if isinstance(cell, ResNetBasicblock):
                    da, db, ds = REDUCTION_DEGREES[init]
                    _conv_normal_(cell.conv_a.conv, da)
                    _conv_normal_(cell.conv_b.conv, db)
                    _conv_normal_(cell.downsample[1], ds)
                    continue
                for key, op in cell.ops.items():
                    if isinstance(op, ReLUConvBN):
                        s, t = map(int, key.split("_"))
                        d = {"paper": dag.in_degree(t), "reference": dag.in_degree(s), "he": 1}[init]
                        _conv_normal_(op.conv, d)
            fan = self.classifier.in_features
            self.classifier.weight.normal_(0.0, (2.0 if init == "reference" else math.sqrt(2.0)) / fan)
            self.classifier.bias.zero_()
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for cell in self.cells:
            h = cell(h)
        h = self.lastact(h)
        return self.classifier(h.mean(dim=(2, 3)))
