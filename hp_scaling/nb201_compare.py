"""NAS-Bench-201 cells: the default recipe vs the architecture-aware init + LR (DESIGN.md §6; paper sec. 5).

Baseline: PyTorch default init, --baseline_lr. Ours: --init paper|reference and --lr x the NB201 multiplier
(eq. 8 with offset 1, S_base 1; avg_pool counts as a skip). Example (R4, DESIGN.md §5):
    python hp_scaling/nb201_compare.py --dataset digits --width 8 --num_cells 6 --epochs 5 --batch_size 64 \
        --init reference
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

import torch

from common.cli import ArgumentParser, add_run_args, announce_resume, positive_float, positive_int, run_main
from common.runs import open_run, progress
from common.runtime import resolve_device
from hp_scaling.cli_args import (
    add_data_args,
    add_seed_args,
    add_sgd_args,
    check_sgd,
    checked_codes,
    read_reference_csv,
    seeds_of,
    sgd_config,
    skipped_line,
    split_by_path,
)
from hp_scaling.dags import all_codes, code_to_arch_str, random_order
from hp_scaling.loaders import AUG_PAD, load_data
from hp_scaling.models import TinyNetwork
from hp_scaling.scaling import NoPathError, lr_multiplier
from hp_scaling.tables import write_table
from hp_scaling.train import train

PAPER, EXPERIMENT = "hp_scaling", "nb201_compare"

TOP_K = (100, 90, 80, 70, 60, 50, 40, 30, 20, 10, 5, 1)


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description="NB201 cells: default recipe vs architecture-aware init and LR")
    c = p.add_argument_group("cells")
    c.add_argument("--cells", nargs="+", default=None, metavar="CODE", help="cell codes or NB201 arch strings")
    c.add_argument(
        "--num_cells",
        type=positive_int,
        default=8,
        metavar="M",
        help="first M cells with a path in random_order(15625, --cell_seed)",
    )
    c.add_argument("--cell_seed", type=int, default=0, metavar="INT", help="permutation seed of the cell list")
    t = p.add_argument_group("training")
    add_data_args(t, "cifar10")
    t.add_argument("--width", type=positive_int, default=16, metavar="C", help="channels of the first stage")
    t.add_argument("--cells_per_stage", type=positive_int, default=5, metavar="N", help="cells per stage")
    add_sgd_args(t, epochs=200, batch_size=256, momentum=0.9, weight_decay=5e-4, toggles_on=True)
    r = p.add_argument_group("recipes")
    r.add_argument("--baseline_lr", type=positive_float, default=0.1, metavar="LR", help="baseline LR")
    r.add_argument(
        "--baseline_init", choices=["torch", "paper", "reference", "he"], default="torch", help="baseline init"
    )
    r.add_argument("--lr", type=positive_float, default=0.46, metavar="LR", help="base LR of ours (x multiplier)")
    r.add_argument("--init", choices=["paper", "reference"], default="paper", help="init of ours (DESIGN.md §3)")
    r.add_argument("--reference_csv", default=None, metavar="CSV", help="arch_str,acc table for Kendall tau")
    add_run_args(p, tensorboard=False)
    u = p.add_argument_group("seeds and resume")
    add_seed_args(u)
    u.add_argument("--resume", action="store_true", help="skip finished (cell, seed, recipe) items")
    return p


def select_cells(cells, num_cells: int, cell_seed: int) -> list[str]:
    """Explicit cells (codes or arch strings), or the first ``num_cells`` with a path in the seeded order."""
    if cells:
        return checked_codes(cells, "nb201")
    pool = all_codes("nb201")
    out = []
    for i in random_order(len(pool), cell_seed):
        c = pool[int(i)]
        try:
            lr_multiplier(c, "nb201")
        except NoPathError:
            continue
        out.append(c)
        if len(out) == num_cells:
            break
    return out


def kendall_topk(ref: list[float], ours: list[float]) -> dict:
    """Kendall tau (scipy) of ours against ref over the top-K% cells by ref; None when fewer than 3 cells."""
    from scipy.stats import kendalltau

    order = sorted(range(len(ref)), key=lambda i: -ref[i])
    out = {}
    for k in TOP_K:
        n = math.ceil(len(ref) * k / 100)
        idx = order[:n]
        if n < 3:
            out[str(k)] = None
            continue
        tau = kendalltau([ref[i] for i in idx], [ours[i] for i in idx]).statistic
        out[str(k)] = float(tau) if tau == tau else None
    return out


def mean_pairwise_gap(accs: list[float]) -> float:
    pairs = [abs(a - b) for i, a in enumerate(accs) for b in accs[i + 1 :]]
    return sum(pairs) / len(pairs) if pairs else math.nan


def summarize(cells: list[dict], reference: dict | None = None) -> dict:
    """Gains, gains by half of baseline accuracy, Kendall tau overall and within top-K%, pairwise gaps."""
    gains = [c["gain"] for c in cells]
    order = sorted(cells, key=lambda c: c["acc_base"])
    half = len(order) // 2
    bottom, top = order[:half], order[half:]
    ref = [reference.get(c["arch_str"], math.nan) if reference else c["acc_base"] for c in cells]
    keep = [i for i, v in enumerate(ref) if math.isfinite(v)]
    taus = kendall_topk([ref[i] for i in keep], [cells[i]["acc_ours"] for i in keep])
    return {
        "n_cells": len(cells),
        "mean_gain": statistics.fmean(gains) if gains else math.nan,
        "median_gain": statistics.median(gains) if gains else math.nan,
        "gain_bottom_half": statistics.fmean([c["gain"] for c in bottom]) if bottom else math.nan,
        "gain_top_half": statistics.fmean([c["gain"] for c in top]) if top else math.nan,
        "kendall_tau": taus.get("100"),
        "kendall_tau_topk": taus,
        "tau_against": "reference_csv" if reference else "baseline",
        "mean_acc_base": statistics.fmean([c["acc_base"] for c in cells]) if cells else math.nan,
        "mean_acc_ours": statistics.fmean([c["acc_ours"] for c in cells]) if cells else math.nan,
        "pairwise_gap_base": mean_pairwise_gap([c["acc_base"] for c in cells]),
        "pairwise_gap_ours": mean_pairwise_gap([c["acc_ours"] for c in cells]),
    }


def _train_one(args, data, code: str, seed: int, recipe: str, aug_pad: int, device) -> dict:
    """Train one (cell, seed, recipe); the row stored in partial.jsonl."""
    train_data, test_data = data
    lr = args.lr * lr_multiplier(code, "nb201") if recipe == "ours" else args.baseline_lr
    torch.manual_seed(seed)
    net = TinyNetwork(
        code,
        C=args.width,
        N=args.cells_per_stage,
        num_classes=train_data.num_classes,
        in_ch=train_data.in_shape[0],
        init=args.init if recipe == "ours" else args.baseline_init,
    )
    cfg = sgd_config(args, lr=lr, seed=seed, aug_pad=aug_pad)
    res = train(net.to(device), train_data, test_data, cfg)
    return {
        "key": f"{code}|{seed}|{recipe}",
        "code": code,
        "seed": seed,
        "recipe": recipe,
        "lr": lr,
        "status": res.status,
        "acc": res.final_test_acc if res.status == "ok" else math.nan,
        "wall_s": res.wall_s,
    }


def _read_done(part: Path, resume: bool) -> dict:
    """Finished items of an earlier run (--resume), else an empty table (and the old file removed)."""
    done = {}
    if resume and part.exists():
        for line in part.read_text().splitlines():
            try:
                row = json.loads(line)
                done[row["key"]] = row
            except (json.JSONDecodeError, KeyError):
                continue
        announce_resume(part, f"{len(done)} finished (cell, seed, recipe) items")
    elif part.exists():
        part.unlink()
    return done


def cell_table(cells: list[str], seeds: list[int], done: dict, lr: float) -> list[dict]:
    """One row per cell: multiplier, our LR, accuracy per recipe and seed, their means and the gain."""
    table = []
    for c in cells:
        rec = {
            "code": c,
            "arch_str": code_to_arch_str(c),
            "multiplier": lr_multiplier(c, "nb201"),
            "lr_ours": lr * lr_multiplier(c, "nb201"),
        }
        for r in ("base", "ours"):
            accs = [done[f"{c}|{s}|{r}"]["acc"] for s in seeds]
            for s, a in zip(seeds, accs):
                rec[f"acc_{r}_s{s}"] = a
            rec[f"acc_{r}"] = statistics.fmean(accs)
        rec["gain"] = rec["acc_ours"] - rec["acc_base"]
        table.append(rec)
    return table


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.time()
    check_sgd(args)
    reference = read_reference_csv(args.reference_csv) if args.reference_csv else None
    device = resolve_device(args.device)
    cells = select_cells(args.cells, args.num_cells, args.cell_seed)
    train_data = load_data(args.dataset, "train", args.data).to(device)
    test_data = load_data(args.dataset, "test", args.data).to(device)
    ok, no_path = split_by_path(cells, "nb201")
    if no_path:
        print(skipped_line(no_path))
    aug_pad = AUG_PAD.get(args.dataset, 0) if args.aug else 0
    if args.aug and not aug_pad:
        print(f"note: --aug ignored for {args.dataset}")
    name = args.name or f"nb201-{args.dataset}-W{args.width}-{args.init}-E{args.epochs}-BS{args.batch_size}"
    run = open_run(PAPER, EXPERIMENT, {**vars(args), "cells": ok}, name=name, root=args.out)
    part = run.path / "partial.jsonl"
    done = _read_done(part, args.resume)
    seeds = seeds_of(args)
    items = [(c, s, rec) for c in ok for s in seeds for rec in ("base", "ours")]
    for code, seed, rec in progress(items, desc="nb201", disable=args.no_progress):
        if f"{code}|{seed}|{rec}" in done:
            continue
        row = _train_one(args, (train_data, test_data), code, seed, rec, aug_pad, device)
        done[row["key"]] = row
        with open(part, "a") as f:
            f.write(json.dumps(row) + "\n")
    table = cell_table(ok, seeds, done, args.lr)
    write_table(run.path / "cells.csv", table)
    finite = [c for c in table if math.isfinite(c["gain"])]
    summary = summarize(finite, reference)
    summary.update(
        n_diverged=sum(1 for r in done.values() if r["status"] != "ok"),
        all_finite=len(finite) == len(table),
        wall_s=round(time.time() - t0, 3),
    )
    from hp_scaling.plots import plot_nb201_scatter, plot_tau_topk

    run.save_figure(plot_nb201_scatter(finite), "scatter.png")
    run.save_figure(plot_tau_topk(summary["kendall_tau_topk"]), "tau_topk.png")
    print(
        f"mean acc base {summary['mean_acc_base']:.4f}  ours {summary['mean_acc_ours']:.4f}  "
        f"mean gain {100 * summary['mean_gain']:+.2f} points"
    )
    run.finish(summary)
    return 0


if __name__ == "__main__":
    run_main(main)
