"""Max-LR grid search per architecture (step 1 of the method; the "ground truth" of Figs. 2, 3, 5; DESIGN.md §6).

Example (R1, DESIGN.md §5):
    python hp_scaling/lr_sweep.py --arch mlp --depth_chain 0 2 4 6 8 --chain_nodes 9 --width 32 --seeds 0 1 \
        --lr_min 0.015625 --lr_max 2 --steps_per_octave 2
Under ``mpirun -n R`` the (architecture, seed) items are dealt round-robin; rank 0 writes the outputs.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from dataclasses import dataclass

import numpy as np
import torch

from common.cli import (
    ArgumentParser,
    UsageError,
    add_run_args,
    announce_resume,
    check_range,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
    run_main,
)
from common.runs import open_run, progress
from common.runtime import resolve_device
from hp_scaling.cli_args import (
    add_data_args,
    add_model_args,
    add_seed_args,
    checked_codes,
    seeds_of,
    skipped_line,
    split_by_path,
)
from hp_scaling.loaders import load_data
from hp_scaling.maxlr import (
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
from hp_scaling.models import build_model
from hp_scaling.stacked import STACK_MODES, train_lrs
from hp_scaling.tables import write_table

PAPER, EXPERIMENT = "hp_scaling", "lr_sweep"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description="Grid-search the max LR of DAG architectures (Chen et al., ICLR 2024, step 1)")
    g = p.add_argument_group("architectures")
    g.add_argument("--arch", choices=["mlp", "cnn"], default="mlp", help="model family (NB201: nb201_compare.py)")
    sel = g.add_mutually_exclusive_group()
    sel.add_argument("--dags", nargs="+", metavar="CODE", help="DAG codes to sweep")
    sel.add_argument("--depth_chain", nargs="+", type=nonneg_int, metavar="K", help="chains with K Linear edges")
    sel.add_argument(
        "--random_topologies", type=positive_int, metavar="M", help="R2 selection, at most M (DESIGN.md §5.2)"
    )
    g.add_argument("--chain_nodes", type=positive_int, default=None, metavar="N", help="chain nodes (max K + 1)")
    g.add_argument("--per_bin", type=positive_int, default=4, metavar="INT", help="codes per multiplier bin")
    g.add_argument("--topology_seed", type=int, default=0, metavar="INT", help="permutation seed of the walk")
    g.add_argument("--linear_only", action="store_true", help="random topologies with digits 0/2 only")
    g.add_argument("--kernel_sizes", nargs="+", type=positive_int, default=[3], metavar="Q", help="cnn kernels")
    d = p.add_argument_group("data and training")
    add_data_args(d, "digits")
    d.add_argument("--split", choices=["train", "all"], default="all", help="all = train plus test")
    d.add_argument("--width", type=positive_int, default=64, metavar="INT", help="hidden width / channels")
    d.add_argument("--batch_size", type=positive_int, default=16, metavar="INT", help="minibatch size")
    d.add_argument("--epochs", type=positive_int, default=1, metavar="INT", help="epochs per LR")
    d.add_argument("--steps", type=positive_int, default=None, metavar="INT", help="cap on steps per LR")
    d.add_argument("--momentum", type=nonneg_float, default=0.0, metavar="MU", help="SGD momentum")
    d.add_argument("--weight_decay", type=nonneg_float, default=0.0, metavar="WD", help="SGD weight decay")
    add_model_args(p.add_argument_group("model"))
    s = p.add_argument_group("grid and selection")
    s.add_argument("--lr_min", type=positive_float, default=0.00390625, metavar="LR", help="smallest LR")
    s.add_argument("--lr_max", type=positive_float, default=4.0, metavar="LR", help="largest LR")
    s.add_argument("--steps_per_octave", type=positive_int, default=4, metavar="INT", help="grid density")
    s.add_argument("--lrs", nargs="+", type=positive_float, default=None, metavar="LR", help="explicit grid")
    s.add_argument("--criterion", choices=CRITERIA, default="mean_loss", help="found-LR rule")
    s.add_argument("--stack", choices=STACK_MODES, default="auto", help="stacked training mode")
    s.add_argument("--max_stack", type=positive_int, default=None, metavar="G", help="LRs per stack (memory)")
    add_run_args(p, tensorboard=False)
    r = p.add_argument_group("seeds and resume")
    add_seed_args(r, repeat=3)
    r.add_argument("--seeds", nargs="+", type=nonneg_int, default=None, metavar="S", help="explicit seeds")
    r.add_argument("--threads", type=positive_int, default=1, metavar="INT", help="torch threads per rank")
    r.add_argument("--resume", action="store_true", help="skip items completed in partial/rank*.jsonl")
    return p


def _codes(args) -> tuple[list[str], str]:
    fam = args.arch
    if args.depth_chain:
        if args.chain_nodes is not None and max(args.depth_chain) > args.chain_nodes - 1:
            need = max(args.depth_chain) + 1
            raise UsageError(f"--depth_chain {need - 1} needs --chain_nodes >= {need}, got {args.chain_nodes}")
        codes = chain_codes(args.depth_chain, args.chain_nodes)
    elif args.random_topologies:
        codes = random_topologies(args.random_topologies, args.per_bin, args.topology_seed, args.linear_only)
    else:
        codes = args.dags or random_topologies(None, args.per_bin, args.topology_seed, args.linear_only)
    ok, no_path = split_by_path(checked_codes(codes, fam), fam)
    if no_path:
        print(skipped_line(no_path))
    return list(dict.fromkeys(ok)), family_base(ok, fam)


def _default_name(args) -> str:
    sel = (
        f"chain{'-'.join(map(str, args.depth_chain))}"
        if args.depth_chain
        else (f"rand{args.random_topologies}" if args.random_topologies else "dags")
    )
    return f"{args.arch}-{args.dataset}-{sel}-W{args.width}-{args.init}-BS{args.batch_size}-E{args.epochs}"


def _plots(run, table, rows, lrs, corr) -> None:
    from hp_scaling.plots import plot_loss_vs_lr, plot_pred_vs_found

    run.save_figure(plot_pred_vs_found(table, corr), "pred_vs_found.png")
    run.save_figure(plot_loss_vs_lr(rows, lrs), "loss_vs_lr.png")


@dataclass
class Plan:
    """What one invocation sweeps: codes (plus the family's base code), kernels, seeds and the LR grid."""

    codes: list[str]
    base: str
    qs: list[int]
    seeds: list[int]
    lrs: list[float]

    @property
    def all_codes(self) -> list[str]:
        return self.codes + ([self.base] if self.base not in self.codes else [])

    def items(self) -> list[Item]:
        return [Item(c, q, s) for c in self.all_codes for q in self.qs for s in self.seeds]


def make_plan(args) -> Plan:
    """Validate the selection and the grid (bad input: UsageError) and list the items."""
    if args.lrs:
        lrs = sorted(args.lrs)
    else:
        check_range(args.lr_min, args.lr_max, "--lr_min/--lr_max", strict=True)
        lrs = lr_grid(args.lr_min, args.lr_max, args.steps_per_octave)
    codes, base = _codes(args)
    qs = args.kernel_sizes if args.arch == "cnn" else [1]
    if args.arch == "cnn" and args.kernel_base not in qs:
        qs = [args.kernel_base, *qs]
    return Plan(codes, base, qs, seeds_of(args), lrs)


def sweep_item(args, it: Item, data, device) -> dict:
    """Train every LR of the grid for one (code, q, seed) item; the row stored in partial/rank<r>.jsonl."""
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
        args.plan_lrs,
        batch_size=args.batch_size,
        epochs=args.epochs,
        steps=args.steps,
        seed=it.seed,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        stack=args.stack,
        max_stack=args.max_stack,
    )
    return {
        "key": it.key,
        "code": it.code,
        "q": it.q,
        "seed": it.seed,
        "mean_loss": res.mean_loss.tolist(),
        "final_loss": res.final_loss.tolist(),
        "diverged_step": list(res.diverged_step),
        "steps": res.steps,
    }


def main(argv=None):
    args = build_parser().parse_args(argv)
    t0 = time.time()
    plan = make_plan(args)
    args.plan_lrs = plan.lrs
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    np.finfo(np.float32), np.finfo(np.float64)  # cache before flushing denormals (numpy warns otherwise)
    torch.set_flush_denormal(True)
    data = load_data(args.dataset, args.split, args.data).to(device)

    from common.distributed import mpi_comm, mpi_rank, mpi_size

    rank, size = mpi_rank(), mpi_size()
    comm = mpi_comm() if size > 1 else None
    config = {k: v for k, v in vars(args).items() if k != "plan_lrs"}
    config.update(lrs=plan.lrs, codes=plan.codes, base=plan.base)
    run = open_run(PAPER, EXPERIMENT, config, name=args.name or _default_name(args), root=args.out)
    partial = run.path / "partial"
    if rank == 0:
        partial.mkdir(parents=True, exist_ok=True)
        if not args.resume:
            for f in partial.glob("rank*.jsonl"):
                f.unlink()
    if comm is not None:
        comm.Barrier()
    partial.mkdir(parents=True, exist_ok=True)
    done = read_partial(partial) if args.resume else {}
    if args.resume and done and rank == 0:
        announce_resume(partial, f"{len(done)} of {len(plan.items())} items")
    mine = [it for i, it in enumerate(plan.items()) if i % size == rank and it.key not in done]
    error = ""
    try:
        with open(partial / f"rank{rank}.jsonl", "a") as handle:
            for it in progress(mine, desc=f"lr_sweep rank {rank}", disable=args.no_progress):
                handle.write(json.dumps(sweep_item(args, it, data, device)) + "\n")
                handle.flush()
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
        raise RuntimeError("; ".join(failed) + f" (partial results kept in {partial})")
    run.started = t0
    return _finish(args, run, plan, data.num_classes, size)


def _finish(args, run, plan: Plan, num_classes: int, size: int) -> int:
    """Gather the partial rows into losses.csv, found.csv, summary.json and the two figures."""
    rows = read_partial(run.path / "partial")
    loss_rows = []
    for it in plan.items():
        r = rows[it.key]
        for lr, ml, fl, dv in zip(plan.lrs, r["mean_loss"], r["final_loss"], r["diverged_step"]):
            loss_rows.append(
                {"code": it.code, "q": it.q, "seed": it.seed, "lr": lr, "mean_loss": ml, "final_loss": fl}
                | {"diverged_step": dv}
            )
    table = found_table(
        rows,
        plan.all_codes,
        plan.qs,
        plan.seeds,
        args.arch,
        plan.lrs,
        criterion=args.criterion,
        num_classes=num_classes,
        depth_offset=args.depth_offset,
        all_skip=args.all_skip,
        kernel_base=args.kernel_base,
        base=plan.base,
    )
    write_table(run.path / "losses.csv", loss_rows)
    write_table(run.path / "found.csv", table)
    for r in table:
        if r["at_edge"] != "-":
            print(f"warning: found LR of {r['code']} (q={r['q']}) at the {r['at_edge']} edge of the grid")
    corr = correlations(table, exclude=() if plan.base in plan.codes else (plan.base,))
    listed = [r for r in table if r["code"] in plan.codes]
    first, last = listed[0]["found_lr"], listed[-1]["found_lr"]
    summary = {
        **corr,
        "chain_ratio_first_last": first / last if last and math.isfinite(last) else math.nan,
        "lr_base": next(r for r in table if r["code"] == plan.base)["found_lr"],
        "found_lr": {f"{r['code']}|{r['q']}": r["found_lr"] for r in table},
        "n_items": len(rows),
        "n_lrs": len(plan.lrs),
        "n_ranks": size,
        "wall_s": round(time.time() - run.started, 3),
    }
    _plots(run, table, loss_rows, plan.lrs, corr)
    print(
        f"r(offset 3) = {corr['pearson_off3']:.3f}  r(offset 1) = {corr['pearson_off1']:.3f}  "
        f"lr_base = {summary['lr_base']:.4g}  first/last = {summary['chain_ratio_first_last']:.3g}"
    )
    run.finish(summary)
    return 0


if __name__ == "__main__":
    run_main(main)
