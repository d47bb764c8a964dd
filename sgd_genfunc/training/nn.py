"""Mini-batch training of the real network (regime 1 of the paper).

The batch loss is 0.5 * MSE, so torch SGD at lr moves f by lr K[:, B] d_B / b; with lr = alpha * N / lambda_max(K) the
net follows (E2) with step alpha to first order (spec 3.1). The logged train loss is |f(X) - y|^2 / (2N), the same
quantity as L_t of the theory regimes. Batches come one step at a time from the run's stream
(`batches.draw_batches`), which yields exactly the indices the linearized run with the same stream sees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from sgd_genfunc.training.batches import draw_batches


def _eval(model: nn.Module, X: torch.Tensor, y: torch.Tensor, labels, mean_y: float, std_y: float, chunk: int = 4096):
    with torch.no_grad():
        out = torch.cat([model(X[i : i + chunk]).reshape(-1) for i in range(0, X.shape[0], chunk)])
    loss = ((out - y) ** 2).sum() / (2 * X.shape[0])
    acc = torch.tensor(float("nan"), dtype=loss.dtype)
    if labels is not None:
        acc = (torch.round(out * std_y + mean_y).long() == labels.to(out.device)).to(loss.dtype).mean()
    return loss, acc


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
    labels=None,
    val_labels=None,
    mean_y: float = 0.0,
    std_y: float = 1.0,
    scheduler=None,
    ckpt_path: str | Path | None = None,
    ckpt_every: int = 0,
    progress=None,
) -> dict:
    """Train with batches of b distinct indices; returns the history.

    History: "train/loss", "train/acc" at steps 0, log_frequency, ... (n_steps+1 entries at log_frequency = 1),
    "val/loss", "val/acc" at 0, val_frequency, ... (when X_val is given), "steps", "val_steps", "diverged_at".
    Accuracy (classification only, `labels` given): round(out * std_y + mean_y) == label. A non-finite loss stops the
    run; later train entries are +inf. With `ckpt_path`, model, optimizer, generator and history are saved atomically
    every `ckpt_every` steps and an existing checkpoint is resumed.
    """
    from common.checkpoint import load_checkpoint, save_checkpoint

    N = X.shape[0]
    if not 1 <= batch_size <= N:
        raise ValueError(f"batch size b must lie in [1, N={N}], got {batch_size}")
    if log_frequency < 1 or val_frequency < 1:
        raise ValueError("log_frequency and val_frequency must be >= 1")
    log_steps = list(range(0, n_steps + 1, log_frequency))
    val_steps = list(range(0, n_steps + 1, val_frequency)) if X_val is not None else []
    hist = {
        "train/loss": torch.full((len(log_steps),), float("inf"), dtype=torch.float64),
        "train/acc": torch.full((len(log_steps),), float("nan"), dtype=torch.float64),
        "val/loss": torch.full((len(val_steps),), float("nan"), dtype=torch.float64),
        "val/acc": torch.full((len(val_steps),), float("nan"), dtype=torch.float64),
        "steps": torch.tensor(log_steps),
        "val_steps": torch.tensor(val_steps),
        "diverged_at": -1,
    }
    start = 1
    if ckpt_path is not None and Path(ckpt_path).exists():
        ck = load_checkpoint(ckpt_path)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        generator.bit_generator.state = ck["generator"]
        hist = ck["history"]
        start = ck["step"] + 1
        if scheduler is not None and "scheduler" in ck:
            scheduler.load_state_dict(ck["scheduler"])

    def record(n: int) -> bool:
        ok = True
        if n % log_frequency == 0:
            loss, acc = _eval(model, X, y, labels, mean_y, std_y)
            ok = bool(torch.isfinite(loss))
            hist["train/loss"][n // log_frequency] = loss if ok else float("inf")
            hist["train/acc"][n // log_frequency] = acc
        if X_val is not None and n % val_frequency == 0:
            loss, acc = _eval(model, X_val, y_val, val_labels, mean_y, std_y)
            hist["val/loss"][n // val_frequency], hist["val/acc"][n // val_frequency] = loss, acc
        return ok

    if start == 1:
        record(0)
    steps = range(start, n_steps + 1)
    for n in progress(steps) if progress else steps:
        idx = torch.as_tensor(draw_batches(generator, 1, N, batch_size)[0], device=X.device)
        optimizer.zero_grad(set_to_none=True)
        out = model(X[idx]).reshape(-1)
        loss = 0.5 * ((out - y[idx]) ** 2).mean()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if not record(n) or not torch.isfinite(loss):
            hist["diverged_at"] = n
            break
        if ckpt_path is not None and ckpt_every and n % ckpt_every == 0 and n < n_steps:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": n,
                "generator": generator.bit_generator.state,
                "history": hist,
            }
            if scheduler is not None:
                state["scheduler"] = scheduler.state_dict()
            save_checkpoint(ckpt_path, state)
    return hist
