"""common.report (demo table), common.bench (ratios) and common.plotting."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from common.bench import BenchReport, compare, measure
from common.plotting import new_figure, save_figure
from common.report import DemoRow, collect_rows, write_report


def test_demo_rows_and_report(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "fig.png").write_bytes(b"png")
    rows = [
        DemoRow("p", "claim A", "0.5", "0.49", "yes", run_dir="results/x", png=str(tmp_path / "p" / "fig.png")),
        DemoRow("p", "claim B | pipes", "1", "2", "no"),
    ]
    path = write_report(rows, tmp_path)
    text = path.read_text()
    assert "| p | claim A | 0.5 | 0.49 | **yes** | results/x |" in text
    assert "claim B \\| pipes" in text and "yes: 1, no: 1" in text
    assert "![p](p/fig.png)" in text, "figure links are relative to REPORT.md"
    with pytest.raises(ValueError, match="verdict must be one of"):
        DemoRow("p", "c", "1", "1", "maybe")


def test_paper_without_demo_is_reported_not_implemented(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    fake = types.ModuleType("fakepaper")
    fake.__path__ = []  # a package with no demo module
    monkeypatch.setitem(sys.modules, "fakepaper", fake)
    rows = collect_rows(tmp_path, papers=["fakepaper"])
    assert [(r.paper, r.verdict) for r in rows] == [("fakepaper", "not implemented")]


def test_bench_ratio_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    timing = measure(lambda: sum(range(1000)), warmup=1, reps=3)
    assert timing.median_s > 0 and len(timing.times_s) == 3
    slow, fast = compare(lambda: sum(range(20000)), lambda: sum(range(200)), warmup=1, reps=5)
    report = BenchReport("unit", out_dir=tmp_path)
    row = report.add("B1", "sum of range", slow.median_s, fast.median_s, target=2.0)
    assert row.ratio == pytest.approx(slow.median_s / fast.median_s) and row.verdict == "pass"
    report.add("B2", "impossible", 1.0, 2.0, target=1.0)
    report.add("B3", "forward passes per step", 3.0, 1.5, unit="forwards")
    assert "1.5 forwards" in report.table(), "non-time rows print their own unit"

    path = report.finish()
    data = json.loads(path.read_text())
    assert [r["verdict"] for r in data["rows"]] == ["pass", "fail", "-"] and "torch" in data and "threads" in data
    assert "B1" in capsys.readouterr().out


def test_bench_times_with_torch_benchmark_timer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from torch.utils import benchmark

    calls: list[int] = []
    timing = measure(lambda: calls.append(1), warmup=5, reps=4)
    assert len(calls) == 5 - 2 + 4 * (1 + 2), "each rep is Timer.timeit(1): two untimed calls, one timed"
    assert isinstance(timing.measurement, benchmark.Measurement) and len(timing.times_s) == 4
    assert timing.median_s == statistics.median(timing.times_s)
    order: list[str] = []
    base, ours = compare(lambda: order.append("b"), lambda: order.append("c"), warmup=0, reps=2)
    assert order == ["b"] * 3 + ["c"] * 3 + ["b"] * 3 + ["c"] * 3, "interleaved repetitions"
    report = BenchReport("unit_timer", out_dir=tmp_path)
    row = report.add("T1", "append", base, ours, target=0.0)
    assert row.baseline_s == base.median_s and row.ours_s == ours.median_s and row.verdict == "pass"
    data = json.loads(report.finish().read_text())
    assert data["rows"][0]["baseline_s"] == base.median_s
    out = capsys.readouterr().out
    assert "[------" in out and "unit_timer" in out and "baseline" in out, "torch's Compare table is printed"
    with pytest.raises(ValueError, match="reps must be >= 1"):
        measure(lambda: None, reps=0)
    with pytest.raises(ValueError, match="warmup must be >= 0"):
        compare(lambda: None, lambda: None, warmup=-1)


def test_plot_saves_png(tmp_path: Path) -> None:
    fig, ax = new_figure("title", "step", "loss (nats)")
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "a" / "p.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
