"""python -m arena.targets: set every workload's validation target and CPU-second budget (README.md §5).

For each workload, adamw_cosine and sgd_nesterov_cosine each run ``--trials`` quasi-random settings (scrambled
Halton points of their search spaces) for STEP_HINT steps without a target; the setting with the best validation
metric over both is rerun with ``--reruns`` seeds; the target is the median over the reruns of their best validation
metric, the budget 4/3 of the median CPU-seconds the reruns needed to first reach it. arena/targets.json records
both with the command, commit and date. MPI-parallel (``mpirun -n N python -m arena.targets``) and resumable.

  python -m arena.targets --workloads cpu --resume
  python -m arena.targets --workloads cpu --only_missing --resume    # fill the entries that are still empty
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from arena import loading, space
from arena.run import TARGETS_FILE, Job, _claim, _expand, _finished, _write_views, read_targets, trial_dir, warm_up
from arena.score import median
from arena.trial import TrialSpec, run_trial
from common.checkpoint import save_checkpoint
from common.cli import ArgumentParser, UsageError, add_run_args, csv_list, positive_int, run_main

__all__ = ["BASELINES", "BUDGET_FACTOR", "derive", "main"]

BASELINES = ("adamw_cosine", "sgd_nesterov_cosine")
BUDGET_FACTOR = 4.0 / 3.0


def derive(reruns: list[dict[str, Any]], direction: str) -> tuple[float, float, list[float]]:
    """(target, budget, times): target = median best metric, budget = 4/3 x median CPU-s to first reach it."""
    target = median([float(s["best_val"]) for s in reruns])
    times = []
    for s in reruns:
        hit = [p["cpu"] for p in s["curve"] if loading.meets(float(p["val"]), target, direction)]
        times.append(min(hit) if hit else math.inf)
    return target, BUDGET_FACTOR * median(times), times


def _run(job: Job, spec: TrialSpec, run_dir: Path, workload, contestant, log) -> dict[str, Any]:
    path = trial_dir(run_dir, job)
    prior = _finished(path)
    if prior is not None:
        return prior
    summary = run_trial(spec, workload, contestant)
    path.mkdir(parents=True, exist_ok=True)
    _write_views(path, summary)
    save_checkpoint(path / "trial.pt", {"summary": summary})
    log(f"{job.workload} {job.contestant} t{job.trial}: best {summary.get('best_val')} cpu {summary['cpu']:.2f}s")
    return summary


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m arena.targets", description=__doc__.split("\n")[0])
    p.add_argument("--workloads", type=csv_list(str), default=["cpu"], metavar="A,B", help="names, paths or 'cpu'")
    p.add_argument("--trials", type=positive_int, default=16, metavar="N", help="quasi-random trials per baseline")
    p.add_argument("--reruns", type=positive_int, default=5, metavar="R", help="seeds of the best setting")
    p.add_argument("--write", default=str(TARGETS_FILE), metavar="FILE", help="targets JSON to update")
    p.add_argument("--resume", action="store_true", help="keep finished target-setting trials")
    p.add_argument("--only_missing", action="store_true", help="only the workloads without a target in --write")
    add_run_args(p, devices=("cpu", "cuda"), tensorboard=False, default_device="cpu")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from common.distributed import mpi_comm, mpi_rank, mpi_size

    rank, size = mpi_rank(), mpi_size()
    comm = mpi_comm() if size > 1 else None
    workloads = {}
    for name in _expand(args.workloads, "workload"):
        w = loading.load_workload(name)
        if getattr(w, "TIER", "cpu") == "gpu" and not args.device.startswith("cuda"):
            raise UsageError(f"workload {w.NAME} is in the GPU tier: it needs --device cuda")
        workloads[w.NAME] = w
    if args.only_missing:
        have = read_targets(Path(args.write))
        workloads = {n: w for n, w in workloads.items() if (have.get(n) or {}).get("target") is None}
        if not workloads:
            print(f"targets: every selected workload has a target in {args.write}")
            return 0
    baselines = {b: loading.load_contestant(b) for b in BASELINES}
    run_dir = Path(args.out) / "arena" / (args.name or "targets")
    if (run_dir / "trials").is_dir() and not args.resume and any((run_dir / "trials").glob("*/*/*/trial.pt")):
        raise UsageError(f"{run_dir} holds finished trials: pass --resume or --name NEW")
    token = uuid.uuid4().hex if rank == 0 else None
    if comm is not None:
        token = comm.bcast(token, root=0)
    claims = run_dir / ".claims" / token
    if rank == 0:
        claims.mkdir(parents=True, exist_ok=True)
    if comm is not None:
        comm.Barrier()
    import torch

    torch.set_num_threads(1)
    warm_up()

    def log(msg: str) -> None:
        if not args.no_progress:
            print(f"[rank {rank}] {msg}", flush=True)

    def spec_for(job: Job, hp: dict, seed: int, w) -> TrialSpec:
        return TrialSpec(
            job.contestant,
            job.workload,
            job.study,
            job.trial,
            seed,
            hp,
            None,
            math.inf,
            w.STEP_HINT,
            device=args.device if args.device != "auto" else "cpu",
            extra={"kind": "targets"},
        )

    draws = {
        (b, wn): space.draw(baselines[b].SEARCH_SPACE, args.trials, space.stable_seed("targets", b, wn, args.seed))
        for b in BASELINES
        for wn in workloads
    }
    # phase 1: the quasi-random search of both baselines (most expensive workloads first)
    jobs = [Job(b, wn, 0, i) for wn in workloads for b in BASELINES for i in range(args.trials)]
    for job in jobs:
        if _claim(claims, f"p1/{job.workload}/{job.contestant}/{job.trial}"):
            w = workloads[job.workload]
            seed = space.stable_seed("targets-trial", job.contestant, job.workload, job.trial, args.seed)
            _run(
                job,
                spec_for(job, draws[(job.contestant, job.workload)][job.trial], seed, w),
                run_dir,
                w,
                baselines[job.contestant],
                log,
            )
    if comm is not None:
        comm.Barrier()
    # phase 2: the best setting over both baselines, rerun with fresh seeds
    best: dict[str, tuple[str, dict]] = {}
    for wn, w in workloads.items():
        sign = 1.0 if w.DIRECTION == "max" else -1.0
        cands = []
        for b in BASELINES:
            for i in range(args.trials):
                s = _finished(trial_dir(run_dir, Job(b, wn, 0, i)))
                if s is not None and math.isfinite(float(s.get("best_val", math.nan))):
                    cands.append((sign * float(s["best_val"]), b, i, s["hparams"]))
        if not cands:
            raise RuntimeError(f"no finite target-setting trial on {wn}")
        _, b, i, hp = max(cands, key=lambda x: (x[0], -BASELINES.index(x[1]), -x[2]))
        best[wn] = (b, hp, i)
    for wn, (b, hp, _) in best.items():
        for k in range(args.reruns):
            job = Job(b, wn, 1, k)
            if _claim(claims, f"p2/{wn}/{k}"):
                seed = space.stable_seed("targets-rerun", wn, k, args.seed)
                _run(job, spec_for(job, hp, seed, workloads[wn]), run_dir, workloads[wn], baselines[b], log)
    if comm is not None:
        comm.Barrier()
    if rank != 0:
        return 0
    out_path = Path(args.write)
    doc = json.loads(out_path.read_text()) if out_path.is_file() else {}
    table = doc.get("workloads", {})
    for wn, (b, hp, i) in best.items():
        reruns = [_finished(trial_dir(run_dir, Job(b, wn, 1, k))) for k in range(args.reruns)]
        w = workloads[wn]
        target, budget, times = derive(reruns, w.DIRECTION)
        table[wn] = {
            "metric": w.METRIC,
            "direction": w.DIRECTION,
            "target": target,
            "budget": budget if math.isfinite(budget) else None,
            "best_baseline": b,
            "best_hparams": hp,
            "best_trial": i,
            "rerun_best": [float(s["best_val"]) for s in reruns],
            "rerun_cpu_to_target": [t if math.isfinite(t) else None for t in times],
            "step_hint_cpu": median([float(s["cpu"]) for s in reruns]),
            "tier": getattr(w, "TIER", "cpu"),
        }
    for gpu in loading.list_workloads("gpu"):
        table.setdefault(
            gpu,
            {
                "target": None,
                "budget": None,
                "tier": "gpu",
                "note": "empty until a GPU run of `python -m arena.targets --workloads gpu --device cuda` fills it",
            },
        )
    doc = {
        "provenance": {
            "command": "python -m arena.targets " + " ".join(argv if argv is not None else sys.argv[1:]),
            "commit": _commit(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "ranks": size,
            "trials_per_baseline": args.trials,
            "reruns": args.reruns,
            "rule": "target = median over reruns of the best validation metric of the best setting of 2 x "
            f"{args.trials} quasi-random trials; budget = 4/3 x median CPU-s to first reach it",
        },
        "workloads": dict(sorted(table.items())),
    }
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(out_path)
    import shutil

    shutil.rmtree(claims, ignore_errors=True)
    print(f"targets: {out_path} ({len(best)} workloads)")
    print(f"run dir: {run_dir}")
    return 0


if __name__ == "__main__":
    run_main(main)
