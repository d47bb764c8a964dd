"""DESIGN.md §7.16: the full preregistered preset runs; the claim itself is recorded, never asserted."""

from __future__ import annotations

import csv
import json
import math

import pytest

from autowu import reproduce


@pytest.mark.slow
def test_full_preset(tmp_path):
    run_dir = tmp_path / "full"
    reproduce.main(["--preset", "full", "--jobs", "2", "--save-dir", str(run_dir), "--no-progress"])
    with open(run_dir / "runs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 48, "DESIGN.md §7.16: 3 AutoWU + 45 baseline runs"
    assert all(math.isfinite(float(r["test_acc"])) and math.isfinite(float(r["train_loss"])) for r in rows)
    auto = [r for r in rows if r["sched"] == "autowu"]
    for r in auto:
        assert r["reason"] == "test", f"DESIGN.md §7.16: AutoWU seed {r['seed']} switched by {r['reason']}"
        assert 3 <= int(r["switch_epoch"]) < 60, f"DESIGN.md §7.16: switch epoch {r['switch_epoch']} not in [3, 60)"
        assert 1e-3 <= float(r["eta_sw"]) <= 1e-1, f"DESIGN.md §7.16: eta_sw {r['eta_sw']} not in [1e-3, 1e-1]"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["verdict"] in ("PASS", "FAIL") and summary["complete"], (
        "DESIGN.md §7.16: summary.json holds the verdict"
    )
    for name in ("grid.png", "ramp_loss.png", "lr.png"):
        assert (run_dir / name).is_file()
