"""Mini-batch training of the real network (regime 1 of the paper).

The batch loss is 0.5 * MSE, so torch SGD at lr moves f by lr K[:, B] d_B / b; with lr = alpha * N / lambda_max(K) the
net follows (E2) with step alpha to first order (DESIGN.md §3.1). The logged train loss is |f(X) - y|^2 / (2N), the
same quantity as L_t of the theory regimes. Batches come one step at a time from the run's stream
(`batches.draw_batches`), which yields exactly the indices the linearized run with the same stream sees.

Schedules (`NNTrainOptions.schedule`): before step n the optimizer's lr and momentum are set to lr_fn(n) and
beta_fn(n), the same convention as `ResidualSGD` (p <- g + beta_n p; w <- w - lr_n p), so a Jacobi
(non-stationary heavy-ball) run of the net follows the linearized run with the same schedules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.checkpoint import load_checkpoint, save_checkpoint
from sgd_genfunc.training.batches import draw_batches


@dataclass
class NNTrainOptions:
    """What `train_nn` needs beyond the data and the step count.

    labels, val_labels, mean_y, std_y: accuracy for class-label targets (round(out * std_y + mean_y) == label).
    schedule: (lr_fn, beta_fn) callables of the step n >= 1 that set the optimizer's lr and momentum each step
    (None: the optimizer's own constant settings). ckpt_path, ckpt_every: atomic checkpoints of model, optimizer,
    generator and history (an existing checkpoint is resumed). progress: wraps the step iterable (a tqdm bar).
    """

    labels: torch.Tensor | None = None
    val_labels: torch.Tensor | None = None
    mean_y: float = 0.0
    std_y: float = 1.0
    schedule: tuple[Callable[[int], float], Callable[[int], float]] | None = None
    ckpt_path: str | Path | None = None
    ckpt_every: int = 0
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None


def _eval(model: nn.Module, X: torch.Tensor, y: torch.Tensor, labels, mean_y: float, std_y: float, chunk: int = 4096):
    with torch.no_grad():
        out = torch.cat([model(X[i : i + chunk]).reshape(-1) for i in range(0, X.shape[0], chunk)])
    loss = ((out - y) ** 2).sum() / (2 * X.shape[0])
    acc = torch.tensor(float("nan"), dtype=loss.dtype)
    if labels is not None:
        acc = (torch.round(out * std_y + mean_y).long() == labels.to(out.device)).to(loss.dtype).mean()
    return loss, acc


def _empty_history(n_steps: int, log_frequency: int, val_frequency: int, with_val: bool) -> dict:
    log_steps = list(range(0, n_steps + 1, log_frequency))
    val_steps = list(range(0, n_steps + 1, val_frequency)) if with_val else []
    return {
        "train/loss": torch.full((len(log_steps),), float("inf"), dtype=torch.float64),
        "train/acc": torch.full((len(log_steps),), float("nan"), dtype=torch.float64),
        "val/loss": torch.full((len(val_steps),), float("nan"), dtype=torch.float64),
        "val/acc": torch.full((len(val_steps),), float("nan"), dtype=torch.float64),
        "steps": torch.tensor(log_steps),
        "val_steps": torch.tensor(val_steps),
        "diverged_at": -1,
    }


def _set_schedule(optimizer: torch.optim.Optimizer, schedule, n: int) -> None:
    if schedule is not None:
        lr_fn, beta_fn = schedule
        for group in optimizer.param_groups:
            group["lr"], group["momentum"] = float(lr_fn(n)), float(beta_fn(n))


def train_nn(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    n_steps: int,
    batch_size: int,
    generator: np.random.Generator,
    X_val=None,
    y_val=None,
    log_frequency: int = 1,
    val_frequency: int = 100,
    options: NNTrainOptions | None = None,
) -> dict:
    """Train with batches of b distinct indices; returns the history.

    History: "train/loss", "train/acc" at steps 0, log_frequency, ... (n_steps+1 entries at log_frequency = 1),
    "val/loss", "val/acc" at 0, val_frequency, ... (when X_val is given), "steps", "val_steps", "diverged_at".
    A non-finite loss stops the run; later train entries are +inf.
    """
    opts = options or NNTrainOptions()
    N = X.shape[0]
    if not 1 <= batch_size <= N:
        raise ValueError(f"batch size b must lie in [1, N={N}], got {batch_size}")
    if log_frequency < 1 or val_frequency < 1:
        raise ValueError("log_frequency and val_frequency must be >= 1")
    hist = _empty_history(n_steps, log_frequency, val_frequency, X_val is not None)
    start = 1
    if opts.ckpt_path is not None and Path(opts.ckpt_path).exists():
        ck = load_checkpoint(opts.ckpt_path)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        generator.bit_generator.state = ck["generator"]
        hist, start = ck["history"], ck["step"] + 1

    def record(n: int) -> bool:
        ok = True
        if n % log_frequency == 0:
            loss, acc = _eval(model, X, y, opts.labels, opts.mean_y, opts.std_y)
            ok = bool(torch.isfinite(loss))
            hist["train/loss"][n // log_frequency] = loss if ok else float("inf")
            hist["train/acc"][n // log_frequency] = acc
        if X_val is not None and n % val_frequency == 0:
            loss, acc = _eval(model, X_val, y_val, opts.val_labels, opts.mean_y, opts.std_y)
            hist["val/loss"][n // val_frequency], hist["val/acc"][n // val_frequency] = loss, acc
        return ok

    if start == 1:
        record(0)
    steps = range(start, n_steps + 1)
    for n in opts.progress(steps) if opts.progress else steps:
        idx = torch.as_tensor(draw_batches(generator, 1, N, batch_size)[0], device=X.device)
        _set_schedule(optimizer, opts.schedule, n)
        optimizer.zero_grad(set_to_none=True)
        out = model(X[idx]).reshape(-1)
        loss = 0.5 * ((out - y[idx]) ** 2).mean()
        loss.backward()
        optimizer.step()
        if not record(n) or not torch.isfinite(loss):
            hist["diverged_at"] = n
            break
        if opts.ckpt_path is not None and opts.ckpt_every and n % opts.ckpt_every == 0 and n < n_steps:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": n}
            save_checkpoint(opts.ckpt_path, {**state, "generator": generator.bit_generator.state, "history": hist})
    return hist
