"""Propulate LR search over MPI (DESIGN.md §3.5; the paper's per-(task, approach, K) constant LR).

One float trait lr_log10 in [lo, hi], lr = 10^lr_log10. One propulate 1.2.2 Propulator (no islands), rng =
Random(seed + rank), COMM_WORLD, get_default_propagator(pop_size, limits, 0.7, 0.4, 0.1, 0.05). The loss is a
generator (so the BaselinePruner can cancel runs); the individual's loss is the last yielded value: f(x_t) per step
(math) or the validation loss per epoch (nn). Non-finite losses and exceptions score +inf and the search goes on.

Resume decisions (wrapping propulate 1.2.2): the checkpoint is validated before the Propulator is built (unreadable
.pickle -> .bkp; both unreadable -> moved aside as *.corrupt and a fresh start); a rank without individuals in the
checkpoint starts at generation 0 (1.2.2 crashes on max([])); --num_evaluations is a total, so a re-run evaluates
only the remainder and a finished search evaluates nothing.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import random
import shutil
import tempfile
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from common.cli import UsageError
from common.runs import write_csv
from forward_grad.function_optimization import descend, get_function
from forward_grad.function_optimization.optimize import Approach
from forward_grad.lr_search.pruning import BaselinePruner

__all__ = [
    "SearchConfig",
    "SearchFailedError",
    "SearchResult",
    "load_population",
    "preflight",
    "run_search",
    "task_label",
    "validate_checkpoint",
]

CKPT = "island_0_ckpt.pickle"
EVAL_FIELDS = ["time", "rank", "generation", "lr_log10", "lr", "loss", "status", "steps", "eval_seconds"]


@dataclass
class SearchConfig:
    mode: str  # math | nn
    limits: tuple[float, float] = (-6.0, 0.0)
    num_evaluations: int = 32
    population_size: int = 8
    surrogate_margin: float = 0.5
    surrogate_patience: float = 0.05
    delete_old_checkpoints: bool = False
    gradient: str = "bp"
    k: int = 1
    tangent_sampler: str = "normal"
    seed: int = 0
    search_root: str = "results/forward_grad/lr_search"
    log_level: str = "INFO"
    no_progress: bool = False
    name: str | None = None  # run dir <search_root>/<name> instead of <search_root>/<label>
    # math
    function: str | None = None
    n: int | None = None
    early_stopping_patience: int | None = None
    max_steps: int | None = None
    dtype: str = "float32"
    jvp_backend: str = "analytic"  # analytic | vmap | loop (optimize.MATH_BACKENDS)
    # nn
    device: str = "auto"
    model: str | None = None
    model_width: int | None = None
    dataset: str = "mnist"
    epochs: int = 200
    batch_size: int | None = None
    perturbation_mode: str = "node"
    model_kw: dict = field(default_factory=dict)
    data_root: str = "data"

    def validate(self) -> None:
        lo, hi = self.limits
        if not lo < hi:
            raise UsageError(f"--limits LO HI needs LO < HI, got {lo:g} {hi:g}")
        if self.num_evaluations <= 0 or self.population_size <= 0:
            raise UsageError("--num_evaluations and --population_size must be positive")
        if self.gradient not in ("bp", "fg-mean", "frog"):
            raise UsageError(f"unknown --gradient {self.gradient!r}; choose bp, fg-mean or frog")
        if self.k <= 0:
            raise UsageError(f"-k/--num_directions must be positive, got {self.k}")
        from forward_grad.forward_gradient import parse_sampler

        parse_sampler(self.tangent_sampler)
        if self.mode == "math":
            get_function(self.function)
            if self.n is None or self.n <= 0:
                raise UsageError(f"-n must be a positive integer, got {self.n}")
        elif self.mode == "nn":
            from forward_grad.nn_training.data import DATASETS
            from forward_grad.nn_training.models import MODELS

            if self.model not in MODELS:
                raise UsageError(f"unknown --model {self.model!r}; choose from {', '.join(MODELS)}")
            if self.dataset not in DATASETS:
                raise UsageError(f"unknown --dataset {self.dataset!r}; choose from {', '.join(DATASETS)}")
        else:
            raise UsageError(f"unknown mode {self.mode!r}")
        if self.name is not None:
            parts = Path(self.name).parts
            if not self.name.strip() or not parts or Path(self.name).is_absolute() or ".." in parts:
                raise UsageError(f"--name must be a relative path without '..', got {self.name!r}")

    @property
    def run_dir(self) -> Path:
        """<search_root>/<name>, or <search_root>/<task label> without a name."""
        return Path(self.search_root) / (self.name if self.name is not None else task_label(self))

    @property
    def approach(self) -> Approach:
        if self.gradient == "bp":
            return Approach("bp", 1, "bp")
        return Approach(self.gradient, self.k, "mean" if self.gradient == "fg-mean" else "orthogonal_projection")

    @property
    def steps_budget(self) -> int:
        if self.mode == "math":
            return self.max_steps or get_function(self.function).max_steps
        return self.epochs

    @property
    def fstar(self) -> float:
        return get_function(self.function).fstar(self.n) if self.mode == "math" else 0.0


def task_label(cfg: SearchConfig) -> str:
    """Run-dir label of DESIGN.md §3.5: math/<fn>_n=<%04d>/<grad>[_k=K][__<sampler>] or
    nns/<model>[_w=W]__<dataset>[__e=<epochs>]/<grad>[_k=K] (bp carries no k; __e only when epochs != 200)."""
    grad = cfg.gradient if cfg.gradient == "bp" else f"{cfg.gradient}_k={cfg.k}"
    if cfg.mode == "math":
        sampler = "" if cfg.tangent_sampler == "normal" else f"__{cfg.tangent_sampler}"
        return f"math/{cfg.function}_n={cfg.n:04d}/{grad}{sampler}"
    width = f"_w={cfg.model_width}" if cfg.model_width is not None else ""
    epochs = f"__e={cfg.epochs}" if cfg.epochs != 200 else ""
    return f"nns/{cfg.model}{width}__{cfg.dataset}{epochs}/{grad}"


@dataclass
class SearchResult:
    run_dir: Path
    best_lr: float
    best_lr_log10: float
    best_loss: float
    evaluated: int  # evaluations run by this invocation (all ranks)
    population: int  # individuals in the final checkpoint
    status_counts: dict


# --- checkpoints ----------------------------------------------------------------------------------------------
def _readable(path: Path):
    try:
        with open(path, "rb") as handle:
            pop = pickle.load(handle)
        return pop if isinstance(pop, list) else None
    except Exception:
        return None


def validate_checkpoint(ckpt_dir: Path) -> list:
    """Make the checkpoint loadable by propulate and return its population (rank 0 only).

    An unreadable .pickle falls back to .bkp; both unreadable are moved aside as *.corrupt (fresh start, warning).
    """
    main, bkp = ckpt_dir / CKPT, (ckpt_dir / CKPT).with_suffix(".bkp")
    if main.exists():
        pop = _readable(main)
        if pop is not None:
            return pop
        os.replace(main, main.with_suffix(".pickle.corrupt"))
        warnings.warn(f"unreadable checkpoint {main}; trying the backup", stacklevel=2)
    if bkp.exists():
        pop = _readable(bkp)
        if pop is not None:
            shutil.copyfile(bkp, main)
            return pop
        os.replace(bkp, bkp.with_suffix(".bkp.corrupt"))
        warnings.warn(f"unreadable checkpoint backup {bkp}; starting a fresh search", stacklevel=2)
    return []


def load_population(ckpt_dir: Path) -> list:
    return _readable(ckpt_dir / CKPT) or _readable((ckpt_dir / CKPT).with_suffix(".bkp")) or []


def _atomic_dump(self) -> None:
    """Checkpoint write for rank 0: temp file + os.replace; the previous file is kept as .bkp."""
    target = self.checkpoint_path / CKPT
    if target.exists():
        shutil.copyfile(target, target.with_suffix(".bkp"))
    fd, tmp = tempfile.mkstemp(dir=self.checkpoint_path, suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        pickle.dump(self.population, handle)
    os.replace(tmp, target)


class _NonBlockingSends:
    """Proxy of the island communicator whose `send` is an `isend` (requests kept, completed by `wait_all`).

    propulate 1.2.2 sends each evaluated individual with a blocking `send`. A message above Open MPI's eager limit
    (the pruning baseline travels with it: 1000-25000 floats) then waits for the matching receive, and a rank
    that has finished its generations sits in the final barrier without receiving: a deadlock we hit with 2
    ranks on the sphere. With isend the sender reaches the barrier; the receiver's final probe collects the message.
    """

    def __init__(self, comm):
        self._comm = comm
        self._requests = []

    def send(self, obj, dest, tag=0):
        self._requests.append(self._comm.isend(obj, dest=dest, tag=tag))

    def wait_all(self) -> None:
        from mpi4py import MPI

        MPI.Request.waitall(self._requests)
        self._requests.clear()

    def __getattr__(self, name):
        return getattr(self._comm, name)


def _propulator_class():
    from mpi4py import MPI
    from propulate import Propulator

    class ResumablePropulator(Propulator):
        """Propulator that loads the population itself (a rank without individuals starts at generation 0) and
        writes checkpoints atomically."""

        def __init__(self, *args, population=None, checkpoint_path=None, **kw):
            with tempfile.TemporaryDirectory() as empty:
                super().__init__(*args, checkpoint_path=empty, **kw)
            self.island_comm = _NonBlockingSends(self.island_comm)
            self.checkpoint_path = Path(checkpoint_path)
            self.population = list(population or [])
            own = [ind.generation for ind in self.population if ind.rank == self.island_comm.rank]
            self.generation = max(own) + 1 if own else 0

        def _dump_checkpoint(self):
            _atomic_dump(self)
            dest = (self.island_comm.rank + 1) % self.island_comm.size
            self.island_comm.send(True, dest=dest, tag=self._dump_tag)

        def _dump_final_checkpoint(self):
            _atomic_dump(self)

    from propulate import propulator as _mod

    ResumablePropulator._dump_tag = getattr(_mod, "DUMP_TAG", 2)
    return ResumablePropulator, MPI


def _surrogate_factory(pruner_args: dict):
    from propulate import Surrogate

    class PruningSurrogate(Surrogate):
        def __init__(self):  # noqa: D107 - the base class raises NotImplementedError
            self.rule = BaselinePruner(**pruner_args)

        def start_run(self, ind):
            self.rule.start_run()

        def update(self, loss):
            self.rule.update(loss)

        def cancel(self, loss):
            return self.rule.cancel(loss)

        def merge(self, data):
            self.rule.merge(data)

        def data(self):
            return self.rule.data()

    return PruningSurrogate


# --- loss generators --------------------------------------------------------------------------------------------
class _Recorder:
    """Per-rank side files: evaluations.r<rank>.jsonl rows (merged by rank 0) and failed_evaluations.jsonl."""

    def __init__(self, run_dir: Path, rank: int, bar=None):
        self.rows = run_dir / f"evaluations.r{rank}.jsonl"
        self.failed = run_dir / "failed_evaluations.jsonl"
        self.rank = rank
        self.bar = bar

    def row(self, **kw):
        with open(self.rows, "a") as handle:
            handle.write(json.dumps({"time": time.time(), "rank": self.rank, **kw}) + "\n")
        if self.bar is not None:
            self.bar.update(1)

    def fail(self, **kw):
        with open(self.failed, "a") as handle:
            handle.write(json.dumps({"time": time.time(), "rank": self.rank, **kw}) + "\n")


def _math_steps(cfg: SearchConfig, lr: float):
    patience = cfg.early_stopping_patience if cfg.early_stopping_patience is not None else 100
    yield from descend(
        cfg.function,
        cfg.n,
        cfg.approach,
        lr,
        max_steps=cfg.max_steps,
        patience=patience,
        seed=cfg.seed,
        sampler=cfg.tangent_sampler,
        dtype=cfg.dtype,
        jvp_backend=cfg.jvp_backend,
    )


def train_config(cfg: SearchConfig, lr: float):
    """The nn_training TrainConfig of one evaluation at learning rate lr (init/data order --seed, tangents +1)."""
    from forward_grad.nn_training.trainer import TrainConfig

    return TrainConfig(
        dataset=cfg.dataset,
        model=cfg.model,
        model_width=cfg.model_width or 1024,
        model_kw=cfg.model_kw,
        gradient={"bp": "bp", "fg-mean": "fg", "frog": "frog"}[cfg.gradient],
        perturbation_mode=cfg.perturbation_mode,
        num_directions=cfg.k,
        tangent_sampler=cfg.tangent_sampler,
        lr=lr,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        early_stopping_patience=cfg.early_stopping_patience if cfg.early_stopping_patience is not None else 10,
        seed=cfg.seed,
        device=cfg.device,
        data_root=cfg.data_root,
    )


def _nn_epochs(cfg: SearchConfig, lr: float):
    from forward_grad.nn_training.trainer import Trainer

    trainer = Trainer(train_config(cfg, lr))
    for row in trainer.run():
        if row["epoch"] == 0:
            continue
        reason = row.get("stop_reason")
        yield row["epoch"], row["val_loss"], None if reason == "max_epochs" else reason


def preflight(cfg: SearchConfig) -> None:
    """Build once what every evaluation builds, so inputs that would fail every evaluation stop the search first.

    math: the function and one descent step; nn: the data splits, the model and the estimator (a Trainer at the
    lower LR limit). A missing dataset stays a MissingInputError; any other failure of building from the given
    settings becomes a UsageError naming them (the search would otherwise record it once per evaluation).
    """
    lr = 10.0 ** cfg.limits[0]
    try:
        if cfg.mode == "math":
            next(iter(_math_steps(cfg, lr)), None)
        else:
            from forward_grad.nn_training.trainer import Trainer

            Trainer(train_config(cfg, lr))
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported as bad settings, each evaluation would fail the same way
        what = f"{cfg.function} n={cfg.n}" if cfg.mode == "math" else f"--model {cfg.model} on --dataset {cfg.dataset}"
        raise UsageError(f"cannot evaluate {what}: {type(exc).__name__}: {exc}") from exc


def make_loss_fn(cfg: SearchConfig, recorder: _Recorder, steps_fn=None):
    """The propulate loss generator: yields the loss per step/epoch; +inf for non-finite results and exceptions."""
    steps_fn = steps_fn or (_math_steps if cfg.mode == "math" else _nn_epochs)

    def loss_fn(ind):
        lr_log10 = float(ind["lr_log10"])
        lr = 10.0**lr_log10
        start = time.perf_counter()
        status, steps, last = "pruned", 0, math.inf
        try:
            for t, value, reason in steps_fn(cfg, lr):
                steps = t
                if not math.isfinite(value):
                    status, last = "nonfinite", math.inf
                    yield math.inf
                    return
                last = value
                if reason == "early_stopped":
                    status = "early_stopped"
                elif reason == "diverged":
                    status, last = "nonfinite", math.inf
                    yield math.inf
                    return
                elif reason is not None:
                    status = "ok"
                yield value
            if status == "pruned":  # the steps ran out without a stop reason
                status = "ok"
        except GeneratorExit:
            raise
        except Exception as exc:
            status, last = "error", math.inf
            recorder.fail(lr_log10=lr_log10, lr=lr, error=repr(exc), traceback=traceback.format_exc())
            yield math.inf
        finally:
            recorder.row(
                generation=getattr(ind, "generation", -1),
                lr_log10=lr_log10,
                lr=lr,
                loss=last if math.isfinite(last) else "inf",
                status=status,
                steps=steps,
                eval_seconds=round(time.perf_counter() - start, 4),
            )

    return loss_fn


# --- the search ---------------------------------------------------------------------------------------------------
def _configure_logging(run_dir: Path, level: str, rank: int) -> None:
    logger = logging.getLogger("propulate")
    logger.handlers.clear()
    logger.setLevel(getattr(logging, level.upper(), logging.INFO))
    handler = logging.FileHandler(run_dir / "propulate.log")
    handler.setFormatter(logging.Formatter(f"%(asctime)s rank{rank} %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False


def _threads_per_rank(comm, mpi) -> int:
    """Torch threads per rank = max(1, cores // ranks on this node)."""
    node = comm.Split_type(mpi.COMM_TYPE_SHARED)
    ranks_on_node = node.Get_size()
    node.Free()
    return max(1, (os.cpu_count() or 1) // ranks_on_node)


def _merge_rows(run_dir: Path) -> list[dict]:
    rows = []
    for path in sorted(run_dir.glob("evaluations.r*.jsonl")):
        with open(path) as handle:
            rows += [json.loads(line) for line in handle if line.strip()]
    rows.sort(key=lambda r: r["time"])
    write_csv(run_dir / "evaluations.csv", rows, EVAL_FIELDS, extrasaction="ignore")
    return rows


def _plot(run_dir: Path, population, label: str) -> None:
    from common.plotting import new_figure, save_figure, use_style

    use_style()
    fig, ax = new_figure(f"LR search {label}", "learning rate", "final loss")
    pts = [(10 ** float(ind["lr_log10"]), float(ind.loss)) for ind in population if math.isfinite(float(ind.loss))]
    if pts:
        ax.scatter(*zip(*pts), s=12)
        ax.set_xscale("log")
        if min(p[1] for p in pts) > 0:
            ax.set_yscale("log")
    save_figure(fig, run_dir / "loss_vs_lr.png")


def best_individual(population):
    """The lowest-loss individual (ties: the earlier one)."""
    finite = [ind for ind in population if math.isfinite(float(ind.loss))]
    return min(finite, key=lambda ind: float(ind.loss)) if finite else None


class SearchFailedError(RuntimeError):
    """No evaluation of the search ended with a finite loss (every one raised, diverged or was non-finite)."""


def _prepare(cfg: SearchConfig, comm, steps_fn) -> list:
    """Rank 0: check that evaluations can run at all, clear or validate the checkpoint, write config.json; every
    rank gets the checkpointed population. A failed check raises the same UsageError on every rank."""
    population, error = None, None
    if comm.rank == 0:
        try:
            if steps_fn is None:  # a custom steps_fn is a test hook with its own failures
                preflight(cfg)
        except UsageError as exc:
            error = exc
        else:
            population = _open_run_dir(cfg, comm.size)
    error = comm.bcast(error, root=0)
    if error is not None:
        raise error
    return comm.bcast(population, root=0)


def _open_run_dir(cfg: SearchConfig, ranks: int) -> list:
    run_dir, ckpt_dir = cfg.run_dir, cfg.run_dir / "checkpoints"
    if cfg.delete_old_checkpoints and run_dir.exists():
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        for old in run_dir.glob("evaluations.r*.jsonl"):
            old.unlink()
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    population = validate_checkpoint(ckpt_dir)
    (run_dir / "config.json").write_text(
        json.dumps({**asdict(cfg), "label": task_label(cfg), "ranks": ranks}, indent=2)
    )
    return population


def _propulate(cfg: SearchConfig, population: list, per_rank: int, comm, steps_fn) -> list:
    """Run per_rank more generations on every rank with propulate (default propagator, pruning surrogate)."""
    from propulate import get_default_propagator

    from common.runs import progress

    rank = comm.rank
    rng = random.Random(cfg.seed + rank)
    limits = {"lr_log10": (float(cfg.limits[0]), float(cfg.limits[1]))}
    propagator = get_default_propagator(cfg.population_size, limits, 0.7, 0.4, 0.1, 0.05, rng=rng)
    factory = None
    if cfg.surrogate_margin > 0:
        factory = _surrogate_factory(dict(margin=cfg.surrogate_margin, patience=cfg.surrogate_patience,
                                          max_steps=cfg.steps_budget, fstar=cfg.fstar))  # fmt: skip
    bar = progress(total=per_rank, desc=f"evaluations (rank 0 of {comm.size})", disable=cfg.no_progress or rank != 0)
    loss_fn = make_loss_fn(cfg, _Recorder(cfg.run_dir, rank, bar), steps_fn)
    cls, _ = _propulator_class()
    own = [ind.generation for ind in population if ind.rank == rank]
    first = max(own) + 1 if own else 0
    prop = cls(loss_fn, propagator, rng=rng, island_comm=comm, propulate_comm=comm, generations=first + per_rank,
               checkpoint_path=cfg.run_dir / "checkpoints", population=population,
               surrogate_factory=factory)  # fmt: skip
    prop.propulate(logging_interval=1)
    prop.island_comm.wait_all()
    prop.summarize(top_n=min(2, len(prop._get_unique_individuals())), debug=1)
    bar.close()
    return prop.population


def _failure_reason(counts: dict, run_dir: Path) -> str:
    """Why a search without a finite loss has nothing to pick (status counts and the first recorded error)."""
    reason = f"no evaluation ended with a finite loss ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})"
    failed = run_dir / "failed_evaluations.jsonl"
    if failed.exists():
        lines = [ln for ln in failed.read_text().splitlines() if ln.strip()]
        if lines:
            reason += f"; first error: {json.loads(lines[0])['error']} (all in {failed})"
    return reason


def run_search(cfg: SearchConfig, steps_fn=None) -> SearchResult:
    """Run (or resume) the search of cfg; all ranks return the same result, rank 0 writes the files.

    Raises UsageError (on every rank) before the search when its settings cannot be evaluated (preflight), and
    SearchFailedError (on every rank, after summary.json is written) when no evaluation ended with a finite loss.
    """
    cfg.validate()
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    population = _prepare(cfg, comm, steps_fn)
    torch.set_num_threads(_threads_per_rank(comm, MPI))
    _configure_logging(cfg.run_dir, cfg.log_level, comm.rank)
    remaining = max(0, cfg.num_evaluations - len(population))
    per_rank = math.ceil(remaining / comm.size)
    start = time.time()
    if per_rank > 0:
        population = _propulate(cfg, population, per_rank, comm, steps_fn)
    population = comm.bcast(population, root=0)  # every rank reports rank 0's (synchronized) population
    best = best_individual(population)
    counts = {}
    if comm.rank == 0:
        for row in _merge_rows(cfg.run_dir):
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        _plot(cfg.run_dir, population, task_label(cfg))
    counts = comm.bcast(counts, root=0)
    failure = _failure_reason(counts, cfg.run_dir) if best is None and comm.rank == 0 else None
    failure = comm.bcast(failure, root=0)
    best_lr_log10 = float(best["lr_log10"]) if best is not None else math.nan
    result = SearchResult(
        run_dir=cfg.run_dir,
        best_lr=10**best_lr_log10,
        best_lr_log10=best_lr_log10,
        best_loss=float(best.loss) if best is not None else math.inf,
        evaluated=min(remaining, per_rank * comm.size),
        population=len(population),
        status_counts=counts,
    )
    if comm.rank == 0:
        _write_summary(cfg, result, comm.size, time.time() - start, failure)
    comm.barrier()
    if failure is not None:
        raise SearchFailedError(failure)
    return result


def _write_summary(cfg: SearchConfig, result: SearchResult, ranks: int, seconds: float, failure: str | None) -> None:
    summary = {
        "label": task_label(cfg),
        "ranks": ranks,
        "num_evaluations": result.population,
        "evaluated_this_run": result.evaluated,
        "best_lr": result.best_lr,
        "best_lr_log10": result.best_lr_log10,
        "best_loss": result.best_loss if math.isfinite(result.best_loss) else "inf",
        "wall_seconds": round(seconds, 3),
        "status_counts": result.status_counts,
    }
    if failure is not None:
        summary["failed"] = failure
    (cfg.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
