"""sgd_genfunc (self ruleset): SGD with momentum at the loss-optimal (alpha, beta) that the generating-function
theory predicts from the initial network's spectrum (README.md §4).

At init, on the clock: the empirical NTK of the initial network (eval mode) on the first N_NTK training rows, summed
over the output units (the trace over classes); its eigenvalues lambda_k / lambda_max and the squared projections c_k
of the residual (one-hot targets minus the initial outputs: the squared-loss proxy of a classification workload)
on the eigenvectors; then the spectrally diagonal theory's best step alpha at beta = 0 and the best beta at that
alpha (sgd_genfunc.theory.optimal_alpha / optimal_beta) for STEP_HINT steps with the batch noise factor gamma of
BATCH_SIZE draws from n_train rows; mapped to torch by lr = alpha * N / lambda_max(K) (sgd_genfunc.ntk.lr_scale,
for the 0.5 * squared loss; halved where the workload's loss is the plain mean squared error, SQUARED_LOSS). The
update is heavy-ball SGD, v <- beta v - lr g, w <- w + v, so a negative optimal beta is taken as it is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sgd_genfunc.ntk import empirical_ntk, lr_scale
from sgd_genfunc.theory import gamma, optimal_alpha, optimal_beta

NAME = "genfunc_sgd"
RULESET = "self"
SEARCH_SPACE: dict = {}
N_NTK = 128


class _Unit(nn.Module):
    """Output unit `index` of a model as a scalar-output network (for empirical_ntk)."""

    def __init__(self, model: nn.Module, index: int) -> None:
        super().__init__()
        self.model, self.index = model, index

    def forward(self, x):
        out = self.model(x)
        return out.reshape(out.shape[0], -1)[:, self.index]


def _rows(dataset, n: int):
    if hasattr(dataset, "tensors"):
        return tuple(t[:n] for t in dataset.tensors)
    xs, ys = zip(*(dataset[i] for i in range(min(n, len(dataset)))))
    return torch.stack(xs), torch.as_tensor(ys)


def spectrum(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(K, lambda / lambda_max descending, c_k) of the summed-over-outputs NTK and the squared-loss residual."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            f0 = model(x)
        f0 = f0.reshape(f0.shape[0], -1)
        outputs = f0.shape[1]
        K = sum(empirical_ntk(_Unit(model, c), x) for c in range(outputs))
    finally:
        model.train(was_training)
    if y.dtype in (torch.int64, torch.int32) and outputs > 1:
        residual = F.one_hot(y, outputs).to(f0.dtype) - f0
    else:
        residual = y.reshape(-1, 1).to(f0.dtype) - f0
    evals, evecs = torch.linalg.eigh(K.double())
    evals, evecs = evals.flip(0).clamp_min(0.0), evecs.flip(1)
    lam = evals / evals[0]
    c = ((evecs.T @ residual.double()) ** 2).sum(1)
    return K, lam, c


def init(model, workload, hparams, budget):
    device = next(model.parameters()).device
    x, y = _rows(workload.train_set, N_NTK)
    x, y = x.to(device), y.to(device)
    K, lam, c = spectrum(model, x, y)
    g = gamma(max(workload.n_train, 2), min(workload.BATCH_SIZE, workload.n_train))
    a = optimal_alpha(lam, c, workload.STEP_HINT, beta=0.0, gamma=g, tau=1.0)
    b = optimal_beta(lam, c, workload.STEP_HINT, a.value, gamma=g, tau=1.0)
    lr = a.value * lr_scale(K)
    if getattr(workload, "SQUARED_LOSS", False):
        lr *= 0.5
    params = [p for p in model.parameters() if p.requires_grad]
    return {
        "lr": lr,
        "beta": b.value,
        "alpha": a.value,
        "params": params,
        "velocity": [torch.zeros_like(p) for p in params],
    }


def step(model, workload, batch, state, step):
    loss = workload.loss(model, batch)
    grads = torch.autograd.grad(loss, state["params"])
    lr, beta = state["lr"], state["beta"]
    with torch.no_grad():
        for p, g, v in zip(state["params"], grads, state["velocity"]):
            v.mul_(beta).add_(g, alpha=-lr)
            p.add_(v)
    return float(loss.detach())
