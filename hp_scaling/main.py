"""Train DAG MLP/CNN or NAS-Bench-201 cells with the architecture-aware init (eq. 4) and LR (eq. 8/9).

The seed's command (DESIGN.md §2), from the repo root:
    python hp_scaling/main.py --data data --gpu 0 --batch_size 256 --aug --momentum 0.9 --weight_decay 0.0005 \
      --nesterov --decreasing_lr --width 16 --arch tinynetwork --dataset cifar10 --epochs 200 --lr 0.46 --lr_autoscale
Each (dag, seed) is one run: <run dir>/<code>/seed-<s>/ holds metrics.csv, steps.csv, checkpoint.pt, net_train.png;
results.csv has one row per run; summary.json the headline numbers. The run folder is
<out>/hp_scaling/main/[<exp_name>/]<name>, or <save_dir>/[<exp_name>/]<name> when the seed's --save_dir is given.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from common.checkpoint import load_checkpoint
from common.cli import (
    ArgumentParser,
    MissingInputError,
    UsageError,
    add_run_args,
    announce_resume,
    positive_float,
    positive_int,
    run_main,
)
from common.runs import Run, open_run, progress
from common.runtime import resolve_device
from hp_scaling.cli_args import (
    add_data_args,
    add_model_args,
    add_seed_args,
    add_sgd_args,
    check_sgd,
    checked_codes,
    gpu_arg,
    seeds_of,
    sgd_config,
    skipped_line,
    split_by_path,
)
from hp_scaling.dags import InvalidCodeError, all_codes, code_to_arch_str, parse_code, path_moments, random_order
from hp_scaling.loaders import AUG_PAD, ArrayData, load_data
from hp_scaling.models import build_model
from hp_scaling.scaling import lr_multiplier, path_sum
from hp_scaling.tables import write_table
from hp_scaling.train import evaluate, train

PAPER, EXPERIMENT = "hp_scaling", "main"
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
    add_data_args(g, "cifar10")
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
    m.add_argument("--width", type=positive_int, default=None, metavar="INT", help="width (16 tinynetwork, else 64)")
    m.add_argument("--kernel_size", type=positive_int, default=3, metavar="Q", help="cnn kernel size")
    m.add_argument("--stride", type=positive_int, default=1, metavar="INT", help="cnn stem stride")
    add_model_args(m)
    o = p.add_argument_group("optimization")
    add_sgd_args(o, epochs=1, batch_size=128, momentum=0.0, weight_decay=0.0, toggles_on=False)
    o.add_argument("--lr", type=positive_float, default=0.46, metavar="LR", help="base LR (max LR of the shallow net)")
    o.add_argument("--lr_autoscale", action="store_true", help="scale --lr by eq. 8/9 for each DAG")
    o.add_argument("--warmup", type=float, default=0.0, metavar="EPOCHS", help="linear warmup per step (epochs)")
    o.add_argument("--per_class_acc", action="store_true", help="also log the mean per-class recall")
    add_run_args(p)
    r = p.add_argument_group("seed flags and resume")
    add_seed_args(r)
    r.add_argument("--gpu", type=gpu_arg, default=None, metavar="N", help="the seed's flag: --device cuda:N")
    r.add_argument("--resume", action="store_true", help="continue the run of the same name")
    r.add_argument("--checkpoint", default=None, metavar="PATH", help="checkpoint for --inference")
    r.add_argument("--inference", action="store_true", help="evaluate --checkpoint only")
    r.add_argument(
        "--save_dir", default=None, metavar="DIR", help="the seed's output folder (default: <out>/hp_scaling/main)"
    )
    r.add_argument("--exp_name", default="", metavar="NAME", help="the seed's experiment subfolder")
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
    """The codes to train: --dag/--dags, or the first --num_dags of the seeded order, or the whole family."""
    fam = family_of(args.arch)
    if args.dag or args.dags:
        return checked_codes(([args.dag] if args.dag else []) + (args.dags or []), fam)
    pool = all_codes(fam, None if fam == "nb201" else args.dag_nodes)
    order = random_order(len(pool), args.order_seed)
    return [pool[int(i)] for i in order[: args.num_dags]] if args.num_dags else pool


def validate(args) -> None:
    check_sgd(args)
    if args.inference and not args.checkpoint:
        raise UsageError("--inference needs --checkpoint PATH")
    if args.exp_name and ("/" in args.exp_name or args.exp_name in (".", "..")):
        raise UsageError(f"--exp_name {args.exp_name!r} must be a plain folder name")


def inference(args, device) -> int:
    ckpt = Path(args.checkpoint)
    if not ckpt.is_file():
        raise MissingInputError(f"--checkpoint: file not found: {ckpt}")
    state = load_checkpoint(ckpt)
    margs = state.get("model_args") or {}
    if not margs:
        raise UsageError(f"checkpoint {ckpt} has no model_args; it was not written by main.py")
    test = load_data(margs.get("dataset", args.dataset), "test", args.data).to(device)
    ma = {k: v for k, v in margs.items() if k not in ("dataset", "arch", "code")}
    model = build_model(margs["arch"], margs["code"], **ma).to(device)
    model.load_state_dict(state["model"])
    ev = evaluate(model, test)
    # the summary goes beside the checkpoint: <run>/<code>/seed-<s>/summary.json
    run = open_run("", "", name=ckpt.parent.name, root=ckpt.parent.parent)
    print(f"{margs['code']}: test_acc {ev['test_acc']:.4f}  test_loss {ev['test_loss']:.4f}")
    run.finish({"inference": True, "checkpoint": str(ckpt), **ev})
    return 0


def _net_plot(history, path: Path, title: str) -> None:
    from common.plotting import new_figure, save_figure

    fig, ax = new_figure(title, "epoch", "loss (nats) / accuracy")
    e = [h["epoch"] for h in history]
    ax.plot(e, [h["train_loss"] for h in history], marker="o", label="train loss")
    ax.plot(e, [h["test_acc"] for h in history], marker="s", label="test accuracy")
    ax.legend()
    save_figure(fig, path)


def _open(args, width: int, codes: list[str], device) -> Run:
    """The run folder: the seed's <save_dir>/<exp_name>/<name> or the contract's <out>/hp_scaling/main/..."""
    if args.save_dir is not None:
        root, paper, experiment = Path(args.save_dir), args.exp_name, ""
    else:
        root, paper, experiment = Path(args.out), PAPER, str(Path(EXPERIMENT) / args.exp_name)
    base = root / paper / experiment
    name = args.name or run_name(args, width)
    if (base / name).exists() and not args.resume:
        k = 2
        while (base / f"{name}-{k}").exists():
            k += 1
        name = f"{name}-{k}"
    config = {**vars(args), "width": width, "device": str(device), "codes": codes}
    return open_run(paper, experiment, config, name=name, root=root, tensorboard=args.tensorboard)


@dataclass
class Setup:
    """What every (dag, seed) run of one invocation shares."""

    args: object
    family: str
    width: int
    train_data: ArrayData
    test_data: ArrayData
    aug_pad: int
    device: torch.device
    run: Run


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    validate(args)
    device = resolve_device(args.gpu or args.device)
    if args.inference:
        return inference(args, device)
    fam = family_of(args.arch)
    codes = resolve_codes(args)
    runnable, no_path = split_by_path(codes, fam)
    # data first: a missing dataset is one line before anything else is printed
    train_data = load_data(args.dataset, "train", args.data).to(device)
    test_data = load_data(args.dataset, "test", args.data).to(device)
    if no_path:
        print(skipped_line(no_path))
    aug_pad = 0
    if args.aug:
        aug_pad = AUG_PAD.get(args.dataset, 0)
        if not aug_pad or len(train_data.in_shape) != 3:
            print(f"note: --aug ignored for {args.dataset}")
            aug_pad = 0
    width = args.width or (16 if args.arch == "tinynetwork" else 64)
    run = _open(args, width, codes, device)
    setup = Setup(args, fam, width, train_data, test_data, aug_pad, device, run)
    t0 = time.time()
    rows = [_no_path_row(c, fam, s) for c in no_path for s in seeds_of(args)]
    items = [(c, s) for c in runnable for s in seeds_of(args)]
    for code, seed in progress(items, desc="main", disable=args.no_progress):
        rows.append(_one_run(setup, code, seed))
        write_table(run.path / "results.csv", rows, RESULT_FIELDS)
    summary = _summary(rows, len(no_path), time.time() - t0)
    print(f"{summary['n_ok']}/{len(rows)} runs ok; mean final test acc {summary['mean_final_test_acc']:.4f}")
    run.finish(summary)
    return 0


def _summary(rows: list[dict], n_no_path: int, wall_s: float) -> dict:
    done = [r for r in rows if r["status"] == "ok"]
    accs = [r["final_test_acc"] for r in done]
    return {
        "n_runs": len(rows),
        "n_ok": len(done),
        "n_diverged": sum(r["status"] == "diverged" for r in rows),
        "n_no_path": n_no_path,
        "mean_final_test_acc": sum(accs) / len(accs) if accs else math.nan,
        "best_test_acc": max((r["best_test_acc"] for r in done), default=math.nan),
        "lr_used": {f"{r['code']}|{r['seed']}": r["lr_used"] for r in rows},
        "wall_s": round(wall_s, 3),
    }


def _arch_str(code: str, fam: str) -> str:
    return code_to_arch_str(code) if fam == "nb201" else ""


def _no_path_row(code, fam, seed) -> dict:
    row = dict.fromkeys(RESULT_FIELDS, "")
    row.update(code=code, arch_str=_arch_str(code, fam), n_paths=0, status="no_path", epochs_done=0, wall_s=0.0)
    row["seed"] = seed
    return row


def _one_run(setup: Setup, code: str, seed: int) -> dict:
    """Build, initialize and train one (dag, seed); return its results row."""
    args, fam = setup.args, setup.family
    depth_offset = args.depth_offset
    q = args.kernel_size if fam == "cnn" else None
    kw = {"q": q, "kernel_base": args.kernel_base, "all_skip": args.all_skip}
    mult = lr_multiplier(code, fam, depth_offset=depth_offset, **kw)
    lr = args.lr * mult if args.lr_autoscale else args.lr
    margs = dict(
        in_shape=setup.train_data.in_shape,
        num_classes=setup.train_data.num_classes,
        width=setup.width,
        init=args.init,
        block=args.block,
        act=args.act,
        bn=args.bn,
        kernel_size=args.kernel_size,
        stride=args.stride,
    )
    torch.manual_seed(seed)
    model = build_model(args.arch, code, **margs).to(setup.device)
    out = setup.run.path / code / f"seed-{seed}"
    out.mkdir(parents=True, exist_ok=True)
    cfg = sgd_config(
        args, lr=lr, seed=seed, aug_pad=setup.aug_pad, warmup=args.warmup, per_class_acc=args.per_class_acc
    )
    if args.resume and (out / "checkpoint.pt").exists():
        done = load_checkpoint(out / "checkpoint.pt").get("epoch", 0)
        announce_resume(out / "checkpoint.pt", f"epoch {done}")

    def log(row):
        setup.run.log(step=row["step"], code=code, seed=seed, **{k: v for k, v in row.items() if k != "step"})

    res = train(
        model,
        setup.train_data,
        setup.test_data,
        cfg,
        out_dir=out,
        resume=args.resume,
        model_args={**margs, "arch": args.arch, "code": code, "dataset": args.dataset},
        progress=log,
    )
    if res.history:
        _net_plot(res.history, out / "net_train.png", f"{code} seed {seed} (lr {lr:.4g})")
    return {
        "code": code,
        "arch_str": _arch_str(code, fam),
        "n_paths": path_moments(parse_code(code, fam), 1).n_paths,
        "S": path_sum(code, fam, depth_offset=depth_offset),
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


__all__ = ["build_parser", "main", "run_name", "InvalidCodeError"]

if __name__ == "__main__":
    run_main(main)
