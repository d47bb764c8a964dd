"""DAG MLP of Chen et al., ICLR 2024 (DESIGN.md §3, 5): a stem, Linear/skip edges between N nodes, a readout.

Block orders (DESIGN.md §3):
  pre  (paper, he):        z_0 = stem(x); z_t = sum_s op(z_s); a Linear edge is W act(z_s) + b; out = R act(z_{N-1}).
  post (reference, torch): x_0 = act(stem(x)); x_t = sum_s op(x_s); a Linear edge is act(W x_s + b); out = R x_{N-1}.
Skip edges are the identity. Zero edges have no parameters; a node with no inputs is the zero tensor.

``dag_forward`` is a pure function of a parameter dict; it broadcasts over a leading copy dim G (weights (G, out, in),
input (B, in) or (G, B, in)), which is the ``bmm`` path of hp_scaling.stacked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hp_scaling.dags import parse_code
from hp_scaling.scaling import default_block, edge_std, readout_std, stem_std

__all__ = ["DagMLP", "activation", "dag_forward"]


def activation(name: str):
    """relu or gelu as a function."""
    if name == "relu":
        return F.relu
    if name == "gelu":
        return F.gelu
    raise ValueError(f"act must be relu or gelu, got {name!r}")


def _linear(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    if w.dim() == 2:
        return F.linear(h, w, b)
    out = torch.matmul(h, w.transpose(-1, -2))  # (G, B, out): one batched matmul over the G copies
    return out if b is None else out + b.unsqueeze(-2)


def dag_forward(edges, n_nodes, params, x, act, block) -> list[torch.Tensor]:
    """Node values of a DAG MLP (list of N tensors) plus the logits appended last.

    Args: edges: list of (s, t, parameterized); params: dict with stem.weight/bias, edges.<s>_<t>.weight/bias,
    readout.weight/bias (bias entries optional); act: function; block: "pre" or "post".
    """
    f = act
    g = params.get
    h0 = _linear(x, params["stem.weight"], g("stem.bias"))
    nodes = [h0 if block == "pre" else f(h0)]
    incoming: list[list[tuple[int, bool]]] = [[] for _ in range(n_nodes)]
    for s, t, par in edges:
        incoming[t].append((s, par))
    for t in range(1, n_nodes):
        acc = None
        for s, par in incoming[t]:
            src = nodes[s]
            if par:
                key = f"edges.{s}_{t}"
                if block == "pre":
                    y = _linear(f(src), params[key + ".weight"], g(key + ".bias"))
                else:
                    y = f(_linear(src, params[key + ".weight"], g(key + ".bias")))
            else:
                y = src
            acc = y if acc is None else acc + y
        nodes.append(torch.zeros_like(nodes[0]) if acc is None else acc)
    last = f(nodes[-1]) if block == "pre" else nodes[-1]
    nodes.append(_linear(last, params["readout.weight"], g("readout.bias")))
    return nodes


class DagMLP(nn.Module):
    """MLP over a DAG code (digits 0 none, 1 skip, 2 Linear), initialized by ``init`` (DESIGN.md §3)."""

    def __init__(
        self,
        code: str,
        in_dim: int,
        width: int = 64,
        num_classes: int = 10,
        act: str = "relu",
        block: str = "auto",
        bn: bool = False,
        bias: bool = True,
        init: str = "paper",
    ):
        super().__init__()
        if width < 1 or in_dim < 1 or num_classes < 1:
            raise ValueError(f"width, in_dim and num_classes must be >= 1, got {width}, {in_dim}, {num_classes}")
        self.dag = parse_code(code, "mlp")
        self.code, self.width, self.num_classes, self.in_dim = code, width, num_classes, in_dim
        self.act_name, self.init, self.bn = act, init, bn
        self.block = default_block(init, block)
        self._act = activation(act)
        self.stem = nn.Linear(in_dim, width, bias=bias)
        self.edges = nn.ModuleDict()
        self.norms = nn.ModuleDict()
        self.edge_list = [(s, t, self.dag.is_parameterized(d)) for s, t, d in self.dag.edges()]
        for s, t, par in self.edge_list:
            if par:
                self.edges[f"{s}_{t}"] = nn.Linear(width, width, bias=bias)
                if bn:
                    self.norms[f"{s}_{t}"] = nn.BatchNorm1d(width)
        self.readout = nn.Linear(width, num_classes, bias=bias)
        self.reset_parameters(init)

    def reset_parameters(self, init: str) -> None:
        """Apply an init convention of DESIGN.md §3; biases 0, BN gamma 1 and beta 0 (torch: layer defaults)."""
        default_block(init)  # validates
        if init == "torch":
            return
        with torch.no_grad():
            self.stem.weight.normal_(0.0, stem_std(init, self.in_dim, self.width))
            for key, lin in self.edges.items():
                s, t = map(int, key.split("_"))
                d_t, d_s = self.dag.in_degree(t), self.dag.in_degree(s)
                lin.weight.normal_(0.0, edge_std(init, self.width, self.width, d_t, d_s))
            self.readout.weight.normal_(0.0, readout_std(init, self.width, self.num_classes))
            for m in self.modules():
                if isinstance(m, nn.Linear) and m.bias is not None:
                    m.bias.zero_()
                if isinstance(m, nn.BatchNorm1d):
                    m.reset_parameters()

    def node_values(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[z_0, ..., z_{N-1}, logits] (pre) or [x_0, ..., x_{N-1}, logits] (post)."""
        x = x.flatten(1)
        if len(self.norms):
            return self._node_values_bn(x)
        params = dict(self.named_parameters())
        return dag_forward(self.edge_list, self.dag.n_nodes, params, x, self._act, self.block)

    def _node_values_bn(self, x):
        f = self._act
        h0 = self.stem(x)
        nodes = [h0 if self.block == "pre" else f(h0)]
        for t in range(1, self.dag.n_nodes):
            acc = None
            for s, tt, par in self.edge_list:
                if tt != t:
                    continue
                key = f"{s}_{t}"
                if par:
                    lin, bn = self.edges[key], self.norms[key]
                    y = bn(lin(f(nodes[s]))) if self.block == "pre" else f(bn(lin(nodes[s])))
                else:
                    y = nodes[s]
                acc = y if acc is None else acc + y
            nodes.append(torch.zeros_like(nodes[0]) if acc is None else acc)
        last = f(nodes[-1]) if self.block == "pre" else nodes[-1]
        nodes.append(self.readout(last))
        return nodes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.node_values(x)[-1]
