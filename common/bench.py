"""Timing helper for benchmarks/: warm-ups, interleaved repetitions, medians and ratios against a baseline.

Speed goals are never asserted in tests; each benchmark script prints a table of ratios measured in one process
and writes the same rows to results/bench/<name>.json.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = ["Timing", "measure", "compare", "BenchReport", "BenchRow"]


def _sync_if_cuda() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


@dataclass(frozen=True)
class Timing:
    """Median and all repetition times in seconds."""

    median_s: float
    times_s: tuple[float, ...]


def _time_once(fn: Callable[[], Any]) -> float:
    _sync_if_cuda()
    start = time.perf_counter()
    fn()
    _sync_if_cuda()
    return time.perf_counter() - start


def measure(fn: Callable[[], Any], warmup: int = 2, reps: int = 7) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then ``reps`` timed times; CUDA is synchronized only when in use."""
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    for _ in range(warmup):
        fn()
    times = tuple(_time_once(fn) for _ in range(reps))
    return Timing(statistics.median(times), times)


def compare(
    baseline: Callable[[], Any], candidate: Callable[[], Any], warmup: int = 2, reps: int = 7
) -> tuple[Timing, Timing]:
    """Time baseline and candidate interleaved (b, c, b, c, ...) after warm-up, so drift hits both alike."""
    for _ in range(warmup):
        baseline()
        candidate()
    base, cand = [], []
    for _ in range(reps):
        base.append(_time_once(baseline))
        cand.append(_time_once(candidate))
    return Timing(statistics.median(base), tuple(base)), Timing(statistics.median(cand), tuple(cand))


@dataclass
class BenchRow:
    id: str
    measure: str
    baseline_s: float
    ours_s: float
    ratio: float
    target: float | None
    verdict: str
    note: str = ""
    unit: str = "s"


@dataclass
class BenchReport:
    """Collects rows (ratio = baseline / ours; pass when ratio >= target) and writes them out."""

    name: str
    out_dir: Path = Path("results/bench")
    rows: list[BenchRow] = field(default_factory=list)

    def add(
        self,
        id: str,
        measure: str,
        baseline_s: float,
        ours_s: float,
        target: float | None = None,
        note: str = "",
        unit: str = "s",
    ) -> BenchRow:
        """Add a row; ``unit`` is "s" for times, or any other label (e.g. "forwards", "bytes") for counts."""
        ratio = baseline_s / ours_s if ours_s > 0 else float("inf")
        verdict = "-" if target is None else ("pass" if ratio >= target else "fail")
        row = BenchRow(id, measure, baseline_s, ours_s, ratio, target, verdict, note, unit)
        self.rows.append(row)
        return row

    def table(self) -> str:
        header = f"{'id':<6}{'measure':<40}{'baseline':>12}{'ours':>12}{'ratio':>9}{'target':>9}  verdict"
        lines = [header]
        for r in self.rows:
            target = "-" if r.target is None else f">={r.target:g}"
            lines.append(
                f"{r.id:<6}{r.measure[:39]:<40}{_fmt(r.baseline_s, r.unit):>12}{_fmt(r.ours_s, r.unit):>12}"
                f"{r.ratio:>8.2f}x{target:>9}  {r.verdict}" + (f"  ({r.note})" if r.note else "")
            )
        return "\n".join(lines)

    def finish(self) -> Path:
        """Print the table and write results/bench/<name>.json with torch version, threads and device."""
        print(self.table())
        self.out_dir.mkdir(parents=True, exist_ok=True)
        meta = {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        }
        path = self.out_dir / f"{self.name}.json"
        path.write_text(json.dumps({"name": self.name, **meta, "rows": [asdict(r) for r in self.rows]}, indent=2))
        print(f"wrote {path}")
        return path


def _fmt(seconds: float, unit: str = "s") -> str:
    if unit != "s":
        return f"{seconds:.4g} {unit}"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"
