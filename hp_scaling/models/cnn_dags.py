"""DAG CNN of Chen et al., ICLR 2024 (DESIGN.md §10): conv stem, Conv/skip edges with 'same' padding, global average
pool, Linear readout. Block orders as in mlp_dags (pre: W act(z) + b; post: act(W x + b)). eq. 9: fan = width * q^2.
``stride`` applies to the stem only, so every edge keeps the spatial size."""

from __future__ import annotations

import torch
from torch import nn

from hp_scaling.dags import parse_code
from hp_scaling.models.mlp_dags import activation
from hp_scaling.scaling import default_block, edge_std, readout_std, stem_std

__all__ = ["DagCNN"]


class DagCNN(nn.Module):
    """CNN over a DAG code (digits 0 none, 1 skip, 2 Conv q x q), initialized by ``init`` (DESIGN.md §3)."""

    def __init__(
        self,
        code: str,
        in_ch: int = 3,
        width: int = 64,
        num_classes: int = 10,
        act: str = "relu",
        block: str = "auto",
        bn: bool = False,
        bias: bool = True,
        init: str = "paper",
        kernel_size: int = 3,
        stride: int = 1,
    ):
        super().__init__()
        if width < 1 or in_ch < 1 or num_classes < 1:
            raise ValueError(f"width, in_ch and num_classes must be >= 1, got {width}, {in_ch}, {num_classes}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size}")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.dag = parse_code(code, "cnn")
        self.code, self.width, self.num_classes, self.in_ch = code, width, num_classes, in_ch
        self.q, self.init = kernel_size, init
        self.block = default_block(init, block)
        self._act = activation(act)
        q = kernel_size
        self.stem = nn.Conv2d(in_ch, width, q, stride=stride, padding=q // 2, bias=bias)
        self.edge_list = [(s, t, self.dag.is_parameterized(d)) for s, t, d in self.dag.edges()]
        self.edges = nn.ModuleDict()
        for s, t, par in self.edge_list:
            if par:
                layers = [nn.Conv2d(width, width, q, padding="same", bias=bias)]
                if bn:
                    layers.append(nn.BatchNorm2d(width))
                self.edges[f"{s}_{t}"] = nn.Sequential(*layers)
        self.readout = nn.Linear(width, num_classes, bias=bias)
        self.reset_parameters(init)

    def reset_parameters(self, init: str) -> None:
        default_block(init)
        if init == "torch":
            return
        q, w = self.q, self.width
        with torch.no_grad():
            self.stem.weight.normal_(0.0, stem_std(init, self.in_ch, w, q))
            for key, seq in self.edges.items():
                s, t = map(int, key.split("_"))
                std = edge_std(init, w * q * q, w * q * q, self.dag.in_degree(t), self.dag.in_degree(s))
                seq[0].weight.normal_(0.0, std)
            self.readout.weight.normal_(0.0, readout_std(init, w, self.num_classes))
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Conv2d)) and m.bias is not None:
                    m.bias.zero_()
                if isinstance(m, nn.BatchNorm2d):
                    m.reset_parameters()

    def node_values(self, x: torch.Tensor) -> list[torch.Tensor]:
        f = self._act
        h0 = self.stem(x)
        nodes = [h0 if self.block == "pre" else f(h0)]
        for t in range(1, self.dag.n_nodes):
            acc = None
            for s, tt, par in self.edge_list:
                if tt != t:
                    continue
                if par:
                    op = self.edges[f"{s}_{t}"]
                    y = op(f(nodes[s])) if self.block == "pre" else f(op(nodes[s]))
                else:
                    y = nodes[s]
                acc = y if acc is None else acc + y
            nodes.append(torch.zeros_like(nodes[0]) if acc is None else acc)
        last = f(nodes[-1]) if self.block == "pre" else nodes[-1]
        nodes.append(self.readout(last.mean(dim=(2, 3))))
        return nodes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.node_values(x)[-1]
