"""One plot style for every figure: labelled axes with units, PNGs at 150 dpi.

No backend is forced here: scripts and tests get Agg from ``MPLBACKEND`` (the Makefile and tests/conftest.py set it,
and matplotlib falls back to Agg without a display), while a notebook kernel keeps its inline backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

__all__ = ["use_style", "new_figure", "save_figure", "STYLE"]

STYLE = {
    "figure.figsize": (5.5, 3.8),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "lines.linewidth": 1.6,
}


def use_style() -> None:
    """Apply the house style to matplotlib's global rcParams."""
    plt.rcParams.update(STYLE)


def new_figure(title: str, xlabel: str, ylabel: str, ncols: int = 1, **kwargs: Any) -> tuple[Any, Any]:
    """A styled figure with ``ncols`` axes (the single axis, or an array of axes); labels go on every axis."""
    use_style()
    width, height = STYLE["figure.figsize"]
    fig, axes = plt.subplots(1, ncols, figsize=kwargs.pop("figsize", (width * ncols, height)), **kwargs)
    for ax in [axes] if ncols == 1 else list(axes):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    fig.suptitle(title)
    return fig, axes


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save ``fig`` as PNG (creating folders), close it and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
