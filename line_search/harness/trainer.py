"""Training loop of main.py (spec 4.1, 9): closures, per-step metrics, epochs, checkpoints, resume, divergence.

The loop is the seed's embedder.fit(): for every batch, a closure that runs the forward (and, when asked, the
backward with gradient accumulation) is handed to the optimizer. Baselines (Adam, SGD) take a plain step and their
warmup-cosine scheduler step. Rank 0 writes; under torchrun each rank reads its shard of a shared permutation.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from common.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from common.distributed import is_primary, torchrun_env
from common.runs import Run, progress
from line_search.sls import ArmijoLineSearch

__all__ = ["FitResult", "fit", "evaluate", "METRIC_FIELDS", "EPOCH_FIELDS", "STEP_HOOK"]

METRIC_FIELDS = (
    "step epoch loss step_size eta_cand searched trials forwards backtracks ls_freq slope loss_decrease n_fail "
    "fallback time_per_step"
).split()
EPOCH_FIELDS = "epoch train_loss full_train_loss val_loss val_acc forwards_per_step wall_s".split()
# tests set this to a callable(step) to simulate a killed process
STEP_HOOK: list = []


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


def _move(batch, device):
    return [b.to(device, non_blocking=True) for b in batch]


def _forward(model: nn.Module, batch, kind: str) -> torch.Tensor:
    if kind == "nlp":
        if len(batch) == 3:
            return model(batch[0], attention_mask=batch[1])
        return model(batch[0])
    return model(batch[0])


def make_closure(model, batch, kind: str, crit, opt, accumulation: int):
    """Closure of the spec 3.3 contract: backward=True zero-grads and back-propagates (gradient accumulation)."""
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
    import matplotlib

    matplotlib.use("Agg")
    from common.plotting import new_figure, use_style

    path = run.path / "metrics.csv"
    if not path.exists():
        return
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    use_style()
    step = [int(r["step"]) for r in rows]
    for col, name, ylabel, log in (
        ("loss", "loss.png", "mini-batch loss (nats)", True),
        ("step_size", "step_size.png", "step size eta", True),
        ("forwards", "forwards.png", "forward passes per step", False),
    ):
        vals = [float(r[col]) if r.get(col) not in (None, "") else math.nan for r in rows]
        fig, ax = new_figure(f"{run.path.name}: {col}", "step", ylabel)
        ax.plot(step, vals, lw=0.8)
        if log and any(v > 0 for v in vals if math.isfinite(v)):
            ax.set_yscale("log")
        run.save_figure(fig, name)


def fit(
    cfg: dict[str, Any],
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched,
    train_set: Dataset,
    test_set: Dataset,
    kind: str,
    device: torch.device,
    run: Run,
    resume: bool = False,
    ckpt_every: int = 0,
    show_progress: bool = True,
    wandb_run=None,
    plots: bool = True,
) -> FitResult:
    """Train for cfg['epochs'] epochs, logging per-step rows to metrics.csv and per-epoch rows to epochs.csv."""
    env = torchrun_env()
    crit = nn.CrossEntropyLoss()
    bs, acc = cfg["batch_size"], cfg["gradient_accumulation_steps"]
    n_train = len(train_set)
    gen = torch.Generator().manual_seed(cfg["seed"])
    res = FitResult()
    start_epoch, start_batch, step = 0, 0, 0
    ckpt_path = run.path / "checkpoint.pt"
    epochs_path = run.path / "epochs.csv"
    if resume and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path, map_location=device)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if sched is not None and ck.get("scheduler") is not None:
            sched.load_state_dict(ck["scheduler"])
        gen.set_state(ck["data_generator"])
        set_rng_state(ck["rng"])
        start_epoch, start_batch, step = ck["epoch"], ck["batch"], ck["step"]
        res = FitResult(**ck["result"])
        if is_primary():
            for name in ("metrics.csv", "metrics.jsonl"):
                _truncate(run.path / name, ck["metric_rows"])
            _truncate(epochs_path, ck["epoch_rows"])
    elif is_primary():
        for name in ("metrics.csv", "metrics.jsonl", "epochs.csv"):
            (run.path / name).unlink(missing_ok=True)
    n_batches = math.ceil(n_train / (bs * env.world_size))
    t_run = time.time()

    def checkpoint(epoch: int, batch: int, gen_state) -> None:
        if not is_primary():
            return
        save_checkpoint(
            ckpt_path,
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict() if sched is not None else None,
                "data_generator": gen_state,
                "rng": rng_state(),
                "epoch": epoch,
                "batch": batch,
                "step": step,
                "metric_rows": step,
                "epoch_rows": len(res.epochs),
                "result": dict(res.__dict__),
            },
        )

    model.train()
    for epoch in range(start_epoch, cfg["epochs"]):
        gen_epoch_state = gen.get_state()
        order = torch.randperm(n_train, generator=gen)
        if env.world_size > 1:
            usable = (n_train // env.world_size) * env.world_size
            order = order[:usable][env.rank :: env.world_size]
        first = start_batch if epoch == start_epoch else 0
        epoch_losses = []
        bar = progress(
            _batches(train_set, order, first, bs),
            desc=f"epoch {epoch + 1}/{cfg['epochs']}",
            total=n_batches - first,
            disable=not show_progress,
        )
        for b_idx, batch in enumerate(bar, start=first):
            batch = _move(batch, device)
            closure = make_closure(model, batch, kind, crit, opt, acc)
            t0 = time.perf_counter()
            try:
                if isinstance(opt, ArmijoLineSearch):
                    loss = opt.step(closure)
                else:
                    loss = closure(True)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"step {step + 1}: non-finite loss {loss.item()}")
                    opt.step()
                    sched.step()
            except FloatingPointError as exc:
                res.status, res.message = "diverged", str(exc)
                break
            dt = time.perf_counter() - t0
            step += 1
            res.step_time += dt
            loss_v = float(loss)
            epoch_losses.append(loss_v)
            row = _row(opt, step, epoch + 1, loss_v, dt)
            res.forwards += row["forwards"]
            res.searches += int(bool(row["searched"]))
            if step > 200:
                res.late_forwards += row["forwards"]
                res.late_steps += 1
            run.log(**row)
            if wandb_run is not None:
                wandb_run.log(row)
            if ckpt_every and step % ckpt_every == 0 and b_idx + 1 < n_batches:
                checkpoint(epoch, b_idx + 1, gen_epoch_state)
            for hook in STEP_HOOK:
                hook(step)
        if res.status != "done":
            break
        rec = {"epoch": epoch + 1, "train_loss": sum(epoch_losses) / max(len(epoch_losses), 1)}
        if (epoch + 1) % cfg["eval_every"] == 0 or epoch + 1 == cfg["epochs"]:
            rec["full_train_loss"], _ = evaluate(model, train_set, kind, device)
            rec["val_loss"], rec["val_acc"] = evaluate(model, test_set, kind, device)
        rec["forwards_per_step"] = res.forwards / max(step, 1)
        rec["wall_s"] = round(time.time() - t_run, 3)
        res.epochs.append(rec)
        if is_primary():
            new = not epochs_path.exists()
            with open(epochs_path, "a", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=EPOCH_FIELDS)
                if new:
                    writer.writeheader()
                writer.writerow(rec)
            print(
                f"epoch {epoch + 1}: train loss {rec['train_loss']:.4f}"
                + (
                    f", full train loss {rec['full_train_loss']:.5f}, val acc {rec['val_acc']:.4f}"
                    if "val_acc" in rec
                    else ""
                )
                + f", forwards/step {rec['forwards_per_step']:.2f}",
                flush=True,
            )
        start_batch = 0
        checkpoint(epoch + 1, 0, gen.get_state())
    res.steps = step
    res.n_fail = int(getattr(opt, "diagnostics", {}).get("n_fail", 0))
    if is_primary() and plots:
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
