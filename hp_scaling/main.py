"""Train DAG MLP/CNN or NAS-Bench-201 cells with the architecture-aware init (eq. 4) and LR (eq. 8/9).

The seed's command (spec 2), from the repo root:
    python hp_scaling/main.py --data data --gpu 0 --batch_size 256 --aug --momentum 0.9 --weight_decay 0.0005 \
      --nesterov --decreasing_lr --width 16 --arch tinynetwork --dataset cifar10 --epochs 200 --lr 0.46 --lr_autoscale
Each (dag, seed) is one run: <run dir>/<code>/seed-<s>/ holds metrics.csv, steps.csv, checkpoint.pt, net_train.png;
results.csv has one row per run; summary.json the headline numbers.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from pathlib import Path

import torch

from common.checkpoint import load_checkpoint
from common.cli import ArgumentParser, nonneg_int, positive_int, run_main
from common.runs import Run, progress
from common.runtime import resolve_device
from hp_scaling.dags import InvalidCodeError, all_codes, arch_str_to_code, code_to_arch_str, parse_code, random_order
from hp_scaling.loaders import AUG_PAD, load_data
from hp_scaling.models import build_model
from hp_scaling.scaling import INITS, NoPathError, lr_multiplier, path_sum
from hp_scaling.train import TrainConfig, evaluate, train

RESULT_FIELDS = [
    "code",
    "arch_str",
    "n_paths",
    "S",
    "multiplier",
    "lr_used",
    "status",
    "final_test_acc",
    "best_test_acc",
    "final_train_loss",
    "epochs_done",
    "wall_s",
    "seed",
]


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description="Train DAG networks with architecture-aware init and LR (Chen et al., ICLR 2024)")
    g = p.add_argument_group("data and architecture")
    g.add_argument("--data", default="data", metavar="DIR", help="dataset root")
    g.add_argument(
        "--dataset",
        default="cifar10",
        metavar="NAME",
        help="cifar10, cifar100, imagenet16_120, digits, mnist5k (or another common.data image set)",
    )
    g.add_argument("--arch", choices=["mlp", "cnn", "tinynetwork"], default="mlp", help="model family")
    g.add_argument("--dag", default=None, metavar="CODE", help="one DAG code (or NB201 arch string)")
    g.add_argument("--dags", nargs="+", default=None, metavar="CODE", help="several DAG codes")
    g.add_argument(
        "--num_dags",
        type=positive_int,
        default=None,
        metavar="M",
        help="first M codes of random_order(--order_seed) (default: all)",
    )
    g.add_argument("--order_seed", type=int, default=0, metavar="INT", help="permutation seed for --num_dags")
    g.add_argument("--dag_nodes", type=positive_int, default=5, metavar="N", help="nodes of mlp/cnn DAGs")
    m = p.add_argument_group("model")
    m.add_argument("--width", type=int, default=None, metavar="INT", help="width (16 tinynetwork, else 64)")
    m.add_argument("--kernel_size", type=positive_int, default=3, metavar="Q", help="cnn kernel size")
    m.add_argument("--stride", type=positive_int, default=1, metavar="INT", help="cnn stem stride")
    m.add_argument("--bn", action="store_true", help="BatchNorm after each Linear/Conv edge (mlp/cnn)")
    m.add_argument("--act", choices=["relu", "gelu"], default="relu", help="activation")
    m.add_argument("--init", choices=INITS, default="paper", help="init convention (spec 3.2)")
    m.add_argument("--block", choices=["auto", "pre", "post"], default="auto", help="block order")
    m.add_argument("--depth_offset", default="auto", metavar="auto|INT", help="L_p = k_p + offset (eq. 8)")
    m.add_argument("--kernel_base", type=positive_int, default=3, metavar="Q", help="kernel of the base net")
    m.add_argument("--all_skip", choices=["count", "reference"], default="count", help="all-skip DAG rule")
    o = p.add_argument_group("optimization")
    o.add_argument("--batch_size", type=int, default=128, metavar="INT", help="minibatch size")
    o.add_argument("--lr", type=float, default=0.46, metavar="LR", help="base LR (max LR of the shallow net)")
    o.add_argument("--lr_autoscale", action="store_true", help="scale --lr by eq. 8/9 for each DAG")
    o.add_argument("--momentum", type=float, default=0.0, metavar="MU", help="SGD momentum")
    o.add_argument("--weight_decay", type=float, default=0.0, metavar="WD", help="SGD weight decay")
    o.add_argument("--nesterov", action="store_true", help="Nesterov momentum (needs --momentum > 0)")
    o.add_argument("--epochs", type=positive_int, default=1, metavar="INT", help="epochs")
    o.add_argument("--steps", type=positive_int, default=None, metavar="INT", help="1 epoch, stop after this many")
    o.add_argument("--warmup", type=float, default=0.0, metavar="EPOCHS", help="linear warmup per step (epochs)")
    o.add_argument("--decreasing_lr", action="store_true", help="cosine decay per epoch (T_max = epochs)")
    lg = p.add_argument_group("logging and augmentation")
    lg.add_argument("--aug", action="store_true", help="flip + padded crop (CIFAR pad 4, ImageNet16 pad 2)")
    lg.add_argument("--per_class_acc", action="store_true", help="also log the mean per-class recall")
    lg.add_argument("--tensorboard", action="store_true", help="log epochs to TensorBoard")
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=nonneg_int, default=0, metavar="INT", help="first seed")
    r.add_argument("--repeat", type=positive_int, default=1, metavar="INT", help="seeds seed..seed+repeat-1")
    r.add_argument("--device", default="auto", metavar="DEV", help="auto | cpu | cuda | cuda:N")
    r.add_argument("--gpu", type=nonneg_int, default=None, metavar="N", help="alias of --device cuda:N")
    r.add_argument(
        "--workers",
        type=nonneg_int,
        default=4,
        metavar="INT",
        help="loader workers (data are held in memory here, so this is unused)",
    )
    r.add_argument("--resume", action="store_true", help="continue the run of the same name")
    r.add_argument("--checkpoint", default=None, metavar="PATH", help="checkpoint for --inference")
    r.add_argument("--inference", action="store_true", help="evaluate --checkpoint only")
    r.add_argument("--save_dir", default="results/hp_scaling/main", metavar="DIR", help="output root")
    r.add_argument("--exp_name", default="", metavar="NAME", help="run name (default: BULK-... from the flags)")
    r.add_argument("--no_progress", action="store_true", help="hide progress bars")
    return p


def family_of(arch: str) -> str:
    return {"mlp": "mlp", "cnn": "cnn", "tinynetwork": "nb201"}[arch]


def run_name(args, width: int) -> str:
    """BULK-<dataset>[.Aug]-<arch>[.K<q>].W<w>-LR<lr>[.AutoScale][.Nev]-BS<bs>-Epoch<E>[.Steps<s>]."""
    name = f"BULK-{args.dataset}{'.Aug' if args.aug else ''}-{args.arch}"
    name += f".K{args.kernel_size}" if args.arch == "cnn" else ""
    name += f".W{width}-LR{args.lr:g}{'.AutoScale' if args.lr_autoscale else ''}{'.Nev' if args.nesterov else ''}"
    return name + f"-BS{args.batch_size}-Epoch{args.epochs}" + (f".Steps{args.steps}" if args.steps else "")


def resolve_codes(args) -> list[str]:
    fam = family_of(args.arch)
    if args.dag or args.dags:
        raw = ([args.dag] if args.dag else []) + (args.dags or [])
    else:
        pool = all_codes(fam, None if fam == "nb201" else args.dag_nodes)
        order = random_order(len(pool), args.order_seed)
        raw = [pool[int(i)] for i in order[: args.num_dags]] if args.num_dags else pool
    codes = []
    for c in raw:
        if fam == "nb201" and c.startswith("|"):
            c = arch_str_to_code(c)
        parse_code(c, fam)  # InvalidCodeError (a ValueError) names the bad token
        codes.append(c)
    return codes


def pick_device(args) -> torch.device:
    if args.gpu is not None:
        if not torch.cuda.is_available():
            print(f"warning: --gpu {args.gpu} given but CUDA is not available; running on CPU", file=sys.stderr)
            return torch.device("cpu")
        return torch.device(f"cuda:{args.gpu}")
    return resolve_device(args.device)


def validate(args) -> None:
    if args.width is not None and args.width < 1:
        raise ValueError(f"--width must be >= 1, got {args.width}")
    if args.batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {args.batch_size}")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        raise ValueError(f"--lr must be a positive number, got {args.lr}")
    if args.nesterov and args.momentum <= 0:
        raise ValueError("--nesterov needs --momentum > 0 (got 0)")
    if args.inference and not args.checkpoint:
        raise ValueError("--inference needs --checkpoint PATH")
    if args.depth_offset != "auto" and not args.depth_offset.isdigit():
        raise ValueError(f"--depth_offset must be auto or a positive integer, got {args.depth_offset!r}")


def inference(args, device) -> int:
    state = load_checkpoint(args.checkpoint)
    margs = state.get("model_args") or {}
    if not margs:
        raise ValueError(f"checkpoint {args.checkpoint} has no model_args; it was not written by main.py")
    test = load_data(margs.get("dataset", args.dataset), "test", args.data).to(device)
    ma = {k: v for k, v in margs.items() if k not in ("dataset", "arch", "code")}
    model = build_model(margs["arch"], margs["code"], **ma).to(device)
    model.load_state_dict(state["model"])
    ev = evaluate(model, test)
    out = Path(args.checkpoint).parent
    run = Run(out)
    print(f"{margs['code']}: test_acc {ev['test_acc']:.4f}  test_loss {ev['test_loss']:.4f}")
    run.finish({"inference": True, "checkpoint": str(args.checkpoint), **ev})
    return 0


def _net_plot(history, path: Path, title: str) -> None:
    from common.plotting import new_figure, save_figure

    fig, ax = new_figure(title, "epoch", "loss (nats) / accuracy")
    e = [h["epoch"] for h in history]
    ax.plot(e, [h["train_loss"] for h in history], marker="o", label="train loss")
    ax.plot(e, [h["test_acc"] for h in history], marker="s", label="test accuracy")
    ax.legend()
    save_figure(fig, path)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    validate(args)
    device = pick_device(args)
    if args.inference:
        return inference(args, device)
    fam = family_of(args.arch)
    codes = resolve_codes(args)
    width = args.width or (16 if args.arch == "tinynetwork" else 64)
    depth_offset = args.depth_offset if args.depth_offset == "auto" else int(args.depth_offset)
    runnable, no_path = [], []
    for c in codes:
        try:
            path_sum(c, fam)
            runnable.append(c)
        except NoPathError:
            print(f"skipping {c}: no input-to-output path (status=no_path)")
            no_path.append(c)
    if not runnable:
        raise NoPathError(f"no requested DAG has an input-to-output path ({', '.join(codes[:3])}...)")
    train_data = load_data(args.dataset, "train", args.data).to(device)
    test_data = load_data(args.dataset, "test", args.data).to(device)
    aug_pad = 0
    if args.aug:
        aug_pad = AUG_PAD.get(args.dataset, 0)
        if not aug_pad or len(train_data.in_shape) != 3:
            print(f"note: --aug ignored for {args.dataset}")
            aug_pad = 0
    base = Path(args.save_dir) / args.exp_name if args.exp_name else Path(args.save_dir)
    name = run_name(args, width)
    path = base / name
    if path.exists() and not args.resume:
        k = 2
        while (base / f"{name}-{k}").exists():
            k += 1
        path = base / f"{name}-{k}"
    path.mkdir(parents=True, exist_ok=True)
    run = Run(path, tensorboard=args.tensorboard)
    run.write_json("config.json", {**vars(args), "width": width, "device": str(device), "codes": codes})
    t0 = time.time()
    rows = [_no_path_row(c, fam, s) for c in no_path for s in _seeds(args)]
    items = [(c, s) for c in runnable for s in _seeds(args)]
    for code, seed in progress(items, desc="main", disable=args.no_progress):
        rows.append(
            _one_run(args, code, seed, fam, width, depth_offset, train_data, test_data, aug_pad, path, device, run)
        )
        _write_results(path / "results.csv", rows)
    _write_results(path / "results.csv", rows)
    done = [r for r in rows if r["status"] == "ok"]
    accs = [r["final_test_acc"] for r in done]
    summary = {
        "n_runs": len(rows),
        "n_ok": len(done),
        "n_diverged": sum(r["status"] == "diverged" for r in rows),
        "n_no_path": len(no_path),
        "mean_final_test_acc": sum(accs) / len(accs) if accs else math.nan,
        "best_test_acc": max((r["best_test_acc"] for r in done), default=math.nan),
        "lr_used": {f"{r['code']}|{r['seed']}": r["lr_used"] for r in rows},
        "wall_s": round(time.time() - t0, 3),
    }
    print(f"{len(done)}/{len(rows)} runs ok; mean final test acc {summary['mean_final_test_acc']:.4f}")
    run.finish(summary)
    return 0


def _seeds(args) -> list[int]:
    return list(range(args.seed, args.seed + args.repeat))


def _arch_str(code: str, fam: str) -> str:
    return code_to_arch_str(code) if fam == "nb201" else ""


def _no_path_row(code, fam, seed) -> dict:
    return {
        "code": code,
        "arch_str": _arch_str(code, fam),
        "n_paths": 0,
        "S": "",
        "multiplier": "",
        "lr_used": "",
        "status": "no_path",
        "final_test_acc": "",
        "best_test_acc": "",
        "final_train_loss": "",
        "epochs_done": 0,
        "wall_s": 0.0,
        "seed": seed,
    }


def _one_run(args, code, seed, fam, width, depth_offset, train_data, test_data, aug_pad, path, device, run) -> dict:
    q = args.kernel_size if fam == "cnn" else None
    mult = lr_multiplier(
        code, fam, depth_offset=depth_offset, q=q, kernel_base=args.kernel_base, all_skip=args.all_skip
    )
    lr = args.lr * mult if args.lr_autoscale else args.lr
    margs = dict(
        in_shape=train_data.in_shape,
        num_classes=train_data.num_classes,
        width=width,
        init=args.init,
        block=args.block,
        act=args.act,
        bn=args.bn,
        kernel_size=args.kernel_size,
        stride=args.stride,
    )
    torch.manual_seed(seed)
    model = build_model(args.arch, code, **margs).to(device)
    out = path / code / f"seed-{seed}"
    out.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig(
        epochs=args.epochs,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        nesterov=args.nesterov,
        warmup=args.warmup,
        decreasing_lr=args.decreasing_lr,
        aug_pad=aug_pad,
        seed=seed,
        per_class_acc=args.per_class_acc,
    )

    def log(row):
        if args.tensorboard:
            run.log(step=row["epoch"], code=code, seed=seed, **{k: v for k, v in row.items() if k != "epoch"})

    res = train(
        model,
        train_data,
        test_data,
        cfg,
        out_dir=out,
        resume=args.resume,
        model_args={**margs, "arch": args.arch, "code": code, "dataset": args.dataset},
        progress=log,
    )
    if res.history:
        _net_plot(res.history, out / "net_train.png", f"{code} seed {seed} (lr {lr:.4g})")
    m = path_sum(code, fam, depth_offset=depth_offset)
    dag = parse_code(code, fam)
    from hp_scaling.dags import path_moments

    return {
        "code": code,
        "arch_str": _arch_str(code, fam),
        "n_paths": path_moments(dag, 1).n_paths,
        "S": m,
        "multiplier": mult,
        "lr_used": lr,
        "status": res.status,
        "final_test_acc": res.final_test_acc,
        "best_test_acc": res.best_test_acc,
        "final_train_loss": res.final_train_loss,
        "epochs_done": res.epochs_done,
        "wall_s": round(res.wall_s, 3),
        "seed": seed,
    }


def _write_results(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=RESULT_FIELDS)
        w.writeheader()
        w.writerows(rows)


__all__ = ["build_parser", "main", "run_name", "InvalidCodeError"]

if __name__ == "__main__":
    run_main(main)
