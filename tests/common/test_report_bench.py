"""common.report (demo table), common.bench (ratios) and common.plotting."""

from __future__ import annotations

import json
import re
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
    assert text.startswith("# Reproduction report (quick demo)\n"), "quick is the default"
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


def _fake_paper(monkeypatch: pytest.MonkeyPatch, name: str, demo_rows) -> None:
    import sys
    import types

    import common.report as report

    pkg = types.ModuleType(name)
    pkg.__path__ = []
    demo = types.ModuleType(f"{name}.demo")
    demo.demo_rows = demo_rows
    monkeypatch.setitem(sys.modules, name, pkg)
    monkeypatch.setitem(sys.modules, f"{name}.demo", demo)
    monkeypatch.setattr(report, "PAPERS", (*report.PAPERS, name))


def test_report_main_writes_under_the_results_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from common.report import main

    seen: list[tuple[Path, bool]] = []

    def rows(out_dir: Path, quick: bool = True) -> list[DemoRow]:
        seen.append((out_dir, quick))
        return [DemoRow("fakep", "c1", "1", "1", "yes"), DemoRow("fakep", "c2", "1", "2", "no")]

    _fake_paper(monkeypatch, "fakep", rows)
    assert main(["--only", " fakep ", "--out", str(tmp_path)]) == 0
    assert seen[-1] == (tmp_path / "demo" / "fakep", True)
    text = (tmp_path / "demo" / "REPORT.md").read_text()
    assert text.startswith("# Reproduction report (quick demo)") and "yes: 1, no: 1" in text
    assert main(["--only", "fakep", "--out", str(tmp_path), "--full"]) == 0
    assert seen[-1] == (tmp_path / "reproduce" / "fakep", False)
    assert (tmp_path / "reproduce" / "REPORT.md").read_text().startswith("# Reproduction report (full)")
    assert "report written in" in capsys.readouterr().out


def test_report_main_fails_on_error_rows_and_bad_papers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from common.cli import UsageError
    from common.report import main

    def broken(out_dir: Path, quick: bool = True) -> list[DemoRow]:
        raise RuntimeError("demo exploded")

    _fake_paper(monkeypatch, "fakeq", broken)
    assert main(["--only", "fakeq", "--out", str(tmp_path)]) == 1, "an error row fails the run"
    rows = collect_rows(tmp_path, papers=["fakeq"])
    assert [(r.verdict, r.our_figure) for r in rows] == [("error", "RuntimeError: demo exploded")]
    with pytest.raises(UsageError, match="--only names no paper"):
        main(["--only", " , ", "--out", str(tmp_path)])
    with pytest.raises(UsageError, match=r"unknown paper\(s\) nope, zzz; choose from forward_grad"):
        main(["--only", "zzz,nope,fakeq", "--out", str(tmp_path)])


def test_collect_rows_spreads_time_and_reraises_foreign_import_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import types

    _fake_paper(
        monkeypatch, "fakew", lambda out_dir, quick=True: [DemoRow("fakew", f"c{i}", "", "", "yes") for i in range(4)]
    )
    rows = collect_rows(tmp_path, papers=["fakew"])
    assert len(rows) == 4 and len({r.seconds for r in rows}) == 1 and rows[0].seconds >= 0

    pkg = types.ModuleType("fakez")
    pkg.__path__ = []
    monkeypatch.setitem(sys.modules, "fakez", pkg)
    monkeypatch.setitem(sys.modules, "fakez.demo", None)  # import of fakez.demo raises ModuleNotFoundError
    assert [r.verdict for r in collect_rows(tmp_path, papers=["fakez"])] == ["not implemented"]

    (tmp_path / "fakey").mkdir()
    (tmp_path / "fakey" / "__init__.py").write_text("")
    (tmp_path / "fakey" / "demo.py").write_text("import no_such_module_for_the_demo_test\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_module_for_the_demo_test"):
        collect_rows(tmp_path, papers=["fakey"])  # a demo's own missing dependency is a bug, not "not implemented"


def test_report_help_is_the_documented_interface(capsys: pytest.CaptureFixture[str]) -> None:
    from common.report import PAPERS, main

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("usage: python -m common.report [-h] [--full] [--only P,Q] [--out DIR] The demo report:")
    assert "--full run the fuller reproductions (make reproduce) (default: False)" in out
    assert f"--only P,Q comma-separated papers to run (default: {','.join(PAPERS)})" in out
    assert "--out DIR results root: the report goes to <out>/demo (--full: reproduce) (default: results)" in out


def test_report_defaults_run_every_paper_into_results_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import re

    import common.report as report

    _fake_paper(monkeypatch, "fakeall", lambda out_dir, quick=True: [DemoRow("fakeall", "c", "1", "1", "yes")])
    monkeypatch.setattr(report, "PAPERS", ("fakeall",))
    monkeypatch.chdir(tmp_path)
    assert report.main([]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "results" / "demo" / "REPORT.md").read_text() in out, "the report is printed"
    assert re.search(r"report written in \d{1,3} s: results/demo/REPORT\.md$", out.strip())
    assert (tmp_path / "results" / "demo" / "REPORT.md").stat().st_mode & 0o777 == 0o644
    monkeypatch.setattr(report, "PAPERS", ("fakeall", "other"))
    with pytest.raises(report.UsageError) as exc:
        report.main(["--only", ""])
    assert str(exc.value) == "--only names no paper; choose from fakeall, other"
    with pytest.raises(report.UsageError) as exc:
        report.main(["--only", "x"])
    assert str(exc.value) == "unknown paper(s) x; choose from fakeall, other"


def test_report_figures_section_and_new_folders(tmp_path: Path) -> None:
    png = tmp_path / "figs" / "f.png"
    png.parent.mkdir()
    png.write_bytes(b"png")
    rows = [DemoRow("p", "c|1", "a\nb", "2", "yes", png=str(png)), DemoRow("q", "d", "3", "4", "error")]
    path = write_report(rows, tmp_path / "x" / "y", quick=False)
    lines = path.read_text().split("\n")
    assert lines[0] == "# Reproduction report (full)" and lines[1] == ""
    assert re.fullmatch(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\. Verdicts: yes: 1, error: 1", lines[2])
    assert lines[3:6] == [
        "",
        "| paper | claim | paper's figure | our figure | verdict | run dir |",
        "|---|---|---|---|---|---|",
    ]
    assert lines[6] == "| p | c\\|1 | a b | 2 | **yes** |  |"
    assert lines[8:] == ["", "## Figures", "", "**p: c|1**", "", "![p](../../figs/f.png)", "", ""]
