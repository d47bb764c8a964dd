"""Rows of results/demo/REPORT.md for sgd_genfunc (common.report): R1-R5 of DESIGN.md §6 at demo sizes (quick) or the
full presets of make reproduce (quick=False, which adds R6)."""

from __future__ import annotations

import time
from pathlib import Path

from common.report import DemoRow
from sgd_genfunc.claims import run
from sgd_genfunc.plots import plot

PAPER_FIGURES = {
    "R1": "MNIST (ref. README): NN, linearized, SD+1 overlap at b=10; SD-1 overshoots",
    "R2": "alpha_c = 2/Tr K~ = 0.784577 (b=1); 1.9592 / 2.4779 / 0.8610 / 3.5619",
    "R3": "slopes -1/3, -2/3, -4/3, -4/3, -4/3 (kink at kappa = 2nu-1 = 2)",
    "R4": "beta_opt < 0 for (1.5, 4), (2, 8); >= 0 for (2, 3)",
    "R5": "L depends on t*b only when alpha ~ b (max/min <= 1.01)",
    "R6": "heat maps: boundary U~(1) = 1, minimum at beta < 0",
}


def demo_rows(out_dir: Path, quick: bool = True) -> list[DemoRow]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for rid in ("R1", "R2", "R3", "R4", "R5") + (() if quick else ("R6",)):
        t0 = time.time()
        rep = run(rid, "demo" if quick else "full")
        png = plot(rep, out_dir)
        rows.append(
            DemoRow(
                "sgd_genfunc",
                f"{rid}: {rep.claim}",
                PAPER_FIGURES[rid],
                rep.our_figure(),
                rep.verdict,
                run_dir=str(out_dir),
                png=str(png),
                seconds=round(time.time() - t0, 1),
            )
        )
    return rows
