"""Train an image classifier with AutoWU (the reference train.py kept, with the fixes of spec section 4).

    python -m torch.distributed.run --nproc_per_node=4 --nnodes=4 --node_rank=$NODE_RANK \
        --master_addr=$MASTER_ADDR --master_port=$MASTER_PORT \
        autowu/train.py --data-root $DATA_ROOT --amp --batch-size 256
    python autowu/train.py --dataset digits --epochs 6 --batch-size 128        # offline, a minute on CPU
"""

from __future__ import annotations

import csv
import math
import os
import time
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from autowu.scheduler import AutoWU
from autowu.schedules import BaselineFactor
from autowu.training import OFFLINE_DATASETS, build_small_model, load_offline, make_optimizer, make_scheduler
from common.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from common.cli import ArgumentParser, nonneg_float, nonneg_int, positive_float, positive_int, run_main
from common.distributed import init_distributed
from common.runs import Run, open_run, progress
from common.runtime import resolve_device, seed_everything

SMALL_MODELS = ("cnn_bn", "cnn1d_bn", "mlp")
DATASETS = ("imagenet", *OFFLINE_DATASETS)


def build_parser():
    p = ArgumentParser(description=__doc__.split("\n")[0])
    g = p.add_argument_group("dataset")
    g.add_argument("--data-root", default=None, metavar="DIR", help="ImageNet root (train/, val/); selects imagenet")
    g.add_argument("--dataset", default="auto", metavar="NAME", help=f"auto | {' | '.join(DATASETS)}")
    g.add_argument("--workers", default="auto", metavar="N", help="loader workers (auto: 8 for imagenet, else 0)")
    g.add_argument("--smoke", action="store_true", help="8 x batch-size samples per split, save every epoch")
    g = p.add_argument_group("model")
    g.add_argument("--model", default="auto", metavar="NAME", help="auto | cnn_bn | cnn1d_bn | mlp | any timm name")
    g.add_argument("--width", type=positive_int, default=16, metavar="W", help="width of the small models")
    g.add_argument("--label-smoothing", default="auto", metavar="EPS", help="auto: 0.1 for efficientnet_b0, else 0")
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
    g = p.add_argument_group("run")
    g.add_argument("--seed", type=nonneg_int, default=0, metavar="INT", help="random seed")
    g.add_argument("--device", default="auto", metavar="DEV", help="auto | cpu | cuda")
    g.add_argument("--name", default=None, metavar="NAME", help="run name (default: a timestamp)")
    g.add_argument("--out", default="results", metavar="DIR", help="results root")
    g.add_argument("--save-dir", default=None, metavar="DIR", help="run directory (overrides --out/--name)")
    g.add_argument("--save-freq", type=positive_int, default=20, metavar="N", help="checkpoint every N epochs")
    g.add_argument("--resume", default=None, metavar="PATH", help="checkpoint path, or 'auto' (the run dir's)")
    g.add_argument("--stop-after-epoch", type=positive_int, default=None, metavar="N", help="checkpoint, then exit")
    g.add_argument("--log-interval", type=positive_int, default=None, metavar="STEPS", help="default 1 %% of an epoch")
    g.add_argument("--tensorboard", action="store_true", help="TensorBoard logs in the run dir")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")
    g.add_argument("--dist-backend", default="auto", choices=("auto", "nccl", "gloo"), help="auto: nccl on CUDA")
    g.add_argument("--local-rank", "--local_rank", dest="local_rank", default=None, help=argparse_suppress())
    return p


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


# ---- data ------------------------------------------------------------------------------------------------------
class Lighting:
    """AlexNet PCA lighting noise (alpha_std 0.1) on a CHW tensor in [0, 1]."""

    eigval = torch.tensor([0.2175, 0.0188, 0.0045])
    eigvec = torch.tensor([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])

    def __init__(self, alpha_std=0.1):
        self.alpha_std = alpha_std

    def __call__(self, img):
        alpha = torch.randn(3) * self.alpha_std
        return img + (self.eigvec @ (alpha * self.eigval)).view(3, 1, 1)


def imagenet_sets(root: str):
    """(train, val) ImageNet datasets with the pinned transforms (spec section 4)."""
    import torchvision.transforms as T
    from timm.data import create_transform
    from torchvision.datasets import ImageFolder, ImageNet

    root_p = Path(root)
    if not (root_p / "train").is_dir() and not (root_p / "ILSVRC2012_devkit_t12.tar.gz").exists():
        raise FileNotFoundError(
            f"ImageNet not found under {root}: expected train/ and val/ folders (ImageFolder "
            "layout) or the devkit archive for torchvision.datasets.ImageNet"
        )
    train_tf = create_transform(224, is_training=True, color_jitter=0.4)
    steps = list(train_tf.transforms)
    norm_at = next((i for i, t in enumerate(steps) if isinstance(t, T.Normalize)), len(steps))
    train_tf = T.Compose(steps[:norm_at] + [Lighting(0.1)] + steps[norm_at:])
    norm = T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    val_tf = T.Compose(
        [T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(), norm]
    )
    if (root_p / "ILSVRC2012_devkit_t12.tar.gz").exists():
        return ImageNet(root, "train", transform=train_tf), ImageNet(root, "val", transform=val_tf)
    return ImageFolder(root_p / "train", train_tf), ImageFolder(root_p / "val", val_tf)


def resolve_args(args):
    """Fill the 'auto' defaults and validate combinations; bad input raises ValueError (one line, exit 2)."""
    if args.dataset == "auto":
        args.dataset = "imagenet" if args.data_root else "digits"
    if args.dataset not in DATASETS:
        raise ValueError(f"--dataset must be one of {', '.join(DATASETS)}; got {args.dataset!r}")
    if args.dataset == "imagenet" and not args.data_root:
        raise ValueError("--dataset imagenet needs --data-root DIR")
    if args.model == "auto":
        args.model = {"imagenet": "resnet50", "mnist1d": "cnn1d_bn", "synthetic": "mlp"}.get(args.dataset, "cnn_bn")
    if args.model not in SMALL_MODELS:
        import timm

        if not timm.is_model(args.model):
            raise ValueError(f"unknown --model {args.model!r}: use cnn_bn, cnn1d_bn, mlp or a timm model name")
    args.label_smoothing = (
        (0.1 if args.model == "efficientnet_b0" else 0.0)
        if args.label_smoothing == "auto"
        else float(args.label_smoothing)
    )
    if args.workers == "auto":
        args.workers = 8 if args.dataset == "imagenet" else 0
    args.workers = int(args.workers)
    if args.workers < 0:
        raise ValueError(f"--workers must be >= 0; got {args.workers}")
    if not 0 <= args.cooldown_fraction <= 1 or not 0 <= args.max_warmup_fraction <= 1:
        raise ValueError("--cooldown-fraction and --max-warmup-fraction must lie in [0, 1]")
    if args.resume and args.resume != "auto" and not Path(args.resume).is_file():
        raise FileNotFoundError(f"--resume: checkpoint not found: {args.resume}")
    if args.data_root and not Path(args.data_root).is_dir():
        raise FileNotFoundError(f"--data-root: no such directory: {args.data_root}")
    args.smoke = args.smoke or os.environ.get("SMOKE_TEST") == "1"
    return args


def build_data(args):
    if args.dataset == "imagenet":
        train_ds, val_ds = imagenet_sets(args.data_root)
        data_kw, num_classes = {"in_channels": 3}, len(getattr(train_ds, "classes", range(1000)))
    else:
        (x, y), (xt, yt), data_kw = load_offline(args.dataset, "data")
        train_ds, val_ds, num_classes = TensorDataset(x, y), TensorDataset(xt, yt), int(y.max()) + 1
    if args.smoke:
        n = 8 * args.batch_size
        train_ds = Subset(train_ds, range(min(n, len(train_ds))))
        val_ds = Subset(val_ds, range(min(n, len(val_ds))))
    return train_ds, val_ds, data_kw, num_classes


def build_model(args, data_kw, num_classes):
    if args.model in SMALL_MODELS:
        return build_small_model(args.model, args.width, data_kw, num_classes)
    import timm

    return timm.create_model(
        args.model, pretrained=False, num_classes=num_classes, in_chans=data_kw.get("in_channels", 3)
    )


# ---- loop -----------------------------------------------------------------------------------------------------
def _autocast(device, amp):
    if not amp:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16)


@torch.no_grad()
def validate(model, val_ds, args, device, rank, world):
    """Exact validation shards (rank, rank + world, ...): no padding; sums all-reduced."""
    shard = Subset(val_ds, range(rank, len(val_ds), world))
    loader = DataLoader(shard, batch_size=args.batch_size, num_workers=args.workers)
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top1, top5, count
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        with _autocast(device, args.amp):
            out = model(xb).float()
        sums[0] += F.cross_entropy(out, yb, reduction="sum")
        top = out.topk(min(5, out.shape[1]), dim=1).indices
        sums[1] += (top[:, 0] == yb).sum()
        sums[2] += (top == yb[:, None]).any(1).sum()
        sums[3] += yb.numel()
    if world > 1:
        dist.all_reduce(sums)
    model.train()
    loss, top1, top5, n = sums.tolist()
    return loss / n, 100 * top1 / n, 100 * top5 / n


def _write_csv(path: Path, rows: list[dict]):
    if not rows:
        path.write_text("")
        return
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def main(argv=None):
    args = resolve_args(build_parser().parse_args(argv))
    device = resolve_device(args.device)
    env = init_distributed(device)
    rank, world = env.rank, env.world_size
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", env.local_rank)
    seed_everything(args.seed)
    warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")

    train_ds, val_ds, data_kw, num_classes = build_data(args)
    model = build_model(args, data_kw, num_classes).to(device)
    sync_bn = args.sync_bn == "on" or (args.sync_bn == "auto" and args.model == "efficientnet_b0" and world > 1)
    if sync_bn and world > 1:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    opt = make_optimizer(args.optimizer, model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    sampler = DistributedSampler(train_ds, num_replicas=world, rank=rank, shuffle=True, seed=args.seed)
    loader = DataLoader(
        train_ds,
        batch_size=args.batch_size,
        sampler=sampler,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
    )
    steps = len(loader)
    if args.lr_sched == "autowu":
        sched = AutoWU(
            opt,
            steps,
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
        sched = make_scheduler("cosine", opt, steps, args.epochs, peak=args.lr, warmup_frac=args.warmup_frac)
    scaler = torch.amp.GradScaler("cuda", enabled=args.amp and device.type == "cuda")

    if args.save_dir:
        run = Run(Path(args.save_dir), primary=rank == 0, tensorboard=args.tensorboard)
        if rank == 0:
            run.path.mkdir(parents=True, exist_ok=True)
        run.write_json("config.json", args)
    else:
        run = open_run("autowu", "train", args, name=args.name, root=args.out, tensorboard=args.tensorboard)
    ckpt_path = run.path / "checkpoint.pt"
    start_epoch = 0
    if args.resume:
        path = ckpt_path if args.resume == "auto" else Path(args.resume)
        if args.resume != "auto" and not path.is_file():
            raise FileNotFoundError(f"--resume: checkpoint not found: {path}")
        if path.is_file():
            ck = load_checkpoint(path, map_location=device)
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            scaler.load_state_dict(ck["scaler"])
            set_rng_state(ck["rng"])
            start_epoch = int(ck["epoch"])
            if rank == 0:
                print(f"resumed from {path} at epoch {start_epoch}")

    is_autowu = isinstance(sched, AutoWU)
    log_every = args.log_interval or max(1, steps // 100)
    t_start = time.time()
    n_logged_tests = len(sched.test_log) if is_autowu else 0
    val = (math.nan, math.nan, math.nan)
    for epoch in range(start_epoch, args.epochs):
        sampler.set_epoch(epoch)
        t0 = time.time()
        sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
        bar = progress(loader, desc=f"epoch {epoch + 1}/{args.epochs}", disable=args.no_progress)
        for i, (xb, yb) in enumerate(bar):
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            with _autocast(device, args.amp):
                out = net(xb)
                loss = F.cross_entropy(out.float(), yb, label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step(loss.detach()) if is_autowu else sched.step()
            sums[0] += loss.detach() * yb.numel()
            sums[1] += (out.detach().argmax(1) == yb).sum()
            sums[2] += yb.numel()
            if run.primary and args.tensorboard and (i + 1) % log_every == 0 and run._writer is not None:
                run._writer.add_scalar("train/lr", float(opt.param_groups[0]["lr"]), epoch * steps + i + 1)
        if world > 1:
            dist.all_reduce(sums)
        train_loss, train_acc = (sums[0] / sums[2]).item(), (100 * sums[1] / sums[2]).item()
        val = validate(net, val_ds, args, device, rank, world)
        param_norm = math.sqrt(sum(float(p.detach().float().pow(2).sum()) for p in model.parameters()))
        lr_now = float(opt.param_groups[0]["lr"])
        row = {
            "epoch": epoch + 1,
            "train/lr": lr_now,
            "phase": sched.phase if is_autowu else "cosine",
            "train/loss": train_loss,
            "train/acc1": train_acc,
            "train/param_norm": param_norm,
            "valid/loss": val[0],
            "valid/acc1": val[1],
            "valid/acc5": val[2],
            "seconds": round(time.time() - t0, 3),
        }
        run.log(step=epoch + 1, **row)
        if is_autowu and run.primary and run._writer is not None:
            for d in sched.test_log[n_logged_tests:]:
                p_mean = sum(d[f"p_{r + 1}"] for r in range(5)) / 5
                run._writer.add_scalar("autowu/prob", p_mean, d["step"])
                run._writer.add_scalar("autowu/verdict", float(d["verdict"]), d["step"])
                run._writer.add_scalar("autowu/eta_estimate", d["eta_estimate"], d["step"])
        n_logged_tests = len(sched.test_log) if is_autowu else 0
        last = epoch + 1 == args.epochs
        stop = args.stop_after_epoch is not None and epoch + 1 >= args.stop_after_epoch
        if rank == 0 and (last or stop or args.smoke or (epoch + 1) % args.save_freq == 0):
            save_checkpoint(
                ckpt_path,
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "scaler": scaler.state_dict(),
                    "epoch": epoch + 1,
                    "rng": rng_state(),
                    "args": dict(vars(args)),
                },
            )
        if stop and not last:
            if world > 1:
                dist.barrier()
            if rank == 0:
                print(f"stopped after epoch {epoch + 1} (checkpoint {ckpt_path})")
                print(f"run dir: {run.path}")
            return 0

    summary = _finish_outputs(run, args, sched, is_autowu, steps, val, world, time.time() - t_start)
    run.finish(summary)
    if world > 1:
        dist.destroy_process_group()
    return 0


def _finish_outputs(run, args, sched, is_autowu, steps, val, world, seconds):
    """final.json, summary.json content, autowu_tests.csv, ramp.csv and the three plots."""
    total = steps * args.epochs
    info = {"switch_step": None, "switch_epoch": None, "eta_sw": None, "peak_lr": None, "reason": None}
    if is_autowu:
        st = sched.switch_step
        info = {
            "switch_step": st,
            "switch_epoch": None if st is None else st / steps,
            "eta_sw": sched.switch_lr,
            "peak_lr": sched.peak_lr,
            "reason": sched.switch_reason,
        }
    agree = True
    if world > 1:
        mine = torch.tensor(
            [float(info["switch_step"] or -1), float(info["eta_sw"] or -1), float(sched.get_last_lr()[0])],
            dtype=torch.float64,
        )
        gathered = [torch.zeros_like(mine) for _ in range(world)]
        dist.all_gather(gathered, mine)
        agree = all(torch.equal(g, gathered[0]) for g in gathered)
    final = {
        "acc1": val[1],
        "acc5": val[2],
        "val_loss": val[0],
        **info,
        "ranks_agree": agree,
        "world_size": world,
        "seconds": round(seconds, 2),
    }
    run.write_json("final.json", final)
    if run.primary:
        if is_autowu:
            _write_csv(run.path / "autowu_tests.csv", sched.test_log)
            hist = sched.history.tolist()
            _write_csv(
                run.path / "ramp.csv",
                [{"step": u + 1, "lr": sched.lr_at(u + 1), "loss": v} for u, v in enumerate(hist)],
            )
            lrs = [sched.lr_at(u) for u in range(1, total + 1)]
        else:
            f = BaselineFactor(args.warmup_frac, total)
            lrs = [args.lr * f(u - 1) for u in range(1, total + 1)]
        _plots(run, lrs, sched if is_autowu else None)
    return final


def _plots(run, lrs, sched):
    from autowu.plots import plot_ramp_loss, plot_schedules
    from common.plotting import new_figure

    run.save_figure(plot_schedules({"LR": lrs}, "learning rate per update"), "lr.png")
    if sched is not None and sched.history.numel():
        hist = sched.history.tolist()
        run.save_figure(
            plot_ramp_loss(
                [
                    {
                        "lr": [sched.lr_at(u + 1) for u in range(len(hist))],
                        "loss": hist,
                        "switch_lr": sched.switch_lr,
                        "peak_lr": sched.peak_lr,
                    }
                ]
            ),
            "ramp_loss.png",
        )
    else:
        fig, ax = new_figure("no AutoWU ramp (baseline schedule)", "learning rate", "training loss")
        run.save_figure(fig, "ramp_loss.png")
    rows = []
    with open(run.path / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    fig, (a1, a2) = new_figure("training curves", "epoch", "loss", ncols=2)
    ep = [int(r["epoch"]) for r in rows]
    a1.plot(ep, [float(r["train/loss"]) for r in rows], label="train")
    a1.plot(ep, [float(r["valid/loss"]) for r in rows], label="valid")
    a1.legend()
    a2.plot(ep, [float(r["valid/acc1"]) for r in rows], label="valid top-1")
    a2.set_ylabel("accuracy (%)")
    a2.legend()
    run.save_figure(fig, "curves.png")


if __name__ == "__main__":
    run_main(main)
