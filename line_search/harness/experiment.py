"""One configuration from build to summary (DESIGN.md §4.1): data, model, optimizer, training loop, summary numbers.

Used by main.py (one run) and by the grid of run_multiple*.py (many runs in-process). The caller opens the run
folder and owns printing; this module only logs to the ``line_search`` logger.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from common.cli import MissingInputError, UsageError
from common.distributed import torchrun_env
from common.runs import Run
from line_search.harness.builders import build_model
from line_search.harness.config import build_optimizer
from line_search.harness.data import load_task
from line_search.harness.trainer import FitResult, RunOptions, TrainParts, fit

__all__ = ["build_parts", "summarize", "train_config"]


def build_parts(cfg: dict[str, Any], opts: RunOptions) -> TrainParts:
    """Data, model (seeded by cfg['seed']), optimizer and scheduler; DDP under torchrun, torch.compile on request."""
    env = torchrun_env()
    tokenizer = None
    if cfg["model"] == "bert" and cfg["model_path"]:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(cfg["model_path"])
    task = load_task(cfg["dataset"], opts.data_root, cfg["n_train"], cfg["n_test"], cfg["max_len"], tokenizer)
    if (task.kind == "nlp") != (cfg["type"] == "nlp"):
        raise UsageError(f"config type {cfg['type']!r} does not match dataset {cfg['dataset']!r}")
    torch.manual_seed(cfg["seed"])
    model = build_model(cfg["model"], task, cfg["num_hidden_dims"], cfg["model_path"], cfg["max_len"])
    if cfg["checkpoint"]:
        try:
            weights = torch.load(cfg["checkpoint"], map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise MissingInputError(f"config key 'checkpoint': file not found: {cfg['checkpoint']}") from None
        model.load_state_dict(weights)
    model.to(opts.device)
    steps_per_epoch = -(-len(task.train) // (cfg["batch_size"] * env.world_size))
    opt, sched = build_optimizer(cfg, model, steps_per_epoch * cfg["epochs"], seed=cfg["seed"])
    net: torch.nn.Module = model
    if env.distributed:
        dev = opts.device
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    if opts.compile:
        net = torch.compile(net)
    return TrainParts(net, opt, sched, task)


def summarize(cfg: dict[str, Any], res: FitResult, wall_s: float) -> dict[str, Any]:
    """summary.json numbers of DESIGN.md §4.1 from a finished (or diverged) loop."""
    last = next((e for e in reversed(res.epochs) if "val_acc" in e), {})
    summary = {
        "status": res.status,
        "final_train_loss": last.get("full_train_loss"),
        "val_acc": last.get("val_acc"),
        "val_loss": last.get("val_loss"),
        "forwards_per_step": res.forwards / max(res.steps, 1),
        "forwards_per_step_after_200": res.late_forwards / res.late_steps if res.late_steps else None,
        "search_fraction": res.searches / max(res.steps, 1),
        "n_fail": res.n_fail,
        "steps": res.steps,
        "time_per_step": res.step_time / max(res.steps, 1),
        "wall_s": round(wall_s, 3),
        "optim": cfg["optim"],
        "dataset": cfg["dataset"],
        "seed": cfg["seed"],
    }
    if res.message:
        summary["message"] = res.message
    return summary


def train_config(cfg: dict[str, Any], run: Run, opts: RunOptions) -> dict[str, Any]:
    """Build, train and summarise one resolved config into ``run`` (summary.json is left to the caller)."""
    started = time.time()
    parts = build_parts(cfg, opts)
    res = fit(cfg, parts, run, opts)
    return summarize(cfg, res, time.time() - started)
