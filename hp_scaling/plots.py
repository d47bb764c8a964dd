"""Figures of hp_scaling (common.plotting style): predicted vs found LR, loss vs LR, NB201 scatter and tau."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from common.plotting import new_figure

__all__ = ["plot_loss_vs_lr", "plot_nb201_scatter", "plot_pred_vs_found", "plot_tau_topk"]


def plot_pred_vs_found(table, corr, title_prefix: str = ""):
    """Log-log scatter of found vs predicted LR with y = x; r and slope in the title."""
    rows = [r for r in table if math.isfinite(r["found_lr"]) and math.isfinite(r.get("predicted_lr", math.nan))]
    r3, slope = corr.get("pearson_off3", math.nan), corr.get("slope_vs_pred", math.nan)
    fig, ax = new_figure(
        f"{title_prefix}found vs predicted max LR (r = {r3:.3f}, slope = {slope:.2f})",
        "predicted LR (eq. 8/9)",
        "found LR (grid search)",
    )
    if rows:
        x = np.array([r["predicted_lr"] for r in rows])
        y = np.array([r["found_lr"] for r in rows])
        ax.scatter(x, y, s=18)
        lo, hi = min(x.min(), y.min()) / 1.5, max(x.max(), y.max()) * 1.5
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend()
    return fig


def plot_loss_vs_lr(loss_rows, lrs, max_codes: int = 12):
    """Seed-mean epoch-mean training loss vs LR, one line per code (first ``max_codes`` codes)."""
    acc: dict[tuple[str, int], dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in loss_rows:
        acc[(r["code"], r["q"])][r["lr"]].append(r["mean_loss"])
    fig, ax = new_figure("training loss vs learning rate", "learning rate", "epoch-mean training loss (nats)")
    for (code, q), per in list(acc.items())[:max_codes]:
        xs = sorted(per)
        ys = [np.mean(per[x]) if all(math.isfinite(v) for v in per[x]) else np.nan for x in xs]
        ax.plot(xs, ys, marker=".", label=code if q == 1 else f"{code} q={q}")
    ax.set_xscale("log")
    ax.legend(fontsize=6)
    return fig


def plot_nb201_scatter(cells):
    """Accuracy of the architecture-aware recipe vs the baseline, one point per cell."""
    fig, ax = new_figure("NB201 cells: baseline vs scaled init + LR", "baseline test accuracy", "ours test accuracy")
    x = [c["acc_base"] for c in cells]
    y = [c["acc_ours"] for c in cells]
    ax.scatter(x, y, s=18)
    if x:
        lo, hi = min(x + y) - 0.02, max(x + y) + 0.02
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
        ax.legend()
    return fig


def plot_tau_topk(taus: dict):
    """Kendall tau against the reference within the top-K% cells."""
    fig, ax = new_figure("Kendall tau within the top-K%", "K (%)", "Kendall tau")
    ks = [k for k, v in taus.items() if v is not None and math.isfinite(v)]
    ax.plot([float(k) for k in ks], [taus[k] for k in ks], marker="o")
    return fig


def draw_dag(dag, ax=None):
    """Draw a DAG code: nodes on a line, parameterized edges solid, unparameterized (skip/pool) dashed."""
    if ax is None:
        fig, ax = new_figure(f"DAG {dag.code}", "node", "")
    n = dag.n_nodes
    for s, t, d in dag.edges():
        xs = np.linspace(s, t, 30)
        h = 0.25 * (t - s)
        ys = h * np.sin(np.pi * (xs - s) / (t - s))
        style = "-" if dag.is_parameterized(d) else "--"
        ax.plot(xs, ys, style, color="C0" if dag.is_parameterized(d) else "C1")
    ax.scatter(range(n), [0] * n, s=200, zorder=3, color="k")
    for i in range(n):
        ax.annotate(str(i), (i, 0), color="w", ha="center", va="center", zorder=4)
    ax.set_yticks([])
    return ax
