"""Train an image classifier with AutoWU (the reference train.py kept, with the fixes of DESIGN.md §4.1).

    python -m torch.distributed.run --nproc_per_node=4 --nnodes=4 --node_rank=$NODE_RANK \
        --master_addr=$MASTER_ADDR --master_port=$MASTER_PORT \
        autowu/train.py --data-root $DATA_ROOT --amp --batch-size 256
    python autowu/train.py --dataset digits --epochs 6 --batch-size 128        # offline, a minute on CPU

The script is thin: setup (arguments, device, process group), build (data, model, optimizer, schedule), one
training epoch, evaluation, checkpoint; data code lives in autowu.data, the optimizers in autowu.harness.
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

from autowu.data import DATASETS, build_datasets
from autowu.harness import build_small_model, make_optimizer, make_scheduler, open_autowu_run, write_rows_csv
from autowu.scheduler import AutoWU
from autowu.schedules import BaselineFactor
from common.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from common.cli import (
    ArgumentParser,
    MissingInputError,
    UsageError,
    add_run_args,
    announce_resume,
    auto_or,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
    run_main,
)
from common.distributed import DistEnv, init_distributed
from common.runs import Run, progress
from common.runtime import resolve_device, seed_everything

SMALL_MODELS = ("cnn_bn", "cnn1d_bn", "mlp")


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description=__doc__.split("\n")[0])
    g = p.add_argument_group("dataset")
    g.add_argument("--data-root", default=None, metavar="DIR", help="ImageNet root (train/, val/); selects imagenet")
    g.add_argument("--dataset", default="auto", metavar="NAME", help=f"auto | {' | '.join(DATASETS)}")
    g.add_argument(
        "--workers",
        type=auto_or(nonneg_int),
        default="auto",
        metavar="N",
        help="loader workers (auto: 8 for imagenet, else 0)",
    )
    g.add_argument("--smoke", action="store_true", help="8 x batch-size samples per split, save every epoch")
    g = p.add_argument_group("model")
    g.add_argument("--model", default="auto", metavar="NAME", help="auto | cnn_bn | cnn1d_bn | mlp | any timm name")
    g.add_argument("--width", type=positive_int, default=16, metavar="W", help="width of the small models")
    g.add_argument(
        "--label-smoothing",
        type=auto_or(nonneg_float),
        default="auto",
        metavar="EPS",
        help="auto: 0.1 for efficientnet_b0, else 0",
    )
    g.add_argument("--sync-bn", default="auto", choices=("auto", "on", "off"), help="auto: on for efficientnet_b0")
    g = p.add_argument_group("optimizer and LR schedule")
    g.add_argument("--optimizer", default="adamp", choices=("adamp", "lamb", "adamw", "sgd"), help="optimizer")
    g.add_argument(
        "--weight-decay",
        type=nonneg_float,
        default=None,
        metavar="WD",
        help="default per optimizer: adamp 0.1, lamb 0.01, adamw 0.05, sgd 5e-5",
    )
    g.add_argument("--lr-sched", default="autowu", choices=("autowu", "cosine"), help="AutoWU or the baseline")
    g.add_argument("--decay-sched", default="cos", choices=("cos", "const-cos"), help="AutoWU decay after warmup")
    g.add_argument("--cooldown-fraction", type=nonneg_float, default=0.2, metavar="C", help="const-cos cooldown")
    g.add_argument("--min-lr", type=positive_float, default=1e-5, metavar="LR", help="AutoWU eta_min")
    g.add_argument("--max-lr", type=positive_float, default=1.0, metavar="LR", help="AutoWU eta_max")
    g.add_argument("--max-warmup-fraction", type=nonneg_float, default=0.5, metavar="F", help="AutoWU warmup cap")
    g.add_argument("--on-nonfinite", default="switch", choices=("switch", "ignore", "raise"), help="AutoWU policy")
    g.add_argument("--lr", type=positive_float, default=1e-3, metavar="LR", help="baseline peak LR (cosine only)")
    g.add_argument("--warmup-frac", type=nonneg_float, default=0.05, metavar="F", help="baseline warmup fraction")
    g = p.add_argument_group("training")
    g.add_argument("--batch-size", type=positive_int, default=256, metavar="B", help="batch size per process")
    g.add_argument("--epochs", type=positive_int, default=120, metavar="E", help="epochs")
    g.add_argument("--amp", action="store_true", help="fp16 + GradScaler on CUDA, bf16 autocast on CPU")
    g = p.add_argument_group("checkpoints and distributed")
    g.add_argument("--save-dir", default=None, metavar="DIR", help="run directory (overrides --out/--name)")
    g.add_argument("--save-freq", type=positive_int, default=20, metavar="N", help="checkpoint every N epochs")
    g.add_argument("--resume", default=None, metavar="PATH", help="checkpoint path, or 'auto' (the run dir's)")
    g.add_argument("--stop-after-epoch", type=positive_int, default=None, metavar="N", help="checkpoint, then exit")
    g.add_argument("--log-interval", type=positive_int, default=None, metavar="STEPS", help="default 1 %% of an epoch")
    g.add_argument("--dist-backend", default="auto", choices=("auto", "nccl", "gloo"), help="auto: nccl on CUDA")
    g.add_argument("--local-rank", "--local_rank", dest="local_rank", default=None, help=argparse.SUPPRESS)
    add_run_args(p, dash=True)
    return p


def resolve_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the 'auto' defaults and validate combinations (UsageError / MissingInputError: one line, exit 2)."""
    if args.dataset == "auto":
        args.dataset = "imagenet" if args.data_root else "digits"
    if args.dataset not in DATASETS:
        raise UsageError(f"--dataset must be one of {', '.join(DATASETS)}; got {args.dataset!r}")
    if args.dataset == "imagenet" and not args.data_root:
        raise UsageError("--dataset imagenet needs --data-root DIR")
    if args.data_root and not Path(args.data_root).is_dir():
        raise MissingInputError(f"--data-root: no such directory: {args.data_root}")
    if args.model == "auto":
        args.model = {"imagenet": "resnet50", "mnist1d": "cnn1d_bn", "synthetic": "mlp"}.get(args.dataset, "cnn_bn")
    if args.model not in SMALL_MODELS:
        import timm

        if not timm.is_model(args.model):
            raise UsageError(f"unknown --model {args.model!r}: use cnn_bn, cnn1d_bn, mlp or a timm model name")
    if args.label_smoothing == "auto":
        args.label_smoothing = 0.1 if args.model == "efficientnet_b0" else 0.0
    if args.workers == "auto":
        args.workers = 8 if args.dataset == "imagenet" else 0
    if args.cooldown_fraction > 1:
        raise UsageError(f"--cooldown-fraction must lie in [0, 1]; got {args.cooldown_fraction}")
    if args.max_warmup_fraction > 1:
        raise UsageError(f"--max-warmup-fraction must lie in [0, 1]; got {args.max_warmup_fraction}")
    if args.min_lr >= args.max_lr:
        raise UsageError(f"--min-lr {args.min_lr} must be below --max-lr {args.max_lr}")
    if args.resume and args.resume != "auto" and not Path(args.resume).is_file():
        raise MissingInputError(f"--resume: checkpoint not found: {args.resume}")
    args.smoke = args.smoke or os.environ.get("SMOKE_TEST") == "1"
    return args


# ---- setup and build -------------------------------------------------------------------------------------------
def setup(args: argparse.Namespace) -> tuple[torch.device, DistEnv]:
    """The device and the torchrun process group (``--dist-backend``: auto = nccl on CUDA, gloo otherwise)."""
    device = resolve_device(args.device)
    env = init_distributed(device, backend=None if args.dist_backend == "auto" else args.dist_backend)
    if device.type == "cuda" and env.world_size > 1:
        device = torch.device("cuda", env.local_rank)
    seed_everything(args.seed)
    warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
    return device, env


@dataclass
class Trainer:
    """Everything one training run holds: data, model (and its DDP wrapper), optimizer, schedule, scaler."""

    args: argparse.Namespace
    device: torch.device
    env: DistEnv
    model: torch.nn.Module
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: torch.amp.GradScaler
    loader: DataLoader
    sampler: DistributedSampler
    val_ds: object

    @property
    def is_autowu(self) -> bool:
        return isinstance(self.scheduler, AutoWU)

    @property
    def steps(self) -> int:
        return len(self.loader)


def build_model(args: argparse.Namespace, data_kw: dict, num_classes: int) -> torch.nn.Module:
    if args.model in SMALL_MODELS:
        return build_small_model(args.model, args.width, data_kw, num_classes)
    import timm

    return timm.create_model(
        args.model, pretrained=False, num_classes=num_classes, in_chans=data_kw.get("in_channels", 3)
    )


def build(args: argparse.Namespace, device: torch.device, env: DistEnv) -> Trainer:
    """Data, model, optimizer, AutoWU (or the baseline cosine) and the AMP scaler."""
    smoke = 8 * args.batch_size if args.smoke else None
    train_ds, val_ds, data_kw, num_classes = build_datasets(args.dataset, args.data_root, smoke)
    model = build_model(args, data_kw, num_classes).to(device)
    world = env.world_size
    sync_bn = args.sync_bn == "on" or (args.sync_bn == "auto" and args.model == "efficientnet_b0")
    if sync_bn and world > 1:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    opt = make_optimizer(args.optimizer, model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sampler = DistributedSampler(train_ds, num_replicas=world, rank=env.rank, shuffle=True, seed=args.seed)
    loader = DataLoader(
        train_ds,
        batch_size=args.batch_size,
        sampler=sampler,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
    )
    if args.lr_sched == "autowu":
        sched = AutoWU(
            opt,
            len(loader),
            args.epochs,
            min_lr=args.min_lr,
            max_lr=args.max_lr,
            max_warmup_fraction=args.max_warmup_fraction,
            immediate_cooldown=args.decay_sched == "cos",
            cooldown_fraction=args.cooldown_fraction,
            on_nonfinite=args.on_nonfinite,
            device=device,
            reduce_loss=world > 1,
            seed=args.seed,
        )
    else:
        sched = make_scheduler("cosine", opt, len(loader), args.epochs, peak=args.lr, warmup_frac=args.warmup_frac)
    scaler = torch.amp.GradScaler("cuda", enabled=args.amp and device.type == "cuda")
    return Trainer(args, device, env, model, net, opt, sched, scaler, loader, sampler, val_ds)


# ---- one epoch, evaluation ---------------------------------------------------------------------------------------
def _autocast(device: torch.device, amp: bool):
    if not amp:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16)


def train_epoch(tr: Trainer, epoch: int) -> tuple[float, float]:
    """One pass over the training shard; AutoWU gets every mini-batch loss tensor (no host sync per step)."""
    args, device = tr.args, tr.device
    tr.sampler.set_epoch(epoch)
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
    bar = progress(tr.loader, desc=f"epoch {epoch + 1}/{args.epochs}", disable=args.no_progress)
    for xb, yb in bar:
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        with _autocast(device, args.amp):
            out = tr.net(xb)
            loss = F.cross_entropy(out.float(), yb, label_smoothing=args.label_smoothing)
        tr.optimizer.zero_grad(set_to_none=True)
        tr.scaler.scale(loss).backward()
        tr.scaler.step(tr.optimizer)
        tr.scaler.update()
        tr.scheduler.step(loss.detach()) if tr.is_autowu else tr.scheduler.step()
        sums[0] += loss.detach() * yb.numel()
        sums[1] += (out.detach().argmax(1) == yb).sum()
        sums[2] += yb.numel()
    if tr.env.world_size > 1:
        dist.all_reduce(sums)
    return (sums[0] / sums[2]).item(), (100 * sums[1] / sums[2]).item()


@torch.no_grad()
def evaluate(tr: Trainer) -> tuple[float, float, float]:
    """(loss, top-1 %, top-5 %) on exact validation shards (rank, rank + world, ...): no padding, sums all-reduced."""
    rank, world, device = tr.env.rank, tr.env.world_size, tr.device
    shard = Subset(tr.val_ds, range(rank, len(tr.val_ds), world))
    loader = DataLoader(shard, batch_size=tr.args.batch_size, num_workers=tr.args.workers)
    tr.net.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top1, top5, count
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        with _autocast(device, tr.args.amp):
            out = tr.net(xb).float()
        sums[0] += F.cross_entropy(out, yb, reduction="sum")
        top = out.topk(min(5, out.shape[1]), dim=1).indices
        sums[1] += (top[:, 0] == yb).sum()
        sums[2] += (top == yb[:, None]).any(1).sum()
        sums[3] += yb.numel()
    if world > 1:
        dist.all_reduce(sums)
    tr.net.train()
    loss, top1, top5, n = sums.tolist()
    return loss / n, 100 * top1 / n, 100 * top5 / n


def autowu_metrics(sched: AutoWU, first_test: int) -> dict:
    """The epoch's AutoWU test (mean p over the n_preds repeats, verdict, eta estimate); None when none ran."""
    tests = sched.test_log[first_test:]
    if not tests:
        return {"autowu/prob": None, "autowu/verdict": None, "autowu/eta_estimate": None}
    d = tests[-1]
    probs = [d[f"p_{r + 1}"] for r in range(sched.gp_config.n_preds)]
    return {
        "autowu/prob": sum(probs) / len(probs),
        "autowu/verdict": float(d["verdict"]),
        "autowu/eta_estimate": d["eta_estimate"],
    }


# ---- checkpoints -------------------------------------------------------------------------------------------------
def save(tr: Trainer, path: Path, epoch: int) -> None:
    """Atomic checkpoint (rank 0): model, optimizer, schedule, scaler, epoch, RNG states, arguments."""
    if tr.env.rank != 0:
        return
    state = {
        "model": tr.model.state_dict(),
        "optimizer": tr.optimizer.state_dict(),
        "scheduler": tr.scheduler.state_dict(),
        "scaler": tr.scaler.state_dict(),
        "epoch": epoch,
        "rng": rng_state(),
        "args": dict(vars(tr.args)),
    }
    save_checkpoint(path, state)


def resume(tr: Trainer, path: Path) -> int:
    """Load a checkpoint on every rank; returns the number of epochs already done."""
    ck = load_checkpoint(path, map_location=tr.device)
    tr.model.load_state_dict(ck["model"])
    tr.optimizer.load_state_dict(ck["optimizer"])
    tr.scheduler.load_state_dict(ck["scheduler"])
    tr.scaler.load_state_dict(ck["scaler"])
    set_rng_state(ck["rng"])
    epoch = int(ck["epoch"])
    if tr.env.rank == 0:
        announce_resume(path, f"epoch {epoch}")
    return epoch


# ---- main ----------------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    args = resolve_args(build_parser().parse_args(argv))
    device, env = setup(args)
    tr = build(args, device, env)
    run = open_autowu_run(
        "train", args, name=args.name, root=args.out, save_dir=args.save_dir, tensorboard=args.tensorboard
    )
    ckpt_path = run.path / "checkpoint.pt"
    start_epoch = 0
    if args.resume:
        path = ckpt_path if args.resume == "auto" else Path(args.resume)
        if path.is_file():  # 'auto' without a checkpoint starts fresh; a named file was checked in resolve_args
            start_epoch = resume(tr, path)
    t_start = time.time()
    val = (math.nan, math.nan, math.nan)
    for epoch in range(start_epoch, args.epochs):
        t0 = time.time()
        first_test = len(tr.scheduler.test_log) if tr.is_autowu else 0
        train_loss, train_acc = train_epoch(tr, epoch)
        val = evaluate(tr)
        param_norm = math.sqrt(sum(float(p.detach().float().pow(2).sum()) for p in tr.model.parameters()))
        row = {
            "epoch": epoch + 1,
            "train/lr": float(tr.optimizer.param_groups[0]["lr"]),
            "phase": tr.scheduler.phase if tr.is_autowu else "cosine",
            "train/loss": train_loss,
            "train/acc1": train_acc,
            "train/param_norm": param_norm,
            "valid/loss": val[0],
            "valid/acc1": val[1],
            "valid/acc5": val[2],
            **(autowu_metrics(tr.scheduler, first_test) if tr.is_autowu else {}),
            "seconds": round(time.time() - t0, 3),
        }
        run.log(step=epoch + 1, **row)
        last = epoch + 1 == args.epochs
        stop = args.stop_after_epoch is not None and epoch + 1 >= args.stop_after_epoch
        if last or stop or args.smoke or (epoch + 1) % args.save_freq == 0:
            save(tr, ckpt_path, epoch + 1)
        if stop and not last:
            if env.world_size > 1:
                dist.barrier()
            if env.rank == 0:
                print(f"stopped after epoch {epoch + 1} (checkpoint {ckpt_path})")
                print(f"run dir: {run.path}")
            return 0

    summary = finish_outputs(run, tr, val, time.time() - t_start)
    run.finish(summary)
    if env.world_size > 1:
        dist.destroy_process_group()
    return 0


def finish_outputs(run: Run, tr: Trainer, val, seconds: float) -> dict:
    """final.json (also the summary), autowu_tests.csv, ramp.csv and the three plots."""
    args, sched, steps = tr.args, tr.scheduler, tr.steps
    total = steps * args.epochs
    info = {"switch_step": None, "switch_epoch": None, "eta_sw": None, "peak_lr": None, "reason": None}
    if tr.is_autowu:
        st = sched.switch_step
        info = {
            "switch_step": st,
            "switch_epoch": None if st is None else st / steps,
            "eta_sw": sched.switch_lr,
            "peak_lr": sched.peak_lr,
            "reason": sched.switch_reason,
        }
    agree = True
    if tr.env.world_size > 1:
        mine = torch.tensor(
            [float(info["switch_step"] or -1), float(info["eta_sw"] or -1), float(sched.get_last_lr()[0])],
            dtype=torch.float64,
        )
        gathered = [torch.zeros_like(mine) for _ in range(tr.env.world_size)]
        dist.all_gather(gathered, mine)
        agree = all(torch.equal(g, gathered[0]) for g in gathered)
    final = {
        "acc1": val[1],
        "acc5": val[2],
        "val_loss": val[0],
        **info,
        "ranks_agree": agree,
        "world_size": tr.env.world_size,
        "seconds": round(seconds, 2),
    }
    run.write_json("final.json", final)
    if run.primary:
        if tr.is_autowu:
            write_rows_csv(run.path / "autowu_tests.csv", sched.test_log)
            hist = sched.history.tolist()
            ramp = [{"step": u + 1, "lr": sched.lr_at(u + 1), "loss": v} for u, v in enumerate(hist)]
            write_rows_csv(run.path / "ramp.csv", ramp)
            lrs = [sched.lr_at(u) for u in range(1, total + 1)]
        else:
            f = BaselineFactor(args.warmup_frac, total)
            lrs = [args.lr * f(u - 1) for u in range(1, total + 1)]
        _plots(run, lrs, sched if tr.is_autowu else None)
    return final


def _plots(run: Run, lrs: list, sched: AutoWU | None) -> None:
    from autowu.plots import plot_ramp_loss, plot_schedules, plot_training_curves
    from common.plotting import new_figure

    run.save_figure(plot_schedules({"LR": lrs}, "learning rate per update"), "lr.png")
    if sched is not None and sched.history.numel():
        hist = sched.history.tolist()
        ramp = {
            "lr": [sched.lr_at(u + 1) for u in range(len(hist))],
            "loss": hist,
            "switch_lr": sched.switch_lr,
            "peak_lr": sched.peak_lr,
        }
        run.save_figure(plot_ramp_loss([ramp]), "ramp_loss.png")
    else:
        fig, _ = new_figure("no AutoWU ramp (baseline schedule)", "learning rate", "training loss")
        run.save_figure(fig, "ramp_loss.png")
    run.save_figure(plot_training_curves(run.path / "metrics.csv"), "curves.png")


if __name__ == "__main__":
    run_main(main)
