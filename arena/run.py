"""python -m arena.run: plan the arena's jobs, run them in one process or over MPI ranks, resume (README.md §7).

Examples:
  python -m arena.run --preset quick
  python -m arena.run --preset full --resume
  mpirun -n 2 python -m arena.run --preset full --resume
  python -m arena.run --workloads my_task.py --contestants adam_default,my_method.py --studies 1

One trial is one job with a seed drawn from (contestant, workload, study, trial, --seed). Jobs that depend on others
run in order inside one chain: a contestant's own tuner (``propose``) sees its study's earlier trials, and an LR
transferred inside a DAG family waits for the family base's search. Ranks take whole chains, first come first served
(an atomic claim file per chain), so the per-trial results do not depend on the number of ranks. A finished trial
leaves trial.pt (written atomically by common.checkpoint), summary.json and curve.csv; ``--resume`` skips it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from arena import loading, space
from arena.trial import TrialSpec, run_trial
from common.checkpoint import load_checkpoint, save_checkpoint
from common.cli import (
    ArgumentParser,
    UsageError,
    add_run_args,
    announce_resume,
    apply_preset,
    csv_list,
    positive_int,
    run_main,
)
from common.runs import Run, to_jsonable

__all__ = ["PRESETS", "Job", "Chain", "plan", "main", "load_summaries", "targets_for", "trial_dir"]

TARGETS_FILE = Path(__file__).resolve().parent / "targets.json"
SELF_BUDGET_FACTOR = 1.5  # AlgoPerf: self-tuning submissions get 1.5x the budget (README.md §5)
MAX_STEP_FACTOR = 3  # a trial stops after 3 x STEP_HINT steps (README.md §6)

ALL = "all"
PRESETS: dict[str, dict[str, Any]] = {
    "test": {
        "workloads": ["digits_mlp"],
        "contestants": ["adam_default", "adamw_cosine", "sls"],
        "studies": 1,
        "trials": 2,
    },
    "quick": {
        "workloads": ["digits_mlp", "mnist1d_cnn", "dag_mlp_deep"],
        "contestants": [ALL],
        "studies": 1,
        "trials": 3,
    },
    "full": {"workloads": ["cpu"], "contestants": [ALL], "studies": 3, "trials": 5},
}


@dataclass
class Job:
    contestant: str
    workload: str
    study: int
    trial: int
    kind: str = "trial"  # "trial" | "transfer"


@dataclass
class Chain:
    """Jobs that run in this order on one rank."""

    key: str
    jobs: list[Job] = field(default_factory=list)


def trial_dir(run_dir: Path, job: Job) -> Path:
    return run_dir / "trials" / job.workload / job.contestant / f"s{job.study}_t{job.trial}"


def _expand(names: Sequence[str], kind: str) -> list[str]:
    out: list[str] = []
    for n in names:
        if kind == "workload" and n in ("cpu", "gpu"):
            out += loading.list_workloads(n)
        elif n == ALL:
            out += loading.list_workloads("cpu") if kind == "workload" else loading.list_contestants()
        else:
            out.append(n)
    return list(dict.fromkeys(out))


def read_targets(path: Path = TARGETS_FILE) -> dict[str, Any]:
    if not path.is_file():
        return {}
    return json.loads(path.read_text()).get("workloads", {})


def targets_for(workload: ModuleType, table: dict[str, Any]) -> tuple[float, float]:
    """(validation target, budget in CPU-s): targets.json by NAME, else the workload's own TARGET and BUDGET."""
    entry = table.get(workload.NAME) or {}
    target, budget = entry.get("target"), entry.get("budget")
    if target is None:
        target = getattr(workload, "TARGET", None)
    if budget is None:
        budget = getattr(workload, "BUDGET", None)
    if target is None or budget is None:
        raise UsageError(
            f"workload {workload.NAME!r} has no target: run `python -m arena.targets --workloads {workload.NAME}` "
            "or define TARGET and BUDGET in its file"
        )
    return float(target), float(budget)


def _transfer_applies(contestant: ModuleType, workload: ModuleType) -> bool:
    base = getattr(workload, "FAMILY_BASE", None)
    return hasattr(contestant, "transfer") and base is not None and workload.NAME != base


def plan(
    workloads: dict[str, ModuleType], contestants: dict[str, ModuleType], studies: int, trials: int
) -> list[Chain]:
    """All chains of jobs, longest first (a deterministic order every rank computes alike).

    A contestant with ``transfer`` on a DAG family gets one chain per (family base, study): the base's search trials,
    then one transferred trial on every selected member (the base need not be selected itself).
    """
    chains: list[Chain] = []
    family: dict[tuple[str, str, int], Chain] = {}
    for wname, w in workloads.items():
        for cname, c in contestants.items():
            for s in range(studies):
                if c.RULESET == "self":
                    chains.append(Chain(f"{wname}/{cname}/s{s}", [Job(cname, wname, s, 0)]))
                    continue
                applicable = getattr(c, "applicable", None)
                if hasattr(c, "transfer") and getattr(w, "FAMILY_BASE", None) and (applicable is None or applicable(w)):
                    base = w.FAMILY_BASE
                    key = (cname, base, s)
                    if key not in family:
                        family[key] = Chain(
                            f"{base}/{cname}/s{s}/family", [Job(cname, base, s, t) for t in range(trials)]
                        )
                    if wname != base:
                        family[key].jobs.append(Job(cname, wname, s, 0, kind="transfer"))
                    continue
                if hasattr(c, "propose"):
                    chains.append(Chain(f"{wname}/{cname}/s{s}", [Job(cname, wname, s, t) for t in range(trials)]))
                    continue
                for t in range(trials):
                    chains.append(Chain(f"{wname}/{cname}/s{s}/t{t}", [Job(cname, wname, s, t)]))
    chains += list(family.values())
    order = {k: i for i, k in enumerate(c.key for c in chains)}
    chains.sort(key=lambda ch: (-len(ch.jobs), order[ch.key]))
    return chains


def _finished(path: Path) -> dict[str, Any] | None:
    marker = path / "trial.pt"
    if not marker.is_file():
        return None
    try:
        return load_checkpoint(marker)["summary"]
    except Exception:  # noqa: BLE001 - an unreadable marker is an unfinished trial
        return None


def _write_views(path: Path, summary: dict[str, Any]) -> None:
    """summary.json (without the curve) and curve.csv, each written to a temporary name and renamed."""
    plain = {k: v for k, v in summary.items() if k not in ("curve", "traceback")}
    tmp = path / f".summary.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(to_jsonable(plain), indent=2) + "\n")
    os.replace(tmp, path / "summary.json")
    lines = ["step,cpu,wall,val,loss"] + [
        f"{p['step']},{p['cpu']:.6g},{p['wall']:.6g},{p['val']!r},{p['loss']!r}" for p in summary.get("curve", [])
    ]
    tmp = path / f".curve.{os.getpid()}.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path / "curve.csv")
    if summary.get("traceback"):
        (path / "error.txt").write_text(summary["traceback"])


def load_summaries(run_dir: Path) -> list[dict[str, Any]]:
    """Every finished trial's summary under ``run_dir/trials`` (summary.json; trial.pt where that is missing)."""
    out = []
    for marker in sorted((Path(run_dir) / "trials").glob("*/*/*/trial.pt")):
        js = marker.with_name("summary.json")
        if js.is_file():
            try:
                out.append(json.loads(js.read_text()))
                continue
            except json.JSONDecodeError:
                pass
        s = _finished(marker.parent)
        if s is not None:
            out.append({k: v for k, v in s.items() if k != "curve"})
    return out


def _objective(s: dict[str, Any]) -> float:
    """Lower is better: the time to target of a hit; otherwise more than any budget, worse the further from target."""
    budget = float(s.get("budget", 1.0))
    if s.get("hit"):
        return float(s["time_to_target"])
    best = s.get("best_val")
    target = s.get("target")
    if best is None or target is None or not math.isfinite(float(best)):
        return 10.0 * budget
    gap = abs(float(target) - float(best)) / max(abs(float(target)), 1e-12)
    return budget * (2.0 + min(gap, 7.0))


class Runner:
    """Runs chains of jobs for one rank of one invocation."""

    def __init__(self, args, run_dir: Path, workloads, contestants, table, rank: int, log) -> None:
        self.args, self.run_dir = args, run_dir
        self.workloads, self.contestants, self.table = workloads, contestants, table
        self.rank, self.log = rank, log
        self.done = 0
        self.skipped = 0

    def _seed(self, job: Job) -> int:
        return space.stable_seed("trial", job.contestant, job.workload, job.study, job.trial, self.args.seed)

    def _hparams(self, job: Job, chain_results: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
        c, w = self.contestants[job.contestant], self.workloads[job.workload]
        if c.RULESET == "self":
            return {}, {}
        if job.kind == "transfer":
            base_name = w.FAMILY_BASE
            base_trials = [s for s in chain_results if s["workload"] == base_name and s["study"] == job.study]
            if not base_trials:
                raise RuntimeError(f"transfer to {job.workload} before the base search on {base_name}")
            sign = 1.0 if w.DIRECTION == "max" else -1.0
            hits = [s for s in base_trials if s.get("hit")]
            if hits:
                best = min(hits, key=lambda s: s["time_to_target"])
            else:
                finite = [s for s in base_trials if math.isfinite(float(s.get("best_val", math.nan)))]
                best = max(finite, key=lambda s: sign * float(s["best_val"])) if finite else base_trials[0]
            base_mod = loading.load_workload(base_name)
            hp = c.transfer(dict(best["hparams"]), base_mod, w)
            charged = sum(float(s.get("cpu", 0.0)) for s in base_trials)
            return hp, {"charged_once": charged, "transfer_from": base_name, "base_trial": best["trial"]}
        if hasattr(c, "propose"):
            history = [
                {**s, "objective": _objective(s)}
                for s in chain_results
                if s["workload"] == job.workload and s["study"] == job.study
            ]
            seed = space.stable_seed("propose", job.contestant, job.workload, job.study, self.args.seed)
            return dict(c.propose(history, seed, self.args.trials)), {}
        seed = space.stable_seed("draw", job.contestant, job.workload, job.study, self.args.seed)
        return space.draw(c.SEARCH_SPACE, self.args.trials, seed)[job.trial], {}

    def run_chain(self, chain: Chain) -> None:
        results: list[dict[str, Any]] = []
        for job in chain.jobs:
            path = trial_dir(self.run_dir, job)
            prior = _finished(path)
            if prior is not None:
                if not (path / "summary.json").is_file():
                    _write_views(path, prior)
                results.append(prior)
                self.skipped += 1
                continue
            w, c = self.workloads[job.workload], self.contestants[job.contestant]
            hp, extra = self._hparams(job, results)
            target, budget = targets_for(w, self.table)
            if c.RULESET == "self":
                budget *= SELF_BUDGET_FACTOR
            spec = TrialSpec(
                contestant=job.contestant,
                workload=job.workload,
                study=job.study,
                trial=job.trial,
                seed=self._seed(job),
                hparams=hp,
                target=target,
                budget=budget,
                max_steps=MAX_STEP_FACTOR * w.STEP_HINT,
                device=self.device,
                charged_once=float(extra.pop("charged_once", 0.0)),
                extra={"kind": job.kind, "ruleset": c.RULESET, "rank": self.rank, **extra},
            )
            summary = run_trial(spec, w, c)
            path.mkdir(parents=True, exist_ok=True)
            _write_views(path, summary)
            save_checkpoint(path / "trial.pt", {"summary": summary})
            results.append(summary)
            self.done += 1
            self.log(
                f"[rank {self.rank}] {job.workload} {job.contestant} s{job.study} t{job.trial}: {summary['status']} "
                f"cpu {summary['cpu']:.2f}s"
            )

    device = "cpu"


def _claim(claims: Path, key: str) -> bool:
    path = claims / (key.replace("/", "__") + ".claim")
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def warm_up(workloads: Sequence[ModuleType] = (), device: str = "cpu") -> None:
    """Pay the one-time costs of a process before its first trial, off every trial's books.

    torch's lazy initialisation (the first optimizer step imports torch._dynamo, about 1.5 CPU-s), one build of
    every workload (its data is then cached for the process, so a trial's build only makes the model), and a
    ``gc.freeze()`` of everything alive after that: the garbage collector no longer rescans the millions of objects
    of the imports during the trials (a full collection cost about 0.2 CPU-s).
    """
    import gc

    import torch

    p = torch.nn.Parameter(torch.zeros(4))
    for opt in (torch.optim.Adam([p]), torch.optim.AdamW([p]), torch.optim.SGD([p], lr=0.1, momentum=0.9)):
        (p * p).sum().backward()
        opt.step()
        opt.zero_grad()
    for w in workloads:
        w.build(0, torch.device(device))
    gc.collect()
    gc.freeze()


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m arena.run", description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="quick", help="test | quick | full")
    p.add_argument(
        "--workloads",
        type=csv_list(str),
        default=None,
        metavar="A,B",
        help="workload names, .py paths, 'cpu' or 'gpu' (default: the preset's)",
    )
    p.add_argument(
        "--contestants",
        type=csv_list(str),
        default=None,
        metavar="X,Y",
        help="contestant names, .py paths or 'all' (default: the preset's)",
    )
    p.add_argument("--studies", type=positive_int, default=None, metavar="S", help="studies (default: the preset's)")
    p.add_argument(
        "--trials",
        type=positive_int,
        default=None,
        metavar="N",
        help="trials per study of an external contestant (default: the preset's)",
    )
    p.add_argument("--resume", action="store_true", help="keep finished trials of the run folder and run the rest")
    p.add_argument("--targets", default=str(TARGETS_FILE), metavar="FILE", help="targets and budgets (JSON)")
    p.add_argument("--data_root", default=None, metavar="DIR", help="datasets folder (default: the repo's data/)")
    p.add_argument("--no_report", action="store_true", help="skip REPORT.md at the end")
    add_run_args(p, tensorboard=False)
    return p


def resolve(args) -> tuple[dict[str, ModuleType], dict[str, ModuleType], dict[str, Any]]:
    """Load and check the selected workloads and contestants (bad input raises UsageError / MissingInputError)."""
    from arena.workloads import _common
    from common.runtime import resolve_device

    if args.data_root:
        _common.DATA_ROOT = str(Path(args.data_root).resolve())
    device = resolve_device(args.device)
    workloads = {}
    for spec in _expand(args.workloads, "workload"):
        w = loading.load_workload(spec)
        if getattr(w, "TIER", "cpu") == "gpu":
            if device.type != "cuda":
                raise UsageError(f"workload {w.NAME} is in the GPU tier: it needs --device cuda")
            if hasattr(w, "check_data"):
                w.check_data()
        workloads[w.NAME] = w
    contestants = {}
    for spec in _expand(args.contestants, "contestant"):
        c = loading.load_contestant(spec)
        space.check_space(getattr(c, "SEARCH_SPACE", {}) or {}, f"contestant {c.NAME}")
        contestants[c.NAME] = c
    targets_path = Path(args.targets)
    if args.targets != str(TARGETS_FILE) and not targets_path.is_file():
        raise UsageError(f"targets file not found: {args.targets}")
    table = read_targets(targets_path)
    for w in workloads.values():
        targets_for(w, table)
    # a family member without its base in this run still needs the base's search: load the base workload too
    for c in contestants.values():
        for w in list(workloads.values()):
            if _transfer_applies(c, w) and w.FAMILY_BASE not in workloads:
                loading.load_workload(w.FAMILY_BASE)
    return workloads, contestants, table


def _run_dir(args) -> Path:
    """The run folder; a folder with finished trials and no --resume is refused (README.md §7)."""
    if args.name is not None and (not args.name or "/" in args.name or args.name in (".", "..")):
        raise UsageError(f"invalid run name {args.name!r}: use a plain folder name")
    run_dir = Path(args.out) / "arena" / (args.name or args.preset)
    if (run_dir / "trials").is_dir() and not args.resume:
        if any((run_dir / "trials").glob("*/*/*/trial.pt")):
            raise UsageError(
                f"{run_dir} holds finished trials: pass --resume to continue it or --name NEW for a new run"
            )
    return run_dir


def _with_family_bases(workloads: dict[str, ModuleType], contestants: dict[str, ModuleType]) -> dict[str, ModuleType]:
    """The run's workloads plus the base of every family a transferring contestant needs (its search runs there)."""
    out = dict(workloads)
    for c in contestants.values():
        for w in list(workloads.values()):
            if _transfer_applies(c, w):
                out.setdefault(w.FAMILY_BASE, loading.load_workload(w.FAMILY_BASE))
    return out


def _write_config(run: Run, args, argv, workloads, contestants, size: int) -> None:
    run.write_json(
        "config.json",
        {
            "preset": args.preset,
            "workloads": list(workloads),
            "contestants": list(contestants),
            "studies": args.studies,
            "trials": args.trials,
            "seed": args.seed,
            "ranks": size,
            "device": args.device,
            "targets": args.targets,
            "command": " ".join(["python -m arena.run", *(argv if argv is not None else sys.argv[1:])]),
        },
    )


def main(argv: Sequence[str] | None = None) -> int:
    entered = time.time()
    parser = build_parser()
    args = parser.parse_args(argv)
    apply_preset(args, PRESETS[args.preset], getattr(parser, "explicit", set()))
    from common.distributed import mpi_comm, mpi_rank, mpi_size
    from common.runtime import resolve_device

    rank, size = mpi_rank(), mpi_size()
    comm = mpi_comm() if size > 1 else None
    workloads, contestants, table = resolve(args)
    run_dir = _run_dir(args)
    all_workloads = _with_family_bases(workloads, contestants)
    chains = plan(workloads, contestants, args.studies, args.trials)

    token = uuid.uuid4().hex if rank == 0 else None
    if comm is not None:
        token = comm.bcast(token, root=0)
    claims = run_dir / ".claims" / token
    run = Run(run_dir, primary=rank == 0)
    if rank == 0:
        claims.mkdir(parents=True, exist_ok=True)
        finished = len(list((run_dir / "trials").glob("*/*/*/trial.pt")))
        _write_config(run, args, argv, workloads, contestants, size)
        if args.resume and finished:
            announce_resume(run_dir, f"{finished} finished trials")
    import torch

    torch.set_num_threads(1)
    device = str(resolve_device(args.device))
    warm_up(list(all_workloads.values()), device)

    def log(msg: str) -> None:
        if not args.no_progress:
            print(msg, flush=True)

    runner = Runner(args, run_dir, all_workloads, contestants, table, rank, log)
    runner.device = device
    if comm is not None:
        comm.Barrier()  # every rank has started up: the trial phase begins together
    started = time.time()
    for chain in chains:
        if _claim(claims, chain.key):
            runner.run_chain(chain)
    if comm is not None:
        comm.Barrier()
    ended = time.time()
    run_here = comm.allreduce(runner.done) if comm is not None else runner.done
    if rank == 0:
        shutil.rmtree(claims, ignore_errors=True)
        summaries = load_summaries(run_dir)
        if not args.no_report:
            from arena.report import write_report

            write_report(run_dir, list(workloads), list(contestants))
        run.finish(
            {
                "trials_finished": len(summaries),
                "trials_run_now": run_here,
                "ranks": size,
                "startup_wall_s": round(started - entered, 3),
                "trials_wall_s": round(ended - started, 3),
                "wall_time_s": round(time.time() - entered, 3),
            }
        )
    return 0


if __name__ == "__main__":
    run_main(main)
