"""Arena speed goals (arena/README.md §9): harness overhead per trial and MPI scaling of trials per hour.

    python benchmarks/arena_bench.py            # prints the ratio table, writes results/bench/arena.json

A1 harness overhead: the quick preset's trials on one workload (digits_mlp, every contestant, 3 trials per study)
   run in this process after its one-time start-up (imports, and arena.run.warm_up: torch's lazy initialisation,
   the workload's data, gc.freeze); overhead = the process CPU of the whole run (planning, building, batching,
   bookkeeping, files) minus the clocked init + step CPU minus the evaluation CPU, per trial, against a budget of
   5 % of the mean clocked CPU of a trial (ratio = budget / ours, pass when >= 1). The evaluation's share (the
   workload's work, off the clock) and the start-up CPU (paid once per process, not per trial) are reported beside.
A2 trials per hour on 2 MPI ranks against 1 rank, measured on the trial phase: the same 32 budget-bound trials
   (adamw_cosine and sgd_nesterov_cosine on digits_mlp, 16 trials each) as `python -m arena.run` and
   `mpirun -n 2 python -m arena.run`; each run's summary.json records the wall time from the moment every rank has
   started up (imports, warm-up; a barrier) to the last trial's end, and the ratio of those is the ratio of trials
   per hour (pass when >= 1.8). The start-up, about 5 CPU-s per rank that runs in parallel, is paid once per
   command and amortised over the hundreds of trials of a full run; the whole-command wall times are reported
   beside it (A2w, no target). Only meaningful on an otherwise idle machine with 2 free cores: the notes record
   the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common.bench import BenchReport

REPO = Path(__file__).resolve().parents[1]


def bench_overhead(report: BenchReport, out: Path) -> None:
    from arena import loading
    from arena import run as arena_run

    # one-time start-up (imports of every paper package, propulate, the warm-up) is not a per-trial cost: pay it first
    for name in loading.list_contestants():
        loading.load_contestant(name)
    workload = loading.load_workload("digits_mlp")
    import propulate  # noqa: F401 - propulate_adamw imports it at its first proposal

    c0 = time.process_time()
    arena_run.warm_up([workload])
    startup = time.process_time() - c0

    argv = [
        "--preset",
        "quick",
        "--workloads",
        "digits_mlp",
        "--out",
        str(out),
        "--name",
        "overhead",
        "--no_report",
        "--no_progress",
    ]
    c0 = time.process_time()
    arena_run.main(argv)
    total = time.process_time() - c0
    summaries = [s for s in arena_run.load_summaries(out / "arena" / "overhead") if s.get("status") != "n/a"]
    clocked = sum(float(s["cpu"]) for s in summaries)
    evals = sum(float(s.get("eval_cpu", 0.0)) for s in summaries)
    n = len(summaries)
    overhead = (total - clocked - evals) / n
    budget = 0.05 * clocked / n
    report.add(
        "A1",
        "harness CPU outside init/step/eval per trial",
        budget,
        overhead,
        target=1.0,
        note=f"{n} trials, mean clocked {clocked / n:.2f} s, budget = 5% of it",
    )
    report.add(
        "A1e",
        "evaluation CPU per trial (off the clock)",
        budget,
        evals / n,
        target=None,
        note=f"{100 * evals / clocked:.1f}% of the clocked CPU",
    )
    report.add(
        "A1s",
        "warm-up CPU, once per process",
        budget,
        startup,
        target=None,
        note="torch lazy init + data + gc.freeze; not per trial",
    )


A2_TRIALS = 16  # per contestant: 32 trials in all


def _arena_cmd(prefix: list[str], out: Path, name: str) -> tuple[float, float]:
    """(wall of the whole command, wall of its trial phase from summary.json) for one arena run."""
    cmd = [
        *prefix,
        sys.executable,
        "-m",
        "arena.run",
        "--workloads",
        "digits_mlp",
        "--contestants",
        "adamw_cosine,sgd_nesterov_cosine",
        "--studies",
        "1",
        "--trials",
        str(A2_TRIALS),
        "--out",
        str(out),
        "--name",
        name,
        "--no_report",
        "--no_progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # OpenMPI refuses root without these (the Makefile sets them)
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed: {proc.stderr.strip()[-500:]}")
    wall = time.time() - t0
    summary = json.loads((out / "arena" / name / "summary.json").read_text())
    return wall, float(summary["trials_wall_s"])


def bench_mpi(report: BenchReport, out: Path) -> None:
    mpirun = str(Path(sys.executable).parent / "mpirun")
    load0 = _load()
    one_cmd, one = _arena_cmd([], out, "one_rank")
    two_cmd, two = _arena_cmd([mpirun, "--oversubscribe", "-n", "2"], out, "two_ranks")
    load = f"{os.cpu_count()} CPUs, load average {load0:.1f} before, {_load():.1f} at the end"
    n = 2 * A2_TRIALS
    # ratio = (trials/hour on 2 ranks) / (trials/hour on 1 rank) = wall(1 rank) / wall(2 ranks)
    report.add("A2", f"{n} trials, trial phase: 1 rank / 2 ranks", one, two, target=1.8, note=load)
    report.add("A2w", f"{n} trials, whole command: 1 rank / 2 ranks", one_cmd, two_cmd, note="start-up included")


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--skip_mpi", action="store_true", help="only the overhead row")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    report = BenchReport("arena")
    with tempfile.TemporaryDirectory() as tmp:
        bench_overhead(report, Path(tmp))
        if not args.skip_mpi:
            bench_mpi(report, Path(tmp))
    report.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
