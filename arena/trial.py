"""One trial: train one contestant on one workload with one seed under the arena's clock (README.md §6).

The clock is the process CPU time (torch on one thread) spent inside the contestant's ``init`` and ``step``; building
the model, batching, evaluation and bookkeeping are off the clock and recorded beside it, as is wall time. A trial
ends at the first evaluation that meets the target, when the clocked CPU reaches the budget, or after
``max_steps`` steps; a non-finite loss or metric ends it as diverged (a miss), and an exception inside the contestant
ends it as an error (a miss), never a crash of the harness.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from arena.loading import meets
from common.runtime import seed_everything

__all__ = ["TrialSpec", "run_trial", "WorkloadView", "Batches"]


@dataclass
class TrialSpec:
    """What one job runs: names, the seed, the hyperparameters and the stopping rules."""

    contestant: str
    workload: str
    study: int
    trial: int
    seed: int
    hparams: dict[str, Any]
    target: float | None
    budget: float
    max_steps: int
    device: str = "cpu"
    charged_once: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class Counter:
    def __init__(self) -> None:
        self.forwards = 0
        self.backwards = 0

    def forward_hook(self, module, inputs, output) -> None:
        self.forwards += 1

    def backward_hook(self, grad) -> None:
        self.backwards += 1


class WorkloadView:
    """The workload module as a contestant sees it: every attribute, with ``loss`` wrapped to count backward passes
    (a hook on the returned loss), plus ``spec`` (the TrialSpec), ``train_set`` and ``n_train``."""

    def __init__(self, module: ModuleType, counter: Counter, spec: TrialSpec, train_set) -> None:
        self._module = module
        self._counter = counter
        self.spec = spec
        self.train_set = train_set
        self.n_train = len(train_set)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def loss(self, model, batch) -> torch.Tensor:
        out = self._module.loss(model, batch)
        if isinstance(out, torch.Tensor) and out.requires_grad:
            try:
                out.register_hook(self._counter.backward_hook)
            except RuntimeError:  # inside a torch.func transform: no hooks; the pass is not counted
                pass
        return out


class Batches:
    """Endless shuffled batches (drop_last) from a generator seeded by the trial.

    For a TensorDataset every epoch is one permuted copy of the tensors, split into the epoch's batches at once; a
    step then only picks the next prepared batch, so the harness runs no tensor operation between two steps (each
    one costs tens of microseconds right after a training step, when the caches hold the step's data). A DataLoader
    serves other datasets. Batches are on the trial's device.
    """

    def __init__(self, dataset, batch_size: int, seed: int, device: torch.device) -> None:
        self.dataset, self.batch_size, self.device = dataset, batch_size, device
        self.gen = torch.Generator().manual_seed(seed)
        self.tensors = dataset.tensors if isinstance(dataset, TensorDataset) else None
        self.n = len(dataset)
        if self.n < batch_size:
            raise ValueError(f"training set has {self.n} rows, fewer than the batch size {batch_size}")
        self._iter = None
        self._epoch: list[tuple[torch.Tensor, ...]] = []
        self._pos = 0

    def __iter__(self):
        return self

    def _new_epoch(self) -> None:
        perm = torch.randperm(self.n, generator=self.gen)
        usable = (self.n // self.batch_size) * self.batch_size
        parts = []
        for t in self.tensors:
            shuffled = t[perm[:usable]]  # one gather per epoch (drop_last: the tail rows are left out)
            if self.device.type != "cpu":
                shuffled = shuffled.to(self.device)
            parts.append(shuffled.split(self.batch_size))
        self._epoch = list(zip(*parts))
        self._pos = 0

    def __next__(self):
        if self.tensors is not None:
            if self._pos >= len(self._epoch):
                self._new_epoch()
            batch = self._epoch[self._pos]
            self._pos += 1
            return batch
        while True:
            if self._iter is None:
                loader = DataLoader(self.dataset, self.batch_size, shuffle=True, drop_last=True, generator=self.gen)
                self._iter = iter(loader)
            try:
                batch = next(self._iter)
                return tuple(t.to(self.device) for t in batch)
            except StopIteration:
                self._iter = None


def _evaluate(workload: ModuleType, model: torch.nn.Module, dataset) -> float:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            value = float(workload.evaluate(model, dataset))
    finally:
        model.train(was_training)
    return value


def _is_divergence(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return isinstance(exc, FloatingPointError) or any(w in text for w in ("nan", "non-finite", "nonfinite", "inf"))


@dataclass
class _Progress:
    """What the training loop of one trial has measured so far."""

    cpu: float = 0.0  # the clock: init + steps
    init_cpu: float = 0.0
    eval_cpu: float = 0.0
    step: int = 0
    status: str = "steps"
    message: str = ""
    time_to_target: float = math.inf
    best: float | None = None
    train_loss: float = math.nan
    curve: list[dict[str, Any]] = field(default_factory=list)
    traceback: str | None = None


def _header(spec: TrialSpec, workload: ModuleType) -> dict[str, Any]:
    """The summary fields known before the trial runs."""
    return {
        "contestant": spec.contestant,
        "workload": spec.workload,
        "study": spec.study,
        "trial": spec.trial,
        "seed": spec.seed,
        "hparams": spec.hparams,
        "target": spec.target,
        "budget": spec.budget,
        "max_steps": spec.max_steps,
        "charged_once": spec.charged_once,
        "metric": workload.METRIC,
        "direction": workload.DIRECTION,
        **spec.extra,
    }


def _evaluation_point(
    p: _Progress, spec: TrialSpec, workload: ModuleType, model: torch.nn.Module, val, wall0: float
) -> bool:
    """Evaluate on validation (off the clock), extend the curve; True when the trial ends here (hit or diverged)."""
    e0 = time.process_time()
    value = _evaluate(workload, model, val)
    p.eval_cpu += time.process_time() - e0
    p.curve.append({"step": p.step, "cpu": p.cpu, "wall": time.time() - wall0, "val": value, "loss": p.train_loss})
    if not math.isfinite(value):
        p.status = "diverged"
        return True
    sign = 1.0 if workload.DIRECTION == "max" else -1.0
    if p.best is None or sign * value > sign * p.best:
        p.best = value
    if spec.target is not None and p.cpu <= spec.budget and meets(value, spec.target, workload.DIRECTION):
        p.status, p.time_to_target = "hit", p.cpu
        return True
    return False


def _train(
    p: _Progress, spec: TrialSpec, workload: ModuleType, contestant: ModuleType, model, view, batches, val, wall0
) -> None:
    """init, then steps until a stopping rule (README.md §6); the clock runs only inside init and step."""
    clock = time.process_time
    budget, max_steps, every = spec.budget, spec.max_steps, workload.EVAL_EVERY
    c0 = clock()
    state = contestant.init(model, view, dict(spec.hparams), spec.budget)
    p.init_cpu = clock() - c0
    p.cpu = p.init_cpu
    while True:
        if p.cpu >= budget:
            p.status = "budget"
            return
        if p.step >= max_steps:
            p.status = "steps"
            return
        batch = next(batches)
        c0 = clock()
        p.train_loss = float(contestant.step(model, view, batch, state, p.step))
        p.cpu += clock() - c0
        p.step += 1
        if not math.isfinite(p.train_loss):
            p.status = "diverged"
            return
        if p.step % every == 0 or p.step >= max_steps or p.cpu >= budget:
            if _evaluation_point(p, spec, workload, model, val, wall0):
                return


def _run_guarded(p: _Progress, *args) -> None:
    """_train with a contestant's exception turned into a miss: diverged or error, with its traceback."""
    try:
        _train(p, *args)
    except Exception as exc:  # noqa: BLE001 - a failing contestant is a miss, never a crash of the harness
        p.status = "diverged" if _is_divergence(exc) else "error"
        p.message = f"{type(exc).__name__}: {exc}"
        p.traceback = traceback.format_exc(limit=8)


def _test_value(p: _Progress, workload: ModuleType, model: torch.nn.Module, test) -> float:
    """The test metric of the final model (NaN after a divergence or an error); its CPU goes to eval_cpu."""
    if p.status in ("diverged", "error"):
        return math.nan
    e0 = time.process_time()
    try:
        return _evaluate(workload, model, test)
    except Exception:  # noqa: BLE001 - a broken model after an error
        return math.nan
    finally:
        p.eval_cpu += time.process_time() - e0


def run_trial(spec: TrialSpec, workload: ModuleType, contestant: ModuleType) -> dict[str, Any]:
    """Run one trial and return its summary (README.md §6) with the evaluation curve under ``curve``."""
    t_start_cpu, t_start_wall = time.process_time(), time.time()
    torch.set_num_threads(1)
    device = torch.device(spec.device)
    summary = _header(spec, workload)
    applicable = getattr(contestant, "applicable", None)
    if applicable is not None and not applicable(workload):
        summary.update(status="n/a", hit=False, time_to_target=math.inf, cpu=0.0, init_cpu=0.0, steps=0, curve=[])
        return summary

    seed_everything(spec.seed)
    t0 = time.process_time()
    data = workload.build(spec.seed, device)
    build_cpu = time.process_time() - t0
    model = data["model"]
    model.train()
    counter = Counter()
    hook = model.register_forward_hook(counter.forward_hook)
    view = WorkloadView(workload, counter, spec, data["train"])
    batches = Batches(data["train"], workload.BATCH_SIZE, spec.seed, device)
    p = _Progress()
    _run_guarded(p, spec, workload, contestant, model, view, batches, data["val"], t_start_wall)
    hook.remove()
    test_value = _test_value(p, workload, model, data["test"])
    if p.traceback:
        summary["traceback"] = p.traceback
    summary.update(
        status=p.status,
        hit=p.status == "hit",
        message=p.message,
        time_to_target=p.time_to_target,
        cpu=p.cpu,
        init_cpu=p.init_cpu,
        steps=p.step,
        best_val=p.best if p.best is not None else math.nan,
        final_val=p.curve[-1]["val"] if p.curve else math.nan,
        final_loss=p.train_loss,
        test=test_value,
        forwards=counter.forwards,
        backwards=counter.backwards,
        build_cpu=build_cpu,
        eval_cpu=p.eval_cpu,
        total_cpu=time.process_time() - t_start_cpu,
        wall=time.time() - t_start_wall,
        curve=p.curve,
    )
    return summary
