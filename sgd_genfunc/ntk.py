"""Neural tangent kernels of the paper's one-hidden-layer ReLU network, (E12), and the lr mapping of DESIGN.md §3.1.

Model: h = W x / sqrt(d) + b_1, f = a . relu(h) / sqrt(H), with W (H x d), b_1 (H), a (out x H) ~ N(0, 1) and no
readout bias. Symbols: N points, d input dimension, H hidden width, phi = relu(h) (N x H), M = 1[h > 0] (N x H).

(E12) closed form: K = [phi phi^T + ((M a^2) M^T) o (X X^T / d + 1)] / H, O(N^2 H) time, O(N H) memory.
Infinite width: s = |x|^2/d + 1, r = x.x'/d + 1, theta = arccos(r / sqrt(s s')),
      K = sqrt(s s') (sin theta + (pi - theta) cos theta) / (2 pi) + r (pi - theta) / (2 pi).
lr mapping (DESIGN.md §3.1): with the batch loss 0.5 * MSE, torch SGD at lr matches (E2) at
lr = alpha * N / lambda_max(K).

Notes: the reference's analytic infinite-width kernel subtracted the diagonal angle row-wise, returned an
unsymmetrized matrix and dropped the norm product; this is the symmetric arc-cosine form (DESIGN.md §3.9).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap


class NTKTwoLayerMLP(nn.Module):
    """f(x) = a . relu(W x / sqrt(d) + b_1) / sqrt(H) in NTK parametrization (all weights ~ N(0, 1))."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int = 1):
        super().__init__()
        if in_dim < 1 or hidden_dim < 1 or out_dim < 1:
            raise ValueError(f"dimensions must be >= 1, got {in_dim}, {hidden_dim}, {out_dim}")
        self.in_dim, self.hidden_dim, self.out_dim = in_dim, hidden_dim, out_dim
        self.W = nn.Parameter(torch.randn(hidden_dim, in_dim))
        self.b1 = nn.Parameter(torch.randn(hidden_dim))
        self.a = nn.Parameter(torch.randn(out_dim, hidden_dim))

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activations h (N x H) of flattened inputs."""
        x = x.reshape(x.shape[0], -1)
        return x @ self.W.T / math.sqrt(self.in_dim) + self.b1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.hidden(x)) @ self.a.T / math.sqrt(self.hidden_dim)
        return out.squeeze(-1) if self.out_dim == 1 else out


@torch.no_grad()
def ntk_mlp1(model: NTKTwoLayerMLP, X: torch.Tensor) -> torch.Tensor:
    """Closed-form empirical NTK of `NTKTwoLayerMLP` (out_dim = 1) on X, (E12); N x N in the model's dtype."""
    if model.out_dim != 1:
        raise ValueError(f"ntk_mlp1 needs out_dim = 1, got {model.out_dim}")
    X = X.reshape(X.shape[0], -1).to(model.W.dtype)
    h = model.hidden(X)
    phi = torch.relu(h)
    M = (h > 0).to(h.dtype)
    gram = X @ X.T / model.in_dim + 1.0
    K = phi @ phi.T + ((M * model.a[0] ** 2) @ M.T) * gram
    return K / model.hidden_dim


def _jacobian_blocks(model: nn.Module, params: dict, x: torch.Tensor) -> list[torch.Tensor]:
    """Per-example gradients of the scalar output: one (n, numel) matrix per parameter, never concatenated.

    Each matrix is a view of the tensor vmap(jacrev) returns; concatenating them into one (n, P) matrix would copy
    the whole Jacobian once more (about half the cost of forming it, DESIGN.md §8 B4).
    """

    def f(p, xi):
        return functional_call(model, p, (xi.unsqueeze(0),)).reshape(())

    jac = vmap(jacrev(f), in_dims=(None, 0))(params, x)
    return [j.reshape(x.shape[0], -1) for j in jac.values()]


def _gram(A: list[torch.Tensor], B: list[torch.Tensor], out: torch.Tensor | None = None) -> torch.Tensor:
    """sum_k A_k B_k^T over the parameter blocks (one GEMM per parameter, accumulated in place)."""
    out = torch.matmul(A[0], B[0].T, out=out) if out is not None else A[0] @ B[0].T
    for a, b in zip(A[1:], B[1:]):
        out.addmm_(a, b.T)
    return out


def empirical_ntk(
    model: nn.Module,
    x1: torch.Tensor,
    x2: torch.Tensor | None = None,
    chunk_size: int = 128,
    max_jacobian_bytes: int = 2**30,
) -> torch.Tensor:
    """Empirical NTK J(x1) J(x2)^T of a scalar-output model with torch.func.

    The Jacobian of x2 (all P parameters, one matrix per parameter) is kept whole when it fits in
    `max_jacobian_bytes`; K is then one GEMM per parameter (x2 = None) or `chunk_size` row blocks of x1 against it.
    Otherwise (the recompute path) at most 2 * chunk_size Jacobian rows are alive at a time: a pivot block of
    chunk_size + chunk_size // 2 rows against streamed blocks of the rest, so peak extra memory is about two
    chunk x P Jacobians plus the N1 x N2 result (DESIGN.md §8 B4).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    params = {k: v.detach() for k, v in model.named_parameters()}
    n_params = sum(v.numel() for v in params.values())
    same = x2 is None
    x2 = x1 if same else x2
    N1, N2 = x1.shape[0], x2.shape[0]
    dtype = next(iter(params.values())).dtype
    K = torch.empty(N1, N2, dtype=dtype, device=x1.device)
    itemsize = torch.finfo(dtype).bits // 8
    if N2 * n_params * itemsize <= max_jacobian_bytes:
        J2 = _jacobian_blocks(model, params, x2)
        if same:
            return _gram(J2, J2, out=K)
        for i in range(0, N1, chunk_size):
            K[i : i + chunk_size] = _gram(_jacobian_blocks(model, params, x1[i : i + chunk_size]), J2)
        return K
    _recompute(model, params, x1, None if same else x2, chunk_size, K)
    return K


def _recompute(
    model: nn.Module, params: dict, x1: torch.Tensor, x2: torch.Tensor | None, chunk_size: int, K: torch.Tensor
) -> None:
    """K = J(x1) J(x2)^T with at most 2 * chunk_size Jacobian rows in memory.

    A pivot block of p = chunk_size + chunk_size // 2 rows of x1 meets streamed blocks of s = 2 chunk_size - p rows of
    x2. For x2 = None only the blocks right of the diagonal are computed and mirrored, so N + N^2 / (2 p) Jacobian
    rows are formed (3,120 for N = 1000, chunk 128) instead of N^2 / (2 chunk) with two equal blocks (3,712).
    """
    pivot, stream = chunk_size + chunk_size // 2, chunk_size - chunk_size // 2
    same = x2 is None
    x2 = x1 if same else x2
    for i in range(0, x1.shape[0], pivot):
        rows = slice(i, i + pivot)
        Jp = _jacobian_blocks(model, params, x1[rows])
        if same:
            K[rows, rows] = _gram(Jp, Jp)
        for j in range(i + pivot if same else 0, x2.shape[0], stream):
            cols = slice(j, j + stream)
            Js = None  # release the previous streamed block first
            Js = _jacobian_blocks(model, params, x2[cols])
            K[rows, cols] = _gram(Jp, Js)
            if same:
                K[cols, rows] = K[rows, cols].T


def ntk_relu_infinite(X: torch.Tensor) -> torch.Tensor:
    """Infinite-width NTK of `NTKTwoLayerMLP` (arc-cosine form, symmetric), N x N in X's floating dtype."""
    X = X.reshape(X.shape[0], -1)
    if not X.is_floating_point():
        X = X.double()
    d = X.shape[1]
    r = X @ X.T / d + 1.0
    s = torch.diagonal(r).clone()
    norm = torch.sqrt(s[:, None] * s[None, :])
    cos = torch.clamp(r / norm, -1.0, 1.0)
    theta = torch.arccos(cos)
    K = norm * (torch.sin(theta) + (math.pi - theta) * cos) / (2 * math.pi) + r * (math.pi - theta) / (2 * math.pi)
    return 0.5 * (K + K.T)


def lr_scale(K: torch.Tensor) -> float:
    """N / lambda_max(K): torch SGD with lr = alpha * lr_scale follows (E2) with step alpha (DESIGN.md §3.1)."""
    lam_max = float(torch.linalg.eigvalsh(K.double())[-1])
    if lam_max <= 0:
        raise ValueError("kernel has no positive eigenvalue")
    return K.shape[0] / lam_max
