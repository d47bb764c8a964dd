"""Max-LR grid search per architecture (step 1 of the method; the "ground truth" of Figs. 2, 3, 5; spec 4).

Example (R1, spec 6):
    python hp_scaling/lr_sweep.py --arch mlp --depth_chain 0 2 4 6 8 --chain_nodes 9 --width 32 --seeds 0 1 \
        --lr_min 0.015625 --lr_max 2 --steps_per_octave 2
Under ``mpirun -n R`` the (architecture, seed) items are dealt round-robin; rank 0 writes the outputs.
"""

from __future__ import annotations

import csv
import json
import math
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from common.cli import ArgumentParser, positive_float, positive_int, run_main
from common.runs import Run, progress
from common.runtime import resolve_device
from hp_scaling.dags import parse_code
from hp_scaling.loaders import load_data
from hp_scaling.models import build_model
from hp_scaling.scaling import INITS, NoPathError, path_sum
from hp_scaling.stacked import STACK_MODES, train_lrs
from hp_scaling.sweep import (
    CRITERIA,
    Item,
    chain_codes,
    correlations,
    family_base,
    found_table,
    item_seed,
    lr_grid,
    random_topologies,
    read_partial,
)


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description="Grid-search the max LR of DAG architectures (Chen et al., ICLR 2024, step 1)")
    g = p.add_argument_group("architectures")
    g.add_argument("--arch", choices=["mlp", "cnn", "tinynetwork"], default="mlp", help="model family")
    sel = g.add_mutually_exclusive_group()
    sel.add_argument("--dags", nargs="+", metavar="CODE", help="DAG codes to sweep")
    sel.add_argument("--depth_chain", nargs="+", type=int, metavar="K", help="depth chains with K Linear edges")
    sel.add_argument("--random_topologies", type=positive_int, metavar="M", help="R2 selection (spec 6), at most M")
    g.add_argument("--chain_nodes", type=positive_int, default=None, metavar="N", help="chain nodes (max K + 1)")
    g.add_argument("--per_bin", type=positive_int, default=4, metavar="INT", help="codes per multiplier bin")
    g.add_argument("--topology_seed", type=int, default=0, metavar="INT", help="permutation seed of the walk")
    g.add_argument("--linear_only", action="store_true", help="random topologies with digits 0/2 only")
    g.add_argument("--kernel_sizes", nargs="+", type=positive_int, default=[3], metavar="Q", help="cnn kernels")
    d = p.add_argument_group("data and training")
    d.add_argument("--dataset", default="digits", metavar="NAME", help="common.data image set")
    d.add_argument("--split", choices=["train", "all"], default="all", help="all = train plus test")
    d.add_argument("--data", default="data", metavar="DIR", help="dataset root")
    d.add_argument("--width", type=positive_int, default=64, metavar="INT", help="hidden width / channels")
    d.add_argument("--batch_size", type=positive_int, default=16, metavar="INT", help="minibatch size")
    d.add_argument("--epochs", type=positive_int, default=1, metavar="INT", help="epochs per LR")
    d.add_argument("--steps", type=positive_int, default=None, metavar="INT", help="cap on steps per LR")
    d.add_argument("--momentum", type=float, default=0.0, metavar="MU", help="SGD momentum")
    d.add_argument("--weight_decay", type=float, default=0.0, metavar="WD", help="SGD weight decay")
    m = p.add_argument_group("model")
    m.add_argument("--init", choices=INITS, default="paper", help="init convention (spec 3.2)")
    m.add_argument("--block", choices=["auto", "pre", "post"], default="auto", help="block order")
    m.add_argument("--act", choices=["relu", "gelu"], default="relu", help="activation")
    m.add_argument("--bn", action="store_true", help="BatchNorm after each Linear/Conv edge")
    m.add_argument("--depth_offset", default="auto", metavar="auto|INT", help="L_p = k_p + offset (eq. 8)")
    m.add_argument("--all_skip", choices=["count", "reference"], default="count", help="all-skip DAG rule")
    m.add_argument("--kernel_base", type=positive_int, default=3, metavar="Q", help="kernel of the base net")
    s = p.add_argument_group("grid and selection")
    s.add_argument("--lr_min", type=float, default=0.00390625, metavar="LR", help="smallest LR")
    s.add_argument("--lr_max", type=float, default=4.0, metavar="LR", help="largest LR")
    s.add_argument("--steps_per_octave", type=positive_int, default=4, metavar="INT", help="grid density")
    s.add_argument("--lrs", nargs="+", type=positive_float, default=None, metavar="LR", help="explicit grid")
    s.add_argument("--criterion", choices=CRITERIA, default="mean_loss", help="found-LR rule")
    s.add_argument("--stack", choices=STACK_MODES, default="auto", help="stacked training mode")
    s.add_argument("--max_stack", type=positive_int, default=None, metavar="G", help="LRs per stack (memory)")
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int, default=0, metavar="INT", help="first seed")
    r.add_argument("--repeat", type=positive_int, default=3, metavar="INT", help="seeds seed..seed+repeat-1")
    r.add_argument("--seeds", nargs="+", type=int, default=None, metavar="S", help="explicit seeds")
    r.add_argument("--device", default="auto", metavar="DEV", help="auto | cpu | cuda | cuda:N")
    r.add_argument("--threads", type=positive_int, default=1, metavar="INT", help="torch threads per rank")
    r.add_argument("--out", default="results/hp_scaling/lr_sweep", metavar="DIR", help="output root")
    r.add_argument("--name", default=None, metavar="NAME", help="run name (default: from the settings)")
    r.add_argument("--resume", action="store_true", help="skip items completed in partial/rank*.jsonl")
    r.add_argument("--no_progress", action="store_true", help="hide progress bars")
    return p


def _codes(args) -> tuple[list[str], str]:
    fam = "cnn" if args.arch == "cnn" else "mlp"
    if args.arch == "tinynetwork":
        raise ValueError("lr_sweep supports --arch mlp|cnn (NB201 cells: use nb201_compare.py)")
    if args.depth_chain:
        if any(k < 0 for k in args.depth_chain):
            raise ValueError(f"--depth_chain values must be >= 0, got {args.depth_chain}")
        codes = chain_codes(args.depth_chain, args.chain_nodes)
    elif args.random_topologies:
        codes = random_topologies(args.random_topologies, args.per_bin, args.topology_seed, args.linear_only)
    else:
        codes = args.dags or random_topologies(None, args.per_bin, args.topology_seed, args.linear_only)
    ok = []
    for c in codes:
        parse_code(c, fam)
        try:
            path_sum(c, fam)
            ok.append(c)
        except NoPathError:
            print(f"skipping {c}: no input-to-output path (status=no_path)")
    if not ok:
        raise ValueError("no requested DAG has an input-to-output path")
    return list(dict.fromkeys(ok)), family_base(ok, fam)


def _default_name(args) -> str:
    sel = (
        f"chain{'-'.join(map(str, args.depth_chain))}"
        if args.depth_chain
        else (f"rand{args.random_topologies}" if args.random_topologies else "dags")
    )
    return f"{args.arch}-{args.dataset}-{sel}-W{args.width}-{args.init}-BS{args.batch_size}-E{args.epochs}"


def _write_csv(path: Path, rows: list[dict]) -> None:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})


def _plots(run, table, rows, lrs, corr) -> None:
    from hp_scaling.plots import plot_loss_vs_lr, plot_pred_vs_found

    run.save_figure(plot_pred_vs_found(table, corr), "pred_vs_found.png")
    run.save_figure(plot_loss_vs_lr(rows, lrs), "loss_vs_lr.png")


def main(argv=None):
    args = build_parser().parse_args(argv)
    t0 = time.time()
    for name, v in (("--momentum", args.momentum), ("--weight_decay", args.weight_decay)):
        if v < 0:
            raise ValueError(f"{name} must be >= 0, got {v}")
    if args.depth_offset != "auto" and not args.depth_offset.isdigit():
        raise ValueError(f"--depth_offset must be auto or a positive integer, got {args.depth_offset!r}")
    depth_offset = args.depth_offset if args.depth_offset == "auto" else int(args.depth_offset)
    lrs = sorted(args.lrs) if args.lrs else lr_grid(args.lr_min, args.lr_max, args.steps_per_octave)
    seeds = args.seeds if args.seeds is not None else list(range(args.seed, args.seed + args.repeat))
    codes, base = _codes(args)
    qs = args.kernel_sizes if args.arch == "cnn" else [1]
    if args.arch == "cnn" and args.kernel_base not in qs:
        qs = [args.kernel_base, *qs]
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    np.finfo(np.float32), np.finfo(np.float64)  # cache before flushing denormals (numpy warns otherwise)
    torch.set_flush_denormal(True)
    data = load_data(args.dataset, args.split, args.data).to(device)

    from common.distributed import mpi_comm, mpi_rank, mpi_size

    rank, size = mpi_rank(), mpi_size()
    comm = mpi_comm() if size > 1 else None
    name = args.name or _default_name(args)
    out_dir = Path(args.out) / name
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        Run(out_dir).write_json("config.json", {**vars(args), "lrs": lrs, "codes": codes, "base": base})
        if not args.resume:
            for f in (out_dir / "partial").glob("rank*.jsonl"):
                f.unlink()
    if comm is not None:
        comm.Barrier()
    (out_dir / "partial").mkdir(parents=True, exist_ok=True)
    done = read_partial(out_dir / "partial") if args.resume else {}
    all_codes = codes + ([base] if base not in codes else [])
    items = [Item(c, q, s) for c in all_codes for q in qs for s in seeds]
    mine = [it for i, it in enumerate(items) if i % size == rank and it.key not in done]
    error = ""
    try:
        part = out_dir / "partial" / f"rank{rank}.jsonl"
        for it in progress(mine, desc=f"lr_sweep rank {rank}", disable=args.no_progress):
            torch.manual_seed(item_seed(it.code, it.q, it.seed))
            model = build_model(
                args.arch,
                it.code,
                in_shape=data.in_shape,
                num_classes=data.num_classes,
                width=args.width,
                init=args.init,
                block=args.block,
                act=args.act,
                bn=args.bn,
                kernel_size=it.q,
            ).to(device)
            res = train_lrs(
                model,
                data,
                lrs,
                batch_size=args.batch_size,
                epochs=args.epochs,
                steps=args.steps,
                seed=it.seed,
                momentum=args.momentum,
                weight_decay=args.weight_decay,
                stack=args.stack,
                max_stack=args.max_stack,
            )
            row = {
                "key": it.key,
                "code": it.code,
                "q": it.q,
                "seed": it.seed,
                "mean_loss": res.mean_loss.tolist(),
                "final_loss": res.final_loss.tolist(),
                "diverged_step": list(res.diverged_step),
                "steps": res.steps,
            }
            with open(part, "a") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
    except Exception as exc:  # reported by rank 0; partial files are kept
        error = f"rank {rank}: {type(exc).__name__}: {exc}"
        if size == 1:
            raise
        traceback.print_exc()
    errors = comm.gather(error, root=0) if comm is not None else [error]
    if rank != 0:
        return 0
    failed = [e for e in errors if e]
    if failed:
        raise RuntimeError("; ".join(failed) + f" (partial results kept in {out_dir / 'partial'})")
    return _finish(args, out_dir, codes, base, qs, seeds, lrs, data.num_classes, depth_offset, size, t0)


def _finish(args, out_dir, codes, base, qs, seeds, lrs, num_classes, depth_offset, size, t0):
    run = Run(out_dir)
    run.started = t0
    rows = read_partial(out_dir / "partial")
    all_codes = codes + ([base] if base not in codes else [])
    loss_rows = []
    for c in all_codes:
        for q in qs:
            for s in seeds:
                r = rows[Item(c, q, s).key]
                for lr, ml, fl, dv in zip(lrs, r["mean_loss"], r["final_loss"], r["diverged_step"]):
                    loss_rows.append(
                        {"code": c, "q": q, "seed": s, "lr": lr, "mean_loss": ml, "final_loss": fl, "diverged_step": dv}
                    )
    table = found_table(
        rows,
        all_codes,
        qs,
        seeds,
        args.arch,
        lrs,
        criterion=args.criterion,
        num_classes=num_classes,
        depth_offset=depth_offset,
        all_skip=args.all_skip,
        kernel_base=args.kernel_base,
        base=base,
    )
    _write_csv(out_dir / "losses.csv", loss_rows)
    _write_csv(out_dir / "found.csv", table)
    for r in table:
        if r["at_edge"] != "-":
            print(f"warning: found LR of {r['code']} (q={r['q']}) at the {r['at_edge']} edge of the grid")
    exclude = () if base in codes else (base,)
    corr = correlations(table, exclude=exclude)
    listed = [r for r in table if r["code"] in codes]
    first, last = listed[0]["found_lr"], listed[-1]["found_lr"]
    base_row = next(r for r in table if r["code"] == base)
    summary = {
        **corr,
        "chain_ratio_first_last": first / last if last and math.isfinite(last) else math.nan,
        "lr_base": base_row["found_lr"],
        "found_lr": {f"{r['code']}|{r['q']}": r["found_lr"] for r in table},
        "n_items": len(rows),
        "n_lrs": len(lrs),
        "n_ranks": size,
        "wall_s": round(time.time() - t0, 3),
    }
    _plots(run, table, loss_rows, lrs, corr)
    print(
        f"r(offset 3) = {corr['pearson_off3']:.3f}  r(offset 1) = {corr['pearson_off1']:.3f}  "
        f"lr_base = {summary['lr_base']:.4g}  first/last = {summary['chain_ratio_first_last']:.3g}"
    )
    run.finish(summary)
    return 0


if __name__ == "__main__":
    run_main(main)
