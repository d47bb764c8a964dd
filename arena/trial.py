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
    """Endless shuffled batches (drop_last) from a generator seeded by the trial: for a TensorDataset one permuted
    copy per epoch and batches as slices of it, a DataLoader otherwise. Batches are on the trial's device."""

    def __init__(self, dataset, batch_size: int, seed: int, device: torch.device) -> None:
        self.dataset, self.batch_size, self.device = dataset, batch_size, device
        self.gen = torch.Generator().manual_seed(seed)
        self.tensors = dataset.tensors if isinstance(dataset, TensorDataset) else None
        self.n = len(dataset)
        if self.n < batch_size:
            raise ValueError(f"training set has {self.n} rows, fewer than the batch size {batch_size}")
        self._iter = None
        self._epoch: list[torch.Tensor] | None = None
        self._pos = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.tensors is not None:
            if self._epoch is None or self._pos + self.batch_size > self.n:
                perm = torch.randperm(self.n, generator=self.gen)
                self._epoch = [t[perm] for t in self.tensors]  # one gather per epoch; batches are views of it
                if self.device.type != "cpu":
                    self._epoch = [t.to(self.device) for t in self._epoch]
                self._pos = 0
            lo, hi = self._pos, self._pos + self.batch_size
            self._pos = hi
            return tuple(t[lo:hi] for t in self._epoch)
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


def run_trial(spec: TrialSpec, workload: ModuleType, contestant: ModuleType) -> dict[str, Any]:
    """Run one trial and return its summary (README.md §6) with the evaluation curve under ``curve``."""
    t_start_cpu, t_start_wall = time.process_time(), time.time()
    torch.set_num_threads(1)
    device = torch.device(spec.device)
    summary: dict[str, Any] = {
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

    cpu = 0.0  # the clock: init + steps
    eval_cpu = 0.0
    curve: list[dict[str, Any]] = []
    status, message = "steps", ""
    time_to_target = math.inf
    best = None
    step = 0
    train_loss = math.nan
    sign = 1.0 if workload.DIRECTION == "max" else -1.0
    try:
        c0 = time.process_time()
        state = contestant.init(model, view, dict(spec.hparams), spec.budget)
        init_cpu = time.process_time() - c0
        cpu += init_cpu
        while True:
            if cpu >= spec.budget:
                status = "budget"
                break
            if step >= spec.max_steps:
                status = "steps"
                break
            batch = next(batches)
            c0 = time.process_time()
            train_loss = float(contestant.step(model, view, batch, state, step))
            cpu += time.process_time() - c0
            step += 1
            if not math.isfinite(train_loss):
                status = "diverged"
                break
            if step % workload.EVAL_EVERY == 0 or step >= spec.max_steps or cpu >= spec.budget:
                e0 = time.process_time()
                value = _evaluate(workload, model, data["val"])
                eval_cpu += time.process_time() - e0
                curve.append(
                    {"step": step, "cpu": cpu, "wall": time.time() - t_start_wall, "val": value, "loss": train_loss}
                )
                if not math.isfinite(value):
                    status = "diverged"
                    break
                if best is None or sign * value > sign * best:
                    best = value
                if spec.target is not None and cpu <= spec.budget and meets(value, spec.target, workload.DIRECTION):
                    status, time_to_target = "hit", cpu
                    break
    except Exception as exc:  # noqa: BLE001 - a failing contestant is a miss, never a crash of the harness
        init_cpu = locals().get("init_cpu", cpu)
        status = "diverged" if _is_divergence(exc) else "error"
        message = f"{type(exc).__name__}: {exc}"
        summary["traceback"] = traceback.format_exc(limit=8)
    hook.remove()

    e0 = time.process_time()
    try:
        test_value = _evaluate(workload, model, data["test"]) if status not in ("diverged", "error") else math.nan
    except Exception:  # noqa: BLE001 - a broken model after an error
        test_value = math.nan
    eval_cpu += time.process_time() - e0
    summary.update(
        status=status,
        hit=status == "hit",
        message=message,
        time_to_target=time_to_target,
        cpu=cpu,
        init_cpu=init_cpu,
        steps=step,
        best_val=best if best is not None else math.nan,
        final_val=curve[-1]["val"] if curve else math.nan,
        final_loss=train_loss,
        test=test_value,
        forwards=counter.forwards,
        backwards=counter.backwards,
        build_cpu=build_cpu,
        eval_cpu=eval_cpu,
        total_cpu=time.process_time() - t_start_cpu,
        wall=time.time() - t_start_wall,
        curve=curve,
    )
    return summary
