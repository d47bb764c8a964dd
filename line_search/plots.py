"""Plot helpers shared by the line_search notebooks (style from common.plotting)."""

from __future__ import annotations

import csv
from pathlib import Path

from line_search.harness.grid import ADAM_GRID

__all__ = ["read_metrics", "plot_lr_grid", "plot_metric"]


def read_metrics(run_dir: str | Path) -> list[dict]:
    with open(Path(run_dir) / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def plot_lr_grid(ax, groups: dict, ours=("sls", "adamsls", "kensls", "salsa")) -> None:
    """Final train loss against the Adam LR grid, our optimizers as horizontal lines."""
    lrs = [lr for lr in ADAM_GRID if f"adam_lr{lr:g}" in groups]
    ax.plot(lrs, [groups[f"adam_lr{lr:g}"]["final_train_loss_mean"] for lr in lrs], "ko-", label="Adam (cosine)")
    for i, name in enumerate(o for o in ours if o in groups):
        ax.axhline(groups[name]["final_train_loss_mean"], color=f"C{i}", ls="--", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.legend(fontsize=7)


def plot_metric(ax, run_dirs: dict[str, Path], column: str, log: bool = False, every: int = 1) -> None:
    """One line per run of a metrics.csv column against the step."""
    for label, path in run_dirs.items():
        rows = read_metrics(path)[::every]
        ax.plot([int(r["step"]) for r in rows], [float(r[column]) for r in rows], lw=0.8, label=label)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=7)
