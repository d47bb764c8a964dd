"""Approximation quality of multi-tangent forward gradients vs n and K (paper sec. 4.1; DESIGN.md §4, 6 E1).

For each cell (n, K, aggregation, normalize, sampler[, angle]) draw --samples tangent sets against a fixed true
gradient and record |g|, |g_hat|, |g_hat - g|, |g_hat|/|g|, g_hat.g, cos(g_hat, g). summary.csv holds mean, std,
ci95 = 1.96 std/sqrt(count) and the closed-form expectation (DESIGN.md §3.2) per metric; cos_vs_n.png plots them.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence

import torch

from common.cli import ArgumentParser, UsageError, add_run_args, announce_resume, positive_float, positive_int, run_main
from common.runs import open_run, progress, write_csv
from common.runtime import set_threads

FIELDS = ["n", "K", "aggregation", "normalize", "sampler", "angle", "metric", "mean", "std", "ci95", "count"]
FIELDS += ["expected"]


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise UsageError(f"expected true or false, got {text!r}")


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="approximation_quality.py", description=__doc__)
    g = p.add_argument_group("grid")
    g.add_argument("--mode", default="standard", choices=["standard", "angles"],
                   help="standard grid, or angles: n=64, K in 4/16/64, specific_angle tangents")  # fmt: skip
    g.add_argument("--n", nargs="+", type=positive_int, default=[2**i for i in range(15)], metavar="N")
    g.add_argument("--k", nargs="+", type=positive_int, default=[2**i for i in range(11)], metavar="K")
    g.add_argument("--samples", type=positive_int, default=1000, metavar="S", help="tangent draws per cell")
    g.add_argument("--aggregations", nargs="+", default=["mean", "frog", "sum"], metavar="AGG")
    g.add_argument("--normalize_tangents", nargs="+", type=_bool, default=[False, True], metavar="BOOL")
    g.add_argument("--tangent_sampler", default="normal", metavar="NAME")
    g.add_argument("--true_gradient", default="ones", choices=["ones", "ones_normalized", "random"])
    g.add_argument("--angles", nargs="+", type=float, default=[15, 30, 45, 60, 75, 90], metavar="DEG")
    g = p.add_argument_group("compute")
    g.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    g.add_argument("--chunk_mb", type=positive_float, default=256, metavar="MB", help="memory per S x K x n batch")
    g.add_argument("--threads", type=positive_int, default=None, metavar="INT", help="torch threads")
    g.add_argument("--save_samples", action="store_true", help="also write per-sample metrics (samples.pt)")
    g.add_argument("--resume", action="store_true", help="skip cells already in summary.csv (needs --name)")
    add_run_args(p, devices=("cpu",), tensorboard=False)  # CPU tensors; summary.csv per cell, no step series
    return p


def expected_value(metric: str, aggregation: str, n: int, k: int, sampler: str, normalize: bool):
    """Closed forms of DESIGN.md §3.2 for Gaussian tangents (frog: any sampler with full rank; mean: normal only)."""
    from forward_grad.forward_gradient.theory import (
        frog_expected_cos,
        frog_expected_cos2,
        mean_expected_cos_approx,
        mean_expected_sq_norm_ratio,
    )

    if aggregation in ("frog", "orthogonal_projection") and sampler == "normal":
        if metric in ("cos", "norm_ratio"):
            return frog_expected_cos(n, k)
        if metric == "sq_norm_ratio":
            return frog_expected_cos2(n, k)
    if aggregation == "mean" and sampler == "normal" and not normalize:
        if metric == "sq_norm_ratio":
            return mean_expected_sq_norm_ratio(n, k)
        if metric == "cos":
            return mean_expected_cos_approx(n, k)
    return ""


def cells(args):
    if args.mode == "angles":
        for k in (4, 16, 64):
            for theta in args.angles:
                for agg in args.aggregations:
                    yield 64, k, agg, False, f"specific_angle_{theta:g}", theta
        return
    for n in args.n:
        for k in args.k:
            for agg in args.aggregations:
                for norm in args.normalize_tangents:
                    yield n, k, agg, norm, args.tangent_sampler, ""


def main(argv: Sequence[str] | None = None) -> int:
    from forward_grad.forward_gradient.aggregation import canonical_aggregation
    from forward_grad.forward_gradient.approximation import approximation_samples, true_gradient
    from forward_grad.forward_gradient.tangents import parse_sampler

    args = build_parser().parse_args(argv)
    for agg in args.aggregations:
        canonical_aggregation(agg)
    parse_sampler(args.tangent_sampler)
    if args.mode == "angles":
        for theta in args.angles:
            parse_sampler(f"specific_angle_{theta:g}")
    if args.resume and not args.name:
        raise UsageError("--resume needs --name (the run directory to continue)")
    set_threads(args.threads)
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    run = open_run("forward_grad", "approximation_quality", vars(args), name=args.name, root=args.out)
    out = run.path / "summary.csv"
    done = set()
    if args.resume and out.exists():
        with open(out, newline="") as handle:
            done = {(r["n"], r["K"], r["aggregation"], r["normalize"], r["sampler"]) for r in csv.DictReader(handle)}
        announce_resume(out, f"{len(done)} finished cells")
    todo = [c for c in cells(args) if tuple(map(str, c[:5])) not in done]
    saved = {}
    for i, (n, k, agg, norm, sampler, angle) in enumerate(progress(todo, "cells", disable=args.no_progress)):
        if sampler.startswith("specific_angle") and k > n:
            continue
        gen = torch.Generator().manual_seed(args.seed * 1_000_003 + i)
        g = true_gradient(args.true_gradient, n, dtype, torch.Generator().manual_seed(args.seed))
        res = approximation_samples(n, k, agg, args.samples, sampler=sampler, normalize=norm, g=g, dtype=dtype,
                                    generator=gen, chunk_mb=args.chunk_mb)  # fmt: skip
        res["sq_norm_ratio"] = res["norm_ratio"] ** 2
        if args.save_samples:
            saved[(n, k, agg, norm, sampler)] = {m: v.clone() for m, v in res.items()}
        cell_rows = []
        for metric, values in res.items():
            values = values.double()
            std = float(values.std()) if values.numel() > 1 else 0.0
            cell_rows.append({
                "n": n, "K": k, "aggregation": agg, "normalize": norm, "sampler": sampler, "angle": angle,
                "metric": metric, "mean": float(values.mean()), "std": std,
                "ci95": 1.96 * std / math.sqrt(values.numel()), "count": values.numel(),
                "expected": expected_value(metric, agg, n, k, sampler, norm),
            })  # fmt: skip
        write_csv(out, cell_rows, FIELDS, append=True)  # one cell at a time: a killed run keeps finished cells
    if args.save_samples:
        torch.save(saved, run.path / "samples.pt")
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    _plot(run, rows, args.mode)
    cos = [r for r in rows if r["metric"] == "cos" and r["normalize"] == "False"]
    run.finish({"cells": len({(r["n"], r["K"], r["aggregation"], r["normalize"], r["sampler"]) for r in rows}),
                "cells_this_call": len(todo),
                "mean_cos": {f"{r['aggregation']}|n={r['n']}|K={r['K']}|{r['sampler']}": float(r["mean"])
                             for r in cos}})  # fmt: skip
    return 0


def _plot(run, rows, mode) -> None:
    from common.plotting import new_figure, use_style

    use_style()
    cos = [r for r in rows if r["metric"] == "cos" and r["normalize"] == "False"]
    if mode == "angles":
        fig, ax = new_figure("cos(g_hat, g) vs tangent angle (n = 64)", "angle theta (degrees)", "mean cos")
        for key in sorted({(r["aggregation"], r["K"]) for r in cos}):
            pts = sorted((float(r["angle"]), float(r["mean"])) for r in cos if (r["aggregation"], r["K"]) == key)
            ax.plot(*zip(*pts), marker="o", label=f"{key[0]} K={key[1]}")
    else:
        fig, ax = new_figure("cos(g_hat, g) vs n", "n (dimension)", "mean cos")
        for key in sorted({(r["aggregation"], int(r["K"])) for r in cos}, key=lambda t: (t[0], t[1])):
            pts = sorted((int(r["n"]), float(r["mean"])) for r in cos if (r["aggregation"], int(r["K"])) == key)
            ax.plot(*zip(*pts), marker="o", label=f"{key[0]} K={key[1]}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
    ax.legend(fontsize=6, ncol=2)
    run.save_figure(fig, "cos_vs_n")


if __name__ == "__main__":
    run_main(main)
