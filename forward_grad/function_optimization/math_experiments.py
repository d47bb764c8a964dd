"""Closed-form function optimization with bp, fg-mean and frog (paper sec. 4.2/4.3; DESIGN.md §4, 6 E2/E3).

Writes all.csv (one row per run), history.csv (f every --history_every steps), summary.csv (mean over seeds) and
final_vs_n.png into results/forward_grad/math_experiments/<name>/; --resume skips finished runs.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from common.cli import ArgumentParser, UsageError, add_run_args, announce_resume, nonneg_int, positive_int, run_main
from common.runs import open_run, progress, write_csv
from common.runtime import set_threads
from forward_grad.function_optimization.experiments import STANDARD_APPROACHES, STANDARD_N
from forward_grad.function_optimization.optimize import MATH_BACKENDS


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="math_experiments.py", description=__doc__)
    g = p.add_argument_group("grid")
    g.add_argument("--experiment", default="standard", choices=["standard", "custom_tangents"],
                   help="standard grid (sec. 4.2) or custom tangents: ST n=64, K 16/64, angles (sec. 4.3)")  # fmt: skip
    g.add_argument("--functions", nargs="+", default=["sphere", "rosenbrock", "styblinski-tang"], metavar="FN")
    g.add_argument("--n", nargs="+", type=positive_int, default=list(STANDARD_N), metavar="N", help="dimensions")
    g.add_argument("--approaches", nargs="+", default=list(STANDARD_APPROACHES), metavar="A",
                   help="bp, fg-mean:K, frog:K or fg:K:<aggregation>")  # fmt: skip
    g.add_argument("--seeds", nargs="+", type=nonneg_int, default=[0, 1, 2, 3, 4], metavar="S")
    g.add_argument("--tangent_sampler", default="normal", metavar="NAME", help="sampler of DESIGN.md §3.1")
    g.add_argument("--angles", nargs="+", type=float, default=[15, 30, 45, 60, 75, 90], metavar="DEG",
                   help="custom_tangents: angles theta in degrees")  # fmt: skip
    g = p.add_argument_group("optimization")
    g.add_argument("--lr_table", default=None, metavar="CSV", help="LR table (default forward_grad/lrs/math.csv)")
    g.add_argument("--lr", default=None, metavar="FLOAT|sphere_optimal",
                   help="one LR for every run, or the sphere's closed-form optimum (DESIGN.md §3.2)")  # fmt: skip
    g.add_argument("--max_steps", type=positive_int, default=None, metavar="INT", help="default: per function")
    g.add_argument("--early_stopping_patience", type=nonneg_int, default=50, metavar="INT", help="steps")
    g.add_argument("--dtype", default=None, choices=["float32", "float64"],
                   help="default float32 (custom_tangents: float64)")  # fmt: skip
    g.add_argument("--jvp_backend", default="analytic", choices=list(MATH_BACKENDS),
                   help="analytic: d = V grad f, closed-form gradient; vmap/loop: torch.func forward mode")  # fmt: skip
    g.add_argument("--jobs", type=positive_int, default=1, metavar="INT", help="worker processes")
    g.add_argument("--history_every", type=nonneg_int, default=10, metavar="INT", help="0: no history")
    g.add_argument("--resume", action="store_true", help="skip runs already in all.csv (needs --name)")
    add_run_args(p, devices=("cpu",), tensorboard=False)  # CPU runs; all.csv/history.csv, no step series
    return p


def _read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _append(path: Path, fields, rows) -> None:
    write_csv(path, rows, fields, append=True)


def _job(payload):
    from forward_grad.function_optimization.experiments import run_cell

    set_threads(1)
    cell, lr, kw = payload
    return cell, run_cell(cell, lr, **kw)


def _plot(run, summary) -> None:
    from common.plotting import new_figure, use_style

    use_style()
    functions = sorted({r["function"] for r in summary})
    fig, axes = new_figure("final f - f* vs n", "n (dimension)", "mean final f - f*", ncols=max(1, len(functions)))
    axes = axes if hasattr(axes, "__len__") else [axes]
    for ax, fn in zip(axes, functions):
        for ap in sorted({r["approach"] for r in summary if r["function"] == fn}):
            pts = sorted((r["n"], max(r["mean_final_minus_fstar"], 1e-30)) for r in summary
                         if r["function"] == fn and r["approach"] == ap)  # fmt: skip
            ax.plot(*zip(*pts), marker="o", label=ap)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(fn)
    axes[0].legend(fontsize=7)
    run.save_figure(fig, "final_vs_n")


def main(argv: Sequence[str] | None = None) -> int:
    from forward_grad.function_optimization.experiments import (
        ALL_FIELDS,
        custom_tangent_cells,
        resolve_lr,
        standard_cells,
        summarize,
    )
    from forward_grad.function_optimization.functions import get_function
    from forward_grad.lr_search.get_best_lr import get_math_lr

    args = build_parser().parse_args(argv)
    if args.resume and not args.name:
        raise UsageError("--resume needs --name (the run directory to continue)")
    for fn in args.functions:
        get_function(fn)
    if args.lr not in (None, "sphere_optimal"):
        try:
            if not float(args.lr) > 0:
                raise ValueError
        except ValueError:
            raise UsageError(f"--lr must be a positive number or sphere_optimal, got {args.lr!r}") from None
    set_threads(1 if args.jobs > 1 else None)
    if args.experiment == "custom_tangents":
        cells = custom_tangent_cells(args.seeds, angles=[int(a) if a == int(a) else a for a in args.angles])
        dtype = args.dtype or "float64"
    else:
        cells = standard_cells(args.functions, args.n, args.approaches, args.seeds, args.tangent_sampler)
        dtype = args.dtype or "float32"

    def lookup(fn, n, grad, k, sampler):
        return get_math_lr(fn, n, grad, k, sampler, table=args.lr_table)

    plan = [(c, resolve_lr(c, args.lr, lookup)) for c in cells]  # fails early on a missing table row
    run = open_run("forward_grad", "math_experiments", vars(args), name=args.name, root=args.out)
    all_csv, hist_csv = run.path / "all.csv", run.path / "history.csv"
    done = {(r["function"], r["n"], r["approach"], r["sampler"], r["seed"]) for r in _read(all_csv)}
    todo = [(c, lr) for c, lr in plan if c.key not in done]
    if args.resume and done:
        announce_resume(all_csv, f"{len(done)} finished runs")
    kw = dict(max_steps=args.max_steps, patience=args.early_stopping_patience, dtype=dtype,
              jvp_backend=args.jvp_backend, history=args.history_every)  # fmt: skip
    payloads = [(c, lr, kw) for c, lr in todo]
    bar = progress(total=len(payloads), desc="math runs", disable=args.no_progress)
    results = map(_job, payloads) if args.jobs == 1 else ProcessPoolExecutor(args.jobs).map(_job, payloads)
    for cell, (row, history) in results:
        _append(all_csv, ALL_FIELDS, [row])
        hist = [{"function": cell.function, "n": cell.n, "approach": cell.approach, "sampler": cell.sampler,
                 "seed": cell.seed, "step": i * args.history_every, "f": f} for i, f in enumerate(history)]  # fmt: skip
        if hist:
            _append(hist_csv, list(hist[0]), hist)
        bar.update(1)
    bar.close()
    rows = _read(all_csv)
    summary = summarize(rows)
    if summary:
        run.write_csv("summary.csv", summary, list(summary[0]))
        _plot(run, summary)
    run.finish({"runs": len(rows), "runs_this_call": len(todo), "cells": summary})
    return 0


if __name__ == "__main__":
    run_main(main)
