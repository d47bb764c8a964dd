"""mpirun -n 2 python -m arena.run gives the same per-trial results as one rank (arena/README.md §7)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from arena.run import load_summaries

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TINY = str(HERE / "plugin_tiny_mlp.py")
TINY_DAG = str(HERE / "plugin_tiny_dag.py")


def _per_trial(run_dir: Path) -> dict:
    out = {}
    for s in load_summaries(run_dir):
        key = (s["workload"], s["contestant"], s["study"], s["trial"])
        curve = run_dir / "trials" / s["workload"] / s["contestant"] / f"s{s['study']}_t{s['trial']}" / "curve.csv"
        with open(curve, newline="") as handle:
            rows = [(r["step"], r["val"], r["loss"]) for r in csv.DictReader(handle)]
        out[key] = (s["status"], s["steps"], json.dumps(s["hparams"], sort_keys=True), s.get("best_val"), rows)
    return out


@pytest.mark.mpi
def test_two_ranks_match_one_rank(mpirun, tmp_path):
    targets = tmp_path / "targets.json"
    budgets = {"target": 0.99, "budget": 100.0}  # no CPU-time stop: the trials end on target or steps only
    targets.write_text(json.dumps({"workloads": {"plugin_tiny_mlp": budgets, "plugin_tiny_dag": budgets}}))
    common = [
        "-m",
        "arena.run",
        "--workloads",
        f"{TINY},{TINY_DAG}",
        "--contestants",
        "propulate_adamw,sls,arch_scaled",
        "--studies",
        "1",
        "--trials",
        "3",
        "--targets",
        str(targets),
        "--out",
        str(tmp_path),
        "--no_report",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, *common, "--name", "one"], cwd=REPO, env=env, capture_output=True, text=True, timeout=400
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(
        [*mpirun, "-n", "2", sys.executable, *common, "--name", "two"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = _per_trial(tmp_path / "arena" / "one"), _per_trial(tmp_path / "arena" / "two")
    assert len(a) == 2 * (3 + 1 + 3)  # per workload: propulate 3, sls 1, arch_scaled 3 (n/a, or the base search)
    assert a == b
    ranks = {s["rank"] for s in load_summaries(tmp_path / "arena" / "two")}
    assert ranks == {0, 1}, "both ranks should have run trials"
