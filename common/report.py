"""The demo report: each paper's claims, the paper's figure, ours and a verdict, in results/demo/REPORT.md.

A paper registers its rows by providing ``<paper>/demo.py`` with
``demo_rows(out_dir: Path, quick: bool = True) -> list[DemoRow]``. ``python -m common.report`` (``make demo``)
runs every paper's rows (``--full`` for ``make reproduce``) and assembles the table; a paper without demo.py, or
whose demo fails, gets a row that says so rather than stopping the others.

Cached results (stamps)
-----------------------
A demo row may reuse a result computed earlier (for example by ``make reproduce``) only when it carries a stamp
that matches the current configuration and the current code of the paper. The stamp is built by
:func:`stamp` from the paper name and the *full* configuration that produced the result (every argument that
changes the numbers: argv list, preset, seeds, sizes); it holds the sha256 of the canonical JSON of that
configuration, a code version (sha256 over the contents of every ``.py`` file of the paper folder, sorted by
path), the git commit (provenance only) and the date. The rules for demo rows:

1. After computing a result, write it with ``write_stamped(<run_dir>/stamped_summary.json, summary, st)``.
2. To reuse one, call ``read_stamped(path, st)`` with a stamp built from the configuration the row would run now.
   It returns ``(summary, provenance)`` or ``None`` when the file is missing, unreadable, unstamped (a bare
   ``summary.json``), or its configuration or code version differs. Never read a bare ``summary.json`` for a row.
3. On ``None`` the row recomputes (or says "not run"); on a hit the row's figure says
   ``cached_note(provenance)``, e.g. "cached from 2026-12-06, 3f22a53".

:func:`load_or_compute` does 1-3 in one call.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib
import json
import os
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.cli import ArgumentParser, UsageError, run_main

__all__ = [
    "DemoRow",
    "PAPERS",
    "REPO_ROOT",
    "cached_note",
    "code_version",
    "collect_rows",
    "config_digest",
    "load_or_compute",
    "main",
    "read_stamped",
    "stamp",
    "write_report",
    "write_stamped",
]

PAPERS = ("forward_grad", "hp_scaling", "line_search", "sgd_genfunc", "autowu")
VERDICTS = ("yes", "no", "partial", "not implemented", "error")
REPO_ROOT = Path(__file__).resolve().parent.parent
STAMP_KEYS = ("paper", "config_sha256", "code_sha256")  # what must match; commit and date are provenance only


def config_digest(config: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``config`` (sorted keys, no spaces; Paths and other objects as str)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def code_version(dirs: Iterable[str | Path], root: str | Path = REPO_ROOT) -> str:
    """sha256 over every ``.py`` file under ``root/<dir>`` for each dir: relative path and contents, sorted by path.

    ``__pycache__`` is ignored; editing, adding, removing or renaming a source file changes the digest.
    """
    root = Path(root)
    files: list[Path] = []
    for d in dirs:
        files.extend(f for f in (root / d).rglob("*.py") if "__pycache__" not in f.parts and f.is_file())
    digest = hashlib.sha256()
    for f in sorted(set(files), key=lambda f: f.relative_to(root).as_posix()):
        digest.update(f.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(f.read_bytes()).digest())
    return digest.hexdigest()


def git_commit(root: Path) -> str:
    """Short commit of ``root`` with ``+dirty`` when tracked files differ from it; "unknown" without git."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty=+dirty", "--exclude=*"],
            capture_output=True,
            text=True,
        )
    except OSError:  # no git executable
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def stamp(
    paper: str, config: Mapping[str, Any], code_dirs: Sequence[str] | None = None, root: str | Path = REPO_ROOT
) -> dict[str, Any]:
    """The stamp of a result computed now by ``paper`` with ``config`` (see "Cached results" above).

    ``code_dirs`` (default: the paper folder alone) lists the folders whose ``.py`` files make up the code version;
    add ``"common"`` when the result depends on common/ code that may change. Returns a JSON-ready dict with
    ``paper``, ``config_sha256``, ``code_sha256`` (compared by :func:`read_stamped`), ``commit`` and ``date``
    (ISO 8601, UTC; provenance only) and ``config`` (kept for readers of the file).
    """
    dirs = list(code_dirs) if code_dirs is not None else [paper]
    return {
        "paper": paper,
        "config_sha256": config_digest(config),
        "code_sha256": code_version(dirs, root),
        "code_dirs": dirs,
        "commit": git_commit(Path(root)),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": json.loads(json.dumps(config, default=str)),
    }


def _write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it onto ``path`` (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # readable like any written file (mkstemp creates 0600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)  # gone already when the interrupt came right after the rename
        raise
    return path


def write_stamped(path: str | Path, summary: Mapping[str, Any], stamp: Mapping[str, Any]) -> Path:
    """Write ``{"stamp": stamp, "summary": summary}`` to ``path`` atomically, as indented JSON (objects as str)."""
    text = json.dumps({"stamp": dict(stamp), "summary": dict(summary)}, indent=2, default=str)
    return _write_atomic(Path(path), text + "\n")


def read_stamped(path: str | Path, stamp: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``(summary, provenance)`` from a file written by :func:`write_stamped` whose stamp matches ``stamp``.

    ``None`` when the file is missing or unreadable, carries no stamp (e.g. a plain summary.json), or its paper,
    configuration digest or code version differ from ``stamp``. ``provenance`` is the stored stamp (commit, date).
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("stamp"), dict)
        or not isinstance(data.get("summary"), dict)
    ):
        return None
    stored = data["stamp"]
    if any(stored.get(key) is None or stored.get(key) != stamp.get(key) for key in STAMP_KEYS):
        return None
    return data["summary"], stored


def cached_note(provenance: Mapping[str, Any]) -> str:
    """The text a row shows for a cached result: ``cached from <YYYY-MM-DD>, <commit>``."""
    date = str(provenance["date"])[:10] if provenance.get("date") else "unknown date"
    return f"cached from {date}, {provenance.get('commit', 'unknown commit')}"


def load_or_compute(
    path: str | Path, stamp: Mapping[str, Any], compute: Callable[[], Mapping[str, Any]], allow_compute: bool = True
) -> tuple[dict[str, Any] | None, str]:
    """A matching cached summary at ``path``, else ``compute()`` written there with ``stamp``.

    Returns ``(summary, note)``: note is :func:`cached_note` for a cache hit, ``"computed now"`` after computing,
    and ``(None, "not run (...)")`` when nothing matches and ``allow_compute`` is False.
    """
    hit = read_stamped(path, stamp)
    if hit is not None:
        return hit[0], cached_note(hit[1])
    if not allow_compute:
        return None, "not run (no cached result for this configuration and code)"
    summary = dict(compute())
    write_stamped(path, summary, stamp)
    return summary, "computed now"


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
    return _write_atomic(out_dir / "REPORT.md", "\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m common.report", description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="run the fuller reproductions (make reproduce)")
    parser.add_argument("--only", default=",".join(PAPERS), metavar="P,Q", help="comma-separated papers to run")
    parser.add_argument(
        "--out",
        default="results",
        metavar="DIR",
        help="results root: the report goes to <out>/demo (--full: reproduce)",
    )
    args: argparse.Namespace = parser.parse_args(argv)
    papers = [p.strip() for p in args.only.split(",") if p.strip()]
    if not papers:
        raise UsageError(f"--only names no paper; choose from {', '.join(PAPERS)}")
    unknown = sorted(set(papers) - set(PAPERS))
    if unknown:
        raise UsageError(f"unknown paper(s) {', '.join(unknown)}; choose from {', '.join(PAPERS)}")
    out_dir = Path(args.out) / ("reproduce" if args.full else "demo")
    start = time.time()
    rows = collect_rows(out_dir, quick=not args.full, papers=papers)
    path = write_report(rows, out_dir, quick=not args.full)
    print(path.read_text())
    print(f"report written in {time.time() - start:.0f} s: {path}")
    return 1 if any(r.verdict == "error" for r in rows) else 0


if __name__ == "__main__":
    run_main(main)
