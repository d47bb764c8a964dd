"""Timing helper for benchmarks/: torch.utils.benchmark Timers, interleaved repetitions, medians and ratios.

Speed goals are never asserted in tests; each benchmark script prints a table of ratios measured in one process
and writes the same rows to results/bench/<name>.json.

Every repetition is one ``torch.utils.benchmark.Timer.timeit(number=1)`` call: the Timer runs the callable with the
process's thread count, synchronizes CUDA when it is available, and warms up with two untimed calls before each
timed one (so ``warmup`` here only adds calls beyond those). The repetitions of one callable are merged into a
``torch.utils.benchmark.Measurement`` (``Timing.measurement``); :meth:`BenchReport.add` accepts Timings, and
:meth:`BenchReport.finish` then also prints torch's ``Compare`` table of them.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils import benchmark

__all__ = ["Timing", "measure", "compare", "BenchReport", "BenchRow"]

TIMER_WARMUP = 2  # untimed calls torch.utils.benchmark.Timer.timeit(number=1) makes before its timed call


@dataclass(frozen=True)
class Timing:
    """Median and all repetition times in seconds, with torch's Measurement of them."""

    median_s: float
    times_s: tuple[float, ...]
    measurement: benchmark.Measurement | None = field(default=None, compare=False, repr=False)


def _timer(fn: Callable[[], Any], label: str, description: str) -> benchmark.Timer:
    return benchmark.Timer(
        stmt="fn()",
        globals={"fn": fn},
        num_threads=torch.get_num_threads(),
        label=label or "benchmark",
        description=description,
    )


def _timing(measurements: list[benchmark.Measurement]) -> Timing:
    merged = benchmark.Measurement.merge(measurements)[0]
    times = tuple(float(t) for t in merged.times)
    return Timing(statistics.median(times), times, merged)


def _check(warmup: int, reps: int) -> None:
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")


def measure(fn: Callable[[], Any], warmup: int = 2, reps: int = 7, label: str = "", description: str = "") -> Timing:
    """Time ``reps`` calls of ``fn`` (one Timer.timeit(1) each) after at least ``warmup`` untimed calls."""
    _check(warmup, reps)
    timer = _timer(fn, label, description or "ours")
    for _ in range(max(0, warmup - TIMER_WARMUP)):
        fn()
    return _timing([timer.timeit(number=1) for _ in range(reps)])


def compare(
    baseline: Callable[[], Any],
    candidate: Callable[[], Any],
    warmup: int = 2,
    reps: int = 7,
    label: str = "",
) -> tuple[Timing, Timing]:
    """Time baseline and candidate interleaved (b, c, b, c, ...) after warm-up, so drift hits both alike."""
    _check(warmup, reps)
    timers = (_timer(baseline, label, "baseline"), _timer(candidate, label, "ours"))
    for _ in range(max(0, warmup - TIMER_WARMUP)):
        baseline()
        candidate()
    runs: tuple[list[benchmark.Measurement], list[benchmark.Measurement]] = ([], [])
    for _ in range(reps):
        for timer, out in zip(timers, runs):
            out.append(timer.timeit(number=1))
    return _timing(runs[0]), _timing(runs[1])


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
    measurements: list[benchmark.Measurement] = field(default_factory=list, repr=False)

    def add(
        self,
        id: str,
        measure: str,
        baseline_s: float | Timing,
        ours_s: float | Timing,
        target: float | None = None,
        note: str = "",
        unit: str = "s",
    ) -> BenchRow:
        """Add a row; ``unit`` is "s" for times, or any other label (e.g. "forwards", "bytes") for counts.

        ``baseline_s`` and ``ours_s`` may be :class:`Timing` objects (their medians are used, and their torch
        Measurements go into the Compare table that :meth:`finish` prints).
        """
        for which, value in (("baseline", baseline_s), ("ours", ours_s)):
            if isinstance(value, Timing) and value.measurement is not None:
                self.measurements.append(_relabel(value.measurement, self.name, f"{id} {measure}"[:60], which))
        baseline_s = baseline_s.median_s if isinstance(baseline_s, Timing) else float(baseline_s)
        ours_s = ours_s.median_s if isinstance(ours_s, Timing) else float(ours_s)
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
        if self.measurements:
            benchmark.Compare(self.measurements).print()
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


def _relabel(m: benchmark.Measurement, label: str, sub_label: str, description: str) -> benchmark.Measurement:
    """The same times under the report's label, the row as sub-label and baseline/ours as column (for Compare)."""
    spec = m.task_spec
    task = benchmark.utils.common.TaskSpec(
        stmt=spec.stmt,
        setup=spec.setup,
        num_threads=spec.num_threads,
        label=label,
        sub_label=sub_label,
        description=description,
    )
    return benchmark.Measurement(m.number_per_run, list(m.raw_times), task, m.metadata)


def _fmt(seconds: float, unit: str = "s") -> str:
    if unit != "s":
        return f"{seconds:.4g} {unit}"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"
