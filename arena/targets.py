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
import shutil
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
from common.report import git_commit

__all__ = ["BASELINES", "BUDGET_FACTOR", "derive", "main"]

BASELINES = ("adamw_cosine", "sgd_nesterov_cosine")
BUDGET_FACTOR = 4.0 / 3.0
GPU_NOTE = "empty until a GPU run of `python -m arena.targets --workloads gpu --device cuda` fills it"

REPO_ROOT = Path(__file__).resolve().parents[1]


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


def _select(args) -> dict[str, Any]:
    """The workloads to set (GPU ones only with --device cuda; with --only_missing those without a target yet)."""
    workloads = {}
    for name in _expand(args.workloads, "workload"):
        w = loading.load_workload(name)
        if getattr(w, "TIER", "cpu") == "gpu" and not args.device.startswith("cuda"):
            raise UsageError(f"workload {w.NAME} is in the GPU tier: it needs --device cuda")
        workloads[w.NAME] = w
    if args.only_missing:
        have = read_targets(Path(args.write))
        workloads = {n: w for n, w in workloads.items() if (have.get(n) or {}).get("target") is None}
    return workloads


def _spec(job: Job, hp: dict, seed: int, w, device: str) -> TrialSpec:
    """A target-setting trial: STEP_HINT steps, no target, no budget."""
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
        device=device if device != "auto" else "cpu",
        extra={"kind": "targets"},
    )


def _search(args, run_dir: Path, claims: Path, workloads: dict, baselines: dict, log) -> None:
    """Phase 1: the quasi-random search of both baselines on every workload (study 0)."""
    for wn, w in workloads.items():
        for b in BASELINES:
            draws = space.draw(baselines[b].SEARCH_SPACE, args.trials, space.stable_seed("targets", b, wn, args.seed))
            for i in range(args.trials):
                if _claim(claims, f"p1/{wn}/{b}/{i}"):
                    job = Job(b, wn, 0, i)
                    seed = space.stable_seed("targets-trial", b, wn, i, args.seed)
                    _run(job, _spec(job, draws[i], seed, w, args.device), run_dir, w, baselines[b], log)


def _pick_best(run_dir: Path, workloads: dict, trials: int) -> dict[str, tuple[str, dict, int]]:
    """Per workload (baseline, hparams, trial) of the best validation metric over both searches (ties: the first)."""
    best: dict[str, tuple[str, dict, int]] = {}
    for wn, w in workloads.items():
        sign = 1.0 if w.DIRECTION == "max" else -1.0
        cands = []
        for b in BASELINES:
            for i in range(trials):
                s = _finished(trial_dir(run_dir, Job(b, wn, 0, i)))
                if s is not None and math.isfinite(float(s.get("best_val", math.nan))):
                    cands.append((sign * float(s["best_val"]), b, i, s["hparams"]))
        if not cands:
            raise RuntimeError(f"no finite target-setting trial on {wn}")
        _, b, i, hp = max(cands, key=lambda x: (x[0], -BASELINES.index(x[1]), -x[2]))
        best[wn] = (b, hp, i)
    return best


def _rerun(args, run_dir: Path, claims: Path, workloads: dict, baselines: dict, best: dict, log) -> None:
    """Phase 2: the best setting of each workload rerun with fresh seeds (study 1)."""
    for wn, (b, hp, _) in best.items():
        for k in range(args.reruns):
            if _claim(claims, f"p2/{wn}/{k}"):
                job = Job(b, wn, 1, k)
                seed = space.stable_seed("targets-rerun", wn, k, args.seed)
                _run(job, _spec(job, hp, seed, workloads[wn], args.device), run_dir, workloads[wn], baselines[b], log)


def _entry(w, b: str, hp: dict, i: int, reruns: list[dict[str, Any]], set_by: dict[str, Any]) -> dict[str, Any]:
    target, budget, times = derive(reruns, w.DIRECTION)
    return {
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
        "set_by": set_by,
    }


def _write_table(args, argv, run_dir: Path, workloads: dict, best: dict, size: int, commit: str) -> Path:
    """Update --write: the new entries (each with the command, commit and date that set it), GPU placeholders, and
    the provenance of this run; an older entry without its own ``set_by`` gets the provenance it was written with."""
    out_path = Path(args.write)
    doc = json.loads(out_path.read_text()) if out_path.is_file() else {}
    table = doc.get("workloads", {})
    old = doc.get("provenance") or {}
    for entry in table.values():
        if entry.get("target") is not None and "set_by" not in entry and old:
            entry["set_by"] = {k: old.get(k) for k in ("command", "commit", "date")}
    provenance = {
        "command": (f"mpirun -n {size} " if size > 1 else "")
        + "python -m arena.targets "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "commit": commit,  # the code that ran: HEAD when the run started
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "ranks": size,
        "trials_per_baseline": args.trials,
        "reruns": args.reruns,
        "rule": "target = median over reruns of the best validation metric of the best setting of 2 x "
        f"{args.trials} quasi-random trials; budget = 4/3 x median CPU-s to first reach it",
    }
    set_by = {k: provenance[k] for k in ("command", "commit", "date")}
    for wn, (b, hp, i) in best.items():
        reruns = [_finished(trial_dir(run_dir, Job(b, wn, 1, k))) for k in range(args.reruns)]
        table[wn] = _entry(workloads[wn], b, hp, i, reruns, set_by)
    for gpu in loading.list_workloads("gpu"):
        table.setdefault(gpu, {"target": None, "budget": None, "tier": "gpu", "note": GPU_NOTE})
    doc = {"provenance": provenance, "workloads": dict(sorted(table.items()))}
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(out_path)
    return out_path


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commit = git_commit(REPO_ROOT)
    from common.distributed import mpi_comm, mpi_rank, mpi_size

    rank, size = mpi_rank(), mpi_size()
    comm = mpi_comm() if size > 1 else None
    workloads = _select(args)
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
    import torch

    torch.set_num_threads(1)
    warm_up(list(workloads.values()), args.device if args.device != "auto" else "cpu")
    if comm is not None:
        comm.Barrier()

    def log(msg: str) -> None:
        if not args.no_progress:
            print(f"[rank {rank}] {msg}", flush=True)

    _search(args, run_dir, claims, workloads, baselines, log)
    if comm is not None:
        comm.Barrier()
    best = _pick_best(run_dir, workloads, args.trials)
    _rerun(args, run_dir, claims, workloads, baselines, best, log)
    if comm is not None:
        comm.Barrier()
    if rank != 0:
        return 0
    out_path = _write_table(args, argv, run_dir, workloads, best, size, commit)
    shutil.rmtree(claims, ignore_errors=True)
    print(f"targets: {out_path} ({len(best)} workloads)")
    print(f"run dir: {run_dir}")
    return 0


if __name__ == "__main__":
    run_main(main)
