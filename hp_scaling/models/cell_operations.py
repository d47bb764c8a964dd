"""NAS-Bench-201 cell operations (DESIGN.md §10): none, skip_connect, ReLU-Conv-BN (1x1, 3x3, no bias), AvgPool3x3.

A cell has 4 nodes; node t is the sum of its op outputs (``none`` edges are not computed); the cell returns node 3.
A node with no non-none input is the zero tensor.
"""

from __future__ import annotations

import torch
from torch import nn

from hp_scaling.dags import NB201_OPS, parse_code

__all__ = ["InferCell", "ReLUConvBN", "ResNetBasicblock", "make_op"]


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv2d (no bias) -> BatchNorm2d."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out),
        )

    @property
    def conv(self) -> nn.Conv2d:
        return self[1]


def make_op(name: str, c: int) -> nn.Module:
    """Build one NB201 op (``none`` is not built: callers skip it)."""
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3, 1, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown or unbuildable NB201 op {name!r}")


class InferCell(nn.Module):
    """A fixed NB201 cell from a code such as ``3_03_101``."""

    def __init__(self, code: str, c: int):
        super().__init__()
        self.dag = parse_code(code, "nb201")
        self.ops = nn.ModuleDict()
        self.edge_list = []
        for s, t, d in self.dag.edges():
            self.ops[f"{s}_{t}"] = make_op(NB201_OPS[d], c)
            self.edge_list.append((s, t))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for t in range(1, 4):
            acc = None
            for s, tt in self.edge_list:
                if tt == t:
                    y = self.ops[f"{s}_{t}"](nodes[s])
                    acc = y if acc is None else acc + y
            nodes.append(torch.zeros_like(x) if acc is None else acc)
        return nodes[3]


class ResNetBasicblock(nn.Module):
    """NB201 reduction: conv_a (ReLU-Conv3x3 s2-BN), conv_b (ReLU-Conv3x3-BN), shortcut AvgPool2 -> Conv1x1."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(2, stride=2, padding=0), nn.Conv2d(c_in, c_out, 1, stride=1, padding=0, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.downsample(x)
