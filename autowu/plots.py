"""Figures for AutoWU: LR traces, the ramp loss against LR, the per-test probabilities and the reproduction grid."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common.plotting import new_figure

__all__ = ["plot_trace", "plot_ramp_loss", "plot_probs", "plot_grid", "plot_schedules", "plot_training_curves"]


def plot_trace(lrs: Sequence[float], losses: Sequence[float], switch_step=None, title="AutoWU on a synthetic curve"):
    """LR (log axis) and loss against the update index, with the switch marked."""
    fig, (ax_lr, ax_loss) = new_figure(title, "update u", "learning rate", ncols=2)
    u = np.arange(1, len(lrs) + 1)
    ax_lr.semilogy(u, np.maximum(np.asarray(lrs, float), 1e-12))
    ax_loss.plot(u, losses, lw=0.6)
    ax_loss.set_ylabel("loss")
    for ax in (ax_lr, ax_loss):
        if switch_step:
            ax.axvline(switch_step, color="k", ls="--", lw=1, label=f"switch at {switch_step}")
            ax.legend()
    return fig


def plot_ramp_loss(runs: Sequence[dict], title="ramp loss against LR"):
    """Loss against LR (log axis) over the warmup for each run; dict keys lr, loss, switch_lr, peak_lr, label."""
    fig, ax = new_figure(title, "learning rate", "training loss")
    for i, r in enumerate(runs):
        color = f"C{i}"
        ax.semilogx(r["lr"], r["loss"], color=color, lw=0.8, label=r.get("label"))
        if r.get("switch_lr"):
            ax.axvline(r["switch_lr"], color=color, ls="--", lw=1)
        if r.get("peak_lr"):
            ax.axvline(r["peak_lr"], color=color, ls=":", lw=1)
    ax.set_title("dashed: eta_sw (decay start), dotted: peak LR at the switch", fontsize=8)
    if any(r.get("label") for r in runs):
        ax.legend()
    return fig


def plot_probs(test_log: Sequence[dict], confidence=0.95, title="p per test"):
    """p_r of each test against its step, with the confidence line and vote counts."""
    fig, ax = new_figure(title, "step of the test", "P(minimum in the past)")
    steps = [d["step"] for d in test_log]
    n_rep = sum(1 for k in test_log[0] if k.startswith("p_")) if test_log else 0
    for r in range(n_rep):
        ax.plot(steps, [d[f"p_{r + 1}"] for d in test_log], ".", ms=4, alpha=0.6)
    ax.axhline(confidence, color="k", ls="--", lw=1, label=f"confidence {confidence}")
    for d in test_log:
        ax.annotate(str(d["votes"]), (d["step"], 1.02), fontsize=6, ha="center")
    ax.set_ylim(-0.02, 1.08)
    ax.legend()
    return fig


def plot_grid(cell_means: dict, peaks, warmups, autowu_mean, verdict, title="baseline grid vs AutoWU"):
    """Heatmap of baseline test accuracy (peak x warmup) with AutoWU's mean and the rule verdict in the title."""
    fig, ax = new_figure(f"{title}: AutoWU {autowu_mean:.2f} % ({verdict})", "linear warmup fraction", "peak LR")
    data = np.array([[cell_means.get(f"{p:g}/{w:g}", np.nan) for w in warmups] for p in peaks])
    im = ax.imshow(data, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(warmups)), [f"{w:g}" for w in warmups])
    ax.set_yticks(range(len(peaks)), [f"{p:g}" for p in peaks])
    for i in range(len(peaks)):
        for j in range(len(warmups)):
            ax.text(j, i, f"{data[i, j]:.2f}", ha="center", va="center", color="w", fontsize=8)
    fig.colorbar(im, ax=ax, label="test accuracy (%)")
    return fig


def plot_schedules(traces: dict, title="LR schedules"):
    """LR against the update index for named traces (log axis)."""
    fig, ax = new_figure(title, "update u", "learning rate")
    for name, lrs in traces.items():
        ax.semilogy(np.arange(1, len(lrs) + 1), np.maximum(np.asarray(lrs, float), 1e-8), label=name)
    ax.legend()
    return fig


def plot_training_curves(metrics_csv: str | Path, title="training curves"):
    """Train and valid loss, and valid top-1, per epoch from train.py's metrics.csv."""
    with open(metrics_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    fig, (a1, a2) = new_figure(title, "epoch", "loss", ncols=2)
    ep = [int(r["epoch"]) for r in rows]
    a1.plot(ep, [float(r["train/loss"]) for r in rows], label="train")
    a1.plot(ep, [float(r["valid/loss"]) for r in rows], label="valid")
    a1.legend()
    a2.plot(ep, [float(r["valid/acc1"]) for r in rows], label="valid top-1")
    a2.set_ylabel("accuracy (%)")
    a2.legend()
    return fig
