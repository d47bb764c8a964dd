"""Demo rows reuse an earlier result only through a matching stamp (DESIGN.md §6.4); a bare summary.json is ignored."""

from __future__ import annotations

import json

import pytest

from autowu import demo

SUMMARY = {
    "autowu_mean": 95.0,
    "median": 94.0,
    "best": 95.5,
    "best_cell": "0.03/0.05",
    "verdict": "PASS",
    "switch_epochs": [47],
    "reasons": ["test"],
    "eta_sw": [0.02],
    "epochs": 120,
    "complete": True,
}


@pytest.fixture
def fake_grid(monkeypatch):
    """reproduce.main replaced by a writer of SUMMARY into --save-dir; counts the calls."""
    calls = []

    def fake_main(argv):
        run_dir = argv[argv.index("--save-dir") + 1]
        calls.append(argv)
        from pathlib import Path

        Path(run_dir).mkdir(parents=True, exist_ok=True)
        (Path(run_dir) / "summary.json").write_text(json.dumps({**SUMMARY, "autowu_mean": 95.0 + len(calls)}))

    monkeypatch.setattr(demo.reproduce, "main", fake_main)
    monkeypatch.setattr(demo, "REPRODUCE_ROOT", None)  # the full preset's cache is not consulted in these tests
    monkeypatch.setattr(demo, "_full_note", lambda: "full preset: not run")
    return calls


def test_grid_row_computes_then_reuses_its_stamp(tmp_path, fake_grid):
    first = demo._demo_grid_row(tmp_path)
    assert len(fake_grid) == 1 and "computed now" in first.our_figure and "96.00" in first.our_figure
    second = demo._demo_grid_row(tmp_path)
    assert len(fake_grid) == 1, "a matching stamp must be reused, not recomputed"
    assert "cached from" in second.our_figure and "96.00" in second.our_figure
    assert first.verdict == second.verdict == "yes"


def test_bare_or_foreign_summary_is_never_trusted(tmp_path, fake_grid):
    run_dir = tmp_path / "reproduce_demo"
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps({**SUMMARY, "autowu_mean": 99.9}))  # planted, unstamped
    row = demo._demo_grid_row(tmp_path)
    assert len(fake_grid) == 1 and "99.90" not in row.our_figure
    stamped = json.loads((run_dir / demo.STAMPED).read_text())
    stamped["stamp"]["config_sha256"] = "0" * 64  # another configuration
    stamped["summary"]["autowu_mean"] = 99.9
    (run_dir / demo.STAMPED).write_text(json.dumps(stamped))
    row = demo._demo_grid_row(tmp_path)
    assert len(fake_grid) == 2 and "99.90" not in row.our_figure, "a stamp of another configuration is not reused"


def test_stamp_depends_on_the_grid_arguments():
    from common.report import stamp

    a = stamp("autowu", {"argv": demo.grid_argv("demo")})
    b = stamp("autowu", {"argv": demo.grid_argv("full")})
    c = stamp("autowu", {"argv": demo.grid_argv("full", "lamb", "0.01")})
    assert len({a["config_sha256"], b["config_sha256"], c["config_sha256"]}) == 3
