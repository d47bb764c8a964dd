"""Training loop of main.py (DESIGN.md §4.1, 9): closures, per-step metrics, epochs, checkpoints, resume, divergence.

The loop is the seed's embedder.fit(): for every batch, a closure that runs the forward (and, when asked, the
backward with gradient accumulation) is handed to the optimizer. Baselines (Adam, SGD) take a plain step and their
warmup-cosine scheduler step. Rank 0 writes; under torchrun each rank reads its shard of a shared permutation.
The loop is split along the usual seams: restore (resume), train one epoch, end of epoch (evaluate, log, save).
Progress goes to the ``line_search`` logger; scripts decide where it is shown.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from common.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from common.distributed import is_primary, torchrun_env
from common.runs import Run, progress, write_csv
from line_search.harness.data import TaskData
from line_search.sls import ArmijoLineSearch

__all__ = ["FitResult", "RunOptions", "TrainParts", "fit", "evaluate", "METRIC_FIELDS", "EPOCH_FIELDS", "STEP_HOOK"]

log = logging.getLogger(__name__)

METRIC_FIELDS = (
    "step epoch loss step_size eta_cand searched trials forwards backtracks ls_freq slope loss_decrease n_fail "
    "fallback time_per_step"
).split()
EPOCH_FIELDS = "epoch train_loss full_train_loss val_loss val_acc forwards_per_step wall_s".split()
# tests set this to a callable(step) to simulate a killed process
STEP_HOOK: list = []


@dataclass
class RunOptions:
    """How one configuration is run (the config says what is trained): device, resume, checkpoints, outputs."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    data_root: str = "data"
    resume: bool = False
    ckpt_every: int = 0  # steps between mid-epoch checkpoints (0: once per epoch)
    show_progress: bool = True
    plots: bool = True
    compile: bool = False
    wandb_run: Any = None
    on_resume: Callable[[Path, str], Any] | None = None  # scripts pass common.cli.announce_resume


@dataclass
class TrainParts:
    """What the loop trains: the network called by the closures (maybe DDP-wrapped), the optimizer, the data."""

    net: nn.Module
    opt: torch.optim.Optimizer
    sched: Any
    task: TaskData


@dataclass
class FitResult:
    status: str = "done"
    steps: int = 0
    epochs: list[dict] = field(default_factory=list)
    forwards: int = 0
    searches: int = 0
    late_forwards: int = 0
    late_steps: int = 0
    n_fail: int = 0
    step_time: float = 0.0
    message: str = ""


@dataclass
class _Position:
    """Where the loop stands: epoch and batch to start from, steps so far, the data-order generator."""

    gen: torch.Generator
    epoch: int = 0
    batch: int = 0
    step: int = 0


def _move(batch, device):
    return [b.to(device, non_blocking=True) for b in batch]


def _forward(model: nn.Module, batch, kind: str) -> torch.Tensor:
    if kind == "nlp" and len(batch) == 3:
        return model(batch[0], attention_mask=batch[1])
    return model(batch[0])


def make_closure(model, batch, kind: str, crit, opt, accumulation: int):
    """Closure of the DESIGN.md §3.3 contract: backward=True zero-grads and back-propagates (gradient accumulation)."""
    micro = [list(t) for t in zip(*(b.chunk(accumulation) for b in batch))] if accumulation > 1 else [batch]

    def closure(backward: bool = True) -> torch.Tensor:
        if backward:
            opt.zero_grad(set_to_none=False)
        total = 0.0
        for mb in micro:
            loss = crit(_forward(model, mb, kind), mb[-1]) * (len(mb[-1]) / len(batch[-1]))
            if backward:
                loss.backward()
            total = total + loss.detach()
        return total

    return closure


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, kind: str, device, batch_size: int = 512) -> tuple[float, float]:
    """Mean cross-entropy and accuracy in eval mode."""
    was = model.training
    model.eval()
    crit = nn.CrossEntropyLoss(reduction="sum")
    loss, correct, n = 0.0, 0, 0
    # no DataLoader: its iterator draws a seed from the global RNG, which would shift the baselines' dropout masks
    for batch in _batches(data, torch.arange(len(data)), 0, batch_size):
        batch = _move(batch, device)
        out = _forward(model, batch, kind)
        loss += crit(out.float(), batch[-1]).item()
        correct += (out.argmax(1) == batch[-1]).sum().item()
        n += len(batch[-1])
    model.train(was)
    return loss / max(n, 1), correct / max(n, 1)


def _batches(data: Dataset, order: torch.Tensor, start: int, batch_size: int):
    """Yield batches of `data` in `order`, from batch index `start` (tensor fast path for TensorDataset)."""
    n_batches = math.ceil(len(order) / batch_size)
    for b in range(start, n_batches):
        idx = order[b * batch_size : (b + 1) * batch_size]
        if isinstance(data, TensorDataset):
            yield [t[idx] for t in data.tensors]
        else:
            items = [data[int(i)] for i in idx]
            yield [torch.stack([torch.as_tensor(x[j]) for x in items]) for j in range(len(items[0]))]


def _truncate(path: Path, rows: int) -> None:
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    header = 1 if path.suffix == ".csv" else 0
    path.write_text("".join(lines[: header + rows]))


def _plots(run: Run) -> None:
    from common.plotting import new_figure, use_style

    rows = read_table(run.path / "metrics.csv")
    if not rows:
        return
    use_style()
    step = [int(r["step"]) for r in rows]
    for col, name, ylabel, use_log in (
        ("loss", "loss.png", "mini-batch loss (nats)", True),
        ("step_size", "step_size.png", "step size eta", True),
        ("forwards", "forwards.png", "forward passes per step", False),
    ):
        vals = [float(r[col]) if r.get(col) not in (None, "") else math.nan for r in rows]
        fig, ax = new_figure(f"{run.path.name}: {col}", "step", ylabel)
        ax.plot(step, vals, lw=0.8)
        if use_log and any(v > 0 for v in vals if math.isfinite(v)):
            ax.set_yscale("log")
        run.save_figure(fig, name)


def read_table(path: Path) -> list[dict]:
    """Rows of a CSV written by a run (empty when the file is missing)."""
    import csv

    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _restore(ckpt_path: Path, parts: TrainParts, run: Run, pos: _Position, opts: RunOptions) -> FitResult:
    """Load checkpoint.pt (resume) and cut metric files back to it; without resume, start clean files."""
    if not (opts.resume and ckpt_path.exists()):
        if is_primary():
            for name in ("metrics.csv", "metrics.jsonl", "epochs.csv"):
                (run.path / name).unlink(missing_ok=True)
        return FitResult()
    ck = load_checkpoint(ckpt_path, map_location=opts.device)
    _unwrap(parts.net).load_state_dict(ck["model"])
    parts.opt.load_state_dict(ck["optimizer"])
    if parts.sched is not None and ck.get("scheduler") is not None:
        parts.sched.load_state_dict(ck["scheduler"])
    pos.gen.set_state(ck["data_generator"])
    set_rng_state(ck["rng"])
    pos.epoch, pos.batch, pos.step = ck["epoch"], ck["batch"], ck["step"]
    if is_primary():
        for name in ("metrics.csv", "metrics.jsonl"):
            _truncate(run.path / name, ck["metric_rows"])
        _truncate(run.path / "epochs.csv", ck["epoch_rows"])
    where = f"epoch {pos.epoch}, step {pos.step}"
    if opts.on_resume is not None:
        opts.on_resume(ckpt_path, where)
    else:
        log.info("resumed from %s at %s", ckpt_path, where)
    return FitResult(**ck["result"])


def _unwrap(net: nn.Module) -> nn.Module:
    """The plain module under torch.compile and DDP wrappers (its state_dict keys carry no prefix)."""
    net = getattr(net, "_orig_mod", net)
    return getattr(net, "module", net)


def _save(ckpt_path: Path, parts: TrainParts, pos: _Position, res: FitResult, gen_state) -> None:
    """checkpoint.pt (atomic): model, optimizer, scheduler, data order, RNG, position and metric row counts."""
    if not is_primary():
        return
    save_checkpoint(
        ckpt_path,
        {
            "model": _unwrap(parts.net).state_dict(),
            "optimizer": parts.opt.state_dict(),
            "scheduler": parts.sched.state_dict() if parts.sched is not None else None,
            "data_generator": gen_state,
            "rng": rng_state(),
            "epoch": pos.epoch,
            "batch": pos.batch,
            "step": pos.step,
            "metric_rows": pos.step,
            "epoch_rows": len(res.epochs),
            "result": dict(res.__dict__),
        },
    )


def _one_step(parts: TrainParts, closure, step: int) -> torch.Tensor:
    """One optimizer step: the Armijo optimizers take the closure, the baselines a plain step + scheduler step."""
    if isinstance(parts.opt, ArmijoLineSearch):
        return parts.opt.step(closure)
    loss = closure(True)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"step {step}: non-finite loss {loss.item()}")
    parts.opt.step()
    parts.sched.step()
    return loss


def _train_epoch(cfg: dict, parts: TrainParts, run: Run, pos: _Position, res: FitResult, opts: RunOptions) -> list:
    """Train the batches of epoch `pos.epoch` from `pos.batch`; returns the mini-batch losses of this epoch."""
    env = torchrun_env()
    train_set, bs = parts.task.train, cfg["batch_size"]
    n_train = len(train_set)
    n_batches = math.ceil(n_train / (bs * env.world_size))
    gen_epoch_state = pos.gen.get_state()
    order = torch.randperm(n_train, generator=pos.gen)
    if env.world_size > 1:
        usable = (n_train // env.world_size) * env.world_size
        order = order[:usable][env.rank :: env.world_size]
    crit = nn.CrossEntropyLoss()
    losses: list[float] = []
    bar = progress(
        _batches(train_set, order, pos.batch, bs),
        desc=f"epoch {pos.epoch + 1}/{cfg['epochs']}",
        total=n_batches - pos.batch,
        disable=not opts.show_progress,
    )
    for b_idx, batch in enumerate(bar, start=pos.batch):
        batch = _move(batch, opts.device)
        closure = make_closure(parts.net, batch, parts.task.kind, crit, parts.opt, cfg["gradient_accumulation_steps"])
        t0 = time.perf_counter()
        try:
            loss = _one_step(parts, closure, pos.step + 1)
        except FloatingPointError as exc:
            res.status, res.message = "diverged", str(exc)
            break
        dt = time.perf_counter() - t0
        pos.step += 1
        res.step_time += dt
        losses.append(float(loss))
        row = _row(parts.opt, pos.step, pos.epoch + 1, losses[-1], dt)
        res.forwards += row["forwards"]
        res.searches += int(bool(row["searched"]))
        if pos.step > 200:
            res.late_forwards += row["forwards"]
            res.late_steps += 1
        run.log(**row)
        if opts.wandb_run is not None:
            opts.wandb_run.log(row)
        if opts.ckpt_every and pos.step % opts.ckpt_every == 0 and b_idx + 1 < n_batches:
            saved_batch, pos.batch = pos.batch, b_idx + 1
            _save(run.path / "checkpoint.pt", parts, pos, res, gen_epoch_state)
            pos.batch = saved_batch
        for hook in STEP_HOOK:
            hook(pos.step)
    return losses


def _end_epoch(cfg: dict, parts: TrainParts, run: Run, pos: _Position, res: FitResult, losses, t_run, opts) -> None:
    """Evaluate (every eval_every epochs and at the last), append the epochs.csv row, log one line."""
    epoch = pos.epoch + 1
    rec: dict[str, Any] = {"epoch": epoch, "train_loss": sum(losses) / max(len(losses), 1)}
    if epoch % cfg["eval_every"] == 0 or epoch == cfg["epochs"]:
        task = parts.task
        rec["full_train_loss"], _ = evaluate(parts.net, task.train, task.kind, opts.device)
        rec["val_loss"], rec["val_acc"] = evaluate(parts.net, task.test, task.kind, opts.device)
    rec["forwards_per_step"] = res.forwards / max(pos.step, 1)
    rec["wall_s"] = round(time.time() - t_run, 3)
    res.epochs.append(rec)
    if not is_primary():
        return
    _append_epoch_row(run.path / "epochs.csv", rec)
    evals = f", full train loss {rec['full_train_loss']:.5f}, val acc {rec['val_acc']:.4f}" if "val_acc" in rec else ""
    log.info("epoch %d: train loss %.4f%s, forwards/step %.2f", epoch, rec["train_loss"], evals,
             rec["forwards_per_step"])  # fmt: skip


def _append_epoch_row(path: Path, rec: dict) -> None:
    write_csv(path, [rec], EPOCH_FIELDS, append=True)


def fit(cfg: dict[str, Any], parts: TrainParts, run: Run, opts: RunOptions) -> FitResult:
    """Train for cfg['epochs'] epochs: per-step rows through Run.log, per-epoch rows in epochs.csv, checkpoints."""
    ckpt_path = run.path / "checkpoint.pt"
    pos = _Position(torch.Generator().manual_seed(cfg["seed"]))
    res = _restore(ckpt_path, parts, run, pos, opts)
    t_run = time.time()
    parts.net.train()
    while pos.epoch < cfg["epochs"]:
        losses = _train_epoch(cfg, parts, run, pos, res, opts)
        if res.status != "done":
            break
        _end_epoch(cfg, parts, run, pos, res, losses, t_run, opts)
        pos.epoch, pos.batch = pos.epoch + 1, 0
        _save(ckpt_path, parts, pos, res, pos.gen.get_state())
    res.steps = pos.step
    res.n_fail = int(getattr(parts.opt, "diagnostics", {}).get("n_fail", 0))
    if is_primary() and opts.plots:
        _plots(run)
    return res


def _row(opt, step: int, epoch: int, loss: float, dt: float) -> dict[str, Any]:
    if isinstance(opt, ArmijoLineSearch):
        d = opt.diagnostics
        return {
            "step": step,
            "epoch": epoch,
            "loss": loss,
            "step_size": d["eta"] if d["searched"] else d["eta_cand"],
            "eta_cand": d["eta_cand"],
            "searched": int(d["searched"]),
            "trials": d["trials"],
            "forwards": d["forwards"],
            "backtracks": d["backtracks"],
            "ls_freq": d["L"],
            "slope": d["slope"],
            "loss_decrease": d["loss_decrease"],
            "n_fail": d["n_fail"],
            "fallback": int(d["fallback"]),
            "time_per_step": dt,
        }
    lr = opt.param_groups[0]["lr"]
    return {"step": step, "epoch": epoch, "loss": loss, "step_size": lr, "eta_cand": lr, "searched": 0, "trials": 0,
            "forwards": 1, "backtracks": 0, "ls_freq": "", "slope": "", "loss_decrease": "", "n_fail": 0,
            "fallback": 0, "time_per_step": dt}  # fmt: skip
