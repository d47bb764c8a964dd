"""The demo report: each paper's claims, the paper's figure, ours and a verdict, in results/demo/REPORT.md.

A paper registers its rows by providing ``<paper>/demo.py`` with
``demo_rows(out_dir: Path, quick: bool = True) -> list[DemoRow]``. ``python -m common.report`` (``make demo``)
runs every paper's rows (``--full`` for ``make reproduce``) and assembles the table; a paper without demo.py, or
whose demo fails, gets a row that says so rather than stopping the others.
"""

from __future__ import annotations

import argparse
import importlib
import os
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from common.cli import ArgumentParser, UsageError, run_main

__all__ = ["DemoRow", "PAPERS", "collect_rows", "write_report", "main"]

PAPERS = ("forward_grad", "hp_scaling", "line_search", "sgd_genfunc", "autowu")
VERDICTS = ("yes", "no", "partial", "not implemented", "error")


@dataclass
class DemoRow:
    """One claim of a paper with the paper's figure, ours and whether it reproduced."""

    paper: str
    claim: str
    paper_figure: str
    our_figure: str
    verdict: str
    run_dir: str = ""
    png: str | None = None
    seconds: float = field(default=0.0)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


def collect_rows(out_dir: Path, quick: bool = True, papers: Sequence[str] = PAPERS) -> list[DemoRow]:
    """Run each paper's ``demo_rows``; missing or failing demos become single explanatory rows."""
    rows: list[DemoRow] = []
    for paper in papers:
        start = time.time()
        try:
            module = importlib.import_module(f"{paper}.demo")
        except ModuleNotFoundError as exc:
            if exc.name not in (f"{paper}.demo", paper):
                raise
            rows.append(DemoRow(paper, "(whole paper)", "-", "-", "not implemented"))
            continue
        print(f"[demo] {paper} ...", flush=True)
        try:
            paper_rows = list(module.demo_rows(out_dir / paper, quick=quick))
        except Exception as exc:  # noqa: BLE001 - one paper's failure must not hide the others
            traceback.print_exc()
            rows.append(DemoRow(paper, "(demo run)", "-", f"{type(exc).__name__}: {exc}"[:200], "error"))
            continue
        elapsed = time.time() - start
        for row in paper_rows:
            row.seconds = elapsed / max(1, len(paper_rows))
        rows.extend(paper_rows)
        print(f"[demo] {paper}: {len(paper_rows)} rows in {elapsed:.1f} s", flush=True)
    return rows


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_report(rows: Sequence[DemoRow], out_dir: Path, quick: bool = True) -> Path:
    """Write REPORT.md (a markdown table plus embedded PNGs) and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {v: sum(r.verdict == v for r in rows) for v in VERDICTS}
    lines = [
        "# Reproduction report" + (" (quick demo)" if quick else " (full)"),
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')}. Verdicts: "
        + ", ".join(f"{v}: {n}" for v, n in counts.items() if n),
        "",
        "| paper | claim | paper's figure | our figure | verdict | run dir |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {_cell(r.paper)} | {_cell(r.claim)} | {_cell(r.paper_figure)} | {_cell(r.our_figure)} "
            f"| **{r.verdict}** | {_cell(r.run_dir)} |"
        )
    pngs = [r for r in rows if r.png]
    if pngs:
        lines += ["", "## Figures", ""]
        for r in pngs:
            rel = os.path.relpath(Path(r.png).resolve(), out_dir.resolve())  # links work from REPORT.md's folder
            lines += [f"**{r.paper}: {r.claim}**", "", f"![{r.paper}]({rel})", ""]
    path = out_dir / "REPORT.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m common.report", description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="run the fuller reproductions (make reproduce)")
    parser.add_argument("--only", default=",".join(PAPERS), metavar="P,Q", help="comma-separated papers to run")
    parser.add_argument("--out", default="results/demo", metavar="DIR", help="report directory")
    args: argparse.Namespace = parser.parse_args(argv)
    papers = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(papers) - set(PAPERS))
    if unknown:
        raise UsageError(f"unknown paper(s) {', '.join(unknown)}; choose from {', '.join(PAPERS)}")
    out_dir = Path(args.out) if not args.full else Path(args.out).with_name("reproduce")
    start = time.time()
    rows = collect_rows(out_dir, quick=not args.full, papers=papers)
    path = write_report(rows, out_dir, quick=not args.full)
    print(path.read_text())
    print(f"report written in {time.time() - start:.0f} s: {path}")
    return 1 if any(r.verdict == "error" for r in rows) else 0


if __name__ == "__main__":
    run_main(main)
