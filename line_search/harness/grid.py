"""Grid runs of run_multiple.py / run_multiple_img.py (DESIGN.md §4.2) and the rule verdicts of DESIGN.md §6.

Each run gets <aggregate>/runs/<name>/ with config_gen.json (the seed's INI) and is trained in-process through
line_search.harness.experiment. Afterwards table.csv (one row per run), summary.json (mean/std per dataset x
optimizer, verdicts) and plots are written into the aggregate folder. The command line lives in line_search/grid_cli.py;
this module logs progress to the ``line_search`` logger and prints nothing.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.cli import UsageError
from common.runs import open_run, progress, write_csv

__all__ = ["GridRun", "GridSpec", "expand", "run_grid", "aggregate", "rule_verdicts", "write_outputs", "ADAM_GRID"]

log = logging.getLogger(__name__)

FINISHED = ("done", "diverged")
ADAM_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
OURS = ("sls", "adamsls", "kensls", "salsa")
TABLE_FIELDS = (
    "name dataset model optim label lr c beta speed_up seed status final_train_loss val_acc forwards_per_step "
    "forwards_per_step_after_200 search_fraction n_fail time_per_step wall_s"
).split()


@dataclass
class GridSpec:
    """The grid of DESIGN.md §4.2: (dataset, model) pairs x optimizers (x LR grids, x speed_up) x seeds."""

    datasets: list[str]
    models: list[str]
    optims: list[str]
    numexp: int = 1
    epochs: int = 1
    batch_size: int = 32
    gradient_accumulation_steps: int = 1
    eval_every: int = 1
    c: float | None = None
    beta: float | None = None
    speed_up: list[bool | None] = field(default_factory=lambda: [None])
    adam_lrs: list[float] = field(default_factory=lambda: list(ADAM_GRID))
    sgd_lrs: list[float] = field(default_factory=lambda: [0.1])
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # further config keys for every run (max_len, n_train, ...)


@dataclass
class GridRun:
    name: str
    config: dict[str, Any]
    label: str


def _fmt(x: float) -> str:
    return f"{x:g}"


def _variants(optim: str, spec: GridSpec) -> list[tuple[str, dict]]:
    """(label, config keys) per optimizer: the LR grids for adam/sgd, the speed_up values and c/beta for ours."""
    if optim == "adam":
        return [(f"adam_lr{_fmt(lr)}", {"lr": lr}) for lr in spec.adam_lrs]
    if optim == "sgd":
        return [(f"sgd_lr{_fmt(lr)}", {"lr": lr}) for lr in spec.sgd_lrs]
    out = []
    for su in spec.speed_up:
        tag = "" if su is None else ("_su" if su else "_nosu")
        cfg: dict[str, Any] = {"speed_up": su} if su is not None else {}
        if spec.c is not None:
            cfg["c"] = spec.c
            tag += f"_c{_fmt(spec.c)}"
        if spec.beta is not None:
            cfg["beta"] = spec.beta
        out.append((optim + tag, cfg))
    return out


def expand(spec: GridSpec, kind: str) -> list[GridRun]:
    """All runs of the grid; run i of a cell uses seed spec.seed + i."""
    datasets, models = spec.datasets, spec.models
    if len(models) not in (1, len(datasets)):
        raise UsageError(f"--models must give 1 model or one per dataset ({len(datasets)}), got {len(models)}")
    pairs = list(zip(datasets, models if len(models) == len(datasets) else models * len(datasets)))
    runs = []
    for dataset, model in pairs:
        for optim in (o.lower() for o in spec.optims):
            for label, cfg in _variants(optim, spec):
                for i in range(spec.numexp):
                    seed = spec.seed + i
                    config = {
                        "dataset": dataset,
                        "model": model,
                        "optim": optim,
                        "type": kind,
                        "epochs": spec.epochs,
                        "batch_size": spec.batch_size,
                        "gradient_accumulation_steps": spec.gradient_accumulation_steps,
                        "seed": seed,
                        "eval_every": spec.eval_every,
                        "directory": f"{dataset}_{model}_{label}_s{seed}",
                        **spec.extra,
                        **cfg,
                    }
                    runs.append(GridRun(config["directory"], config, label))
    return runs


def run_grid(
    runs: list[GridRun],
    out: Path,
    opts,
    tensorboard: bool = False,
    resume: bool = False,
    wandb_init: Callable[[str, dict], Any] | None = None,
) -> list[dict]:
    """Train every run in-process into out/runs/<name>/ (skipping finished ones with `resume`); table rows.

    ``opts`` is a :class:`line_search.harness.trainer.RunOptions` shared by all runs (its ``resume`` is set per
    run); ``wandb_init(name, config)``, when given, opens one Weights & Biases run per grid run.
    """
    from dataclasses import replace

    from line_search.harness.config import resolve, write_ini
    from line_search.harness.experiment import train_config

    rows = []
    for r in progress(runs, desc="grid", disable=not opts.show_progress):
        run_dir = out / "runs" / r.name
        summary_path = run_dir / "summary.json"
        done = resume and summary_path.exists() and json.loads(summary_path.read_text()).get("status") in FINISHED
        if not done:
            log.info("run %s", r.name)
            ini = {k: ("None" if v is None else v) for k, v in r.config.items()}
            cfg = resolve({k: str(v) for k, v in ini.items()})  # the same typed config main.py would read
            # open_run builds root/paper/experiment/name: here <aggregate>/runs/<name>
            run = open_run(out.name, "runs", {**cfg, "device": str(opts.device)}, name=r.name, root=out.parent,
                           tensorboard=tensorboard)  # fmt: skip
            write_ini(ini, run.path / "config_gen.json")
            resume_this = resume and (run.path / "checkpoint.pt").exists()
            wb = wandb_init(r.name, cfg) if wandb_init is not None else None
            summary = train_config(cfg, run, replace(opts, resume=resume_this, wandb_run=wb))
            if wb is not None:
                wb.finish()
            run.finish(summary)  # summary.json; closes TensorBoard
        rows.append(_table_row(r, json.loads(summary_path.read_text())))
    return rows


def _table_row(r: GridRun, s: dict) -> dict:
    c = r.config
    row = {"name": r.name, "dataset": c["dataset"], "model": c["model"], "optim": c["optim"], "label": r.label}
    row.update(lr=c.get("lr", ""), c=c.get("c", ""), beta=c.get("beta", ""), speed_up=c.get("speed_up", ""))
    row.update({k: s.get(k) for k in TABLE_FIELDS if k in s})
    row["seed"] = c["seed"]
    return row


def _mean_std(xs: list[float]) -> tuple[float, float]:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    if not xs:
        return math.nan, math.nan
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def aggregate(rows: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean, std, min and max per dataset x optimizer label of final loss, accuracy, forwards/step."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for row in rows:
        out.setdefault(row["dataset"], {}).setdefault(row["label"], {"runs": []})["runs"].append(row)
    for groups in out.values():
        for label, g in groups.items():
            runs = g.pop("runs")
            for key in ("final_train_loss", "val_acc", "forwards_per_step", "forwards_per_step_after_200", "n_fail"):
                values = [r.get(key) for r in runs]
                m, s = _mean_std(values)
                g[f"{key}_mean"], g[f"{key}_std"] = m, s
                finite = [x for x in values if x is not None and math.isfinite(x)]
                g[f"{key}_min"] = min(finite) if finite else math.nan
                g[f"{key}_max"] = max(finite) if finite else math.nan
            g["n"] = len(runs)
            g["diverged"] = sum(r.get("status") == "diverged" for r in runs)
            groups[label] = g
    return out


def rule_verdicts(groups: dict[str, dict], ours: tuple[str, ...], acc_margin: float, section: str) -> dict | None:
    """DESIGN.md §6 rule: loss <= median of the Adam grid cells, accuracy >= best Adam cell - margin, per optimizer."""
    adam = [groups.get(f"adam_lr{_fmt(lr)}") for lr in ADAM_GRID]
    if any(a is None for a in adam) or any(o not in groups for o in ours):
        return None
    loss_thr = statistics.median(a["final_train_loss_mean"] for a in adam)
    acc_thr = max(a["val_acc_mean"] for a in adam) - acc_margin
    seeds = min(g["n"] for g in [*adam, *(groups[o] for o in ours)])
    out = {"section": section, "loss_threshold": loss_thr, "acc_threshold": acc_thr, "seeds": seeds, "optimizers": {}}
    for o in ours:
        g = groups[o]
        ok_loss = g["final_train_loss_mean"] <= loss_thr
        ok_acc = g["val_acc_mean"] >= acc_thr
        out["optimizers"][o] = {
            "final_train_loss": g["final_train_loss_mean"],
            "val_acc": g["val_acc_mean"],
            "val_acc_min": g.get("val_acc_min", math.nan),
            "val_acc_max": g.get("val_acc_max", math.nan),
            "pass": bool(ok_loss and ok_acc),
        }
    out["pass"] = all(v["pass"] for v in out["optimizers"].values())
    return out


def write_outputs(out: Path, rows: list[dict], verdicts: dict[str, Any]) -> dict:
    """table.csv and the plots of DESIGN.md §4.2; returns the summary (groups, verdicts) for summary.json."""
    write_csv(out / "table.csv", rows, TABLE_FIELDS, extrasaction="ignore")
    groups = aggregate(rows)
    summary = {"groups": groups, "verdicts": verdicts, "n_runs": len(rows)}
    try:
        _plots(out, rows, groups)
    except Exception as exc:  # noqa: BLE001 - plots are a convenience; the numbers are already written
        log.warning("plots skipped: %s", exc)
    return summary


def _plots(out: Path, rows: list[dict], groups: dict) -> None:
    from common.plotting import new_figure, save_figure, use_style
    from line_search.harness.trainer import read_table

    use_style()
    for dataset, g in groups.items():
        labels = sorted(g)
        fig, ax = new_figure(f"{dataset}: final full-train loss", "optimizer", "final train loss (nats, log)")
        vals = [g[k]["final_train_loss_mean"] for k in labels]
        ax.bar(range(len(labels)), vals, yerr=[g[k]["final_train_loss_std"] for k in labels])
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
        ax.set_yscale("log")
        save_figure(fig, out / ("final_loss.png" if len(groups) == 1 else f"final_loss_{dataset}.png"))
        for col, name, ylabel in (("loss", "curves", "mini-batch loss (nats)"), ("step_size", "step_size", "eta")):
            fig, ax = new_figure(f"{dataset}: {col} (seed {rows[0]['seed']})", "step", ylabel)
            for row in rows:
                if row["dataset"] != dataset or row["seed"] != rows[0]["seed"]:
                    continue
                data = read_table(out / "runs" / row["name"] / "metrics.csv")
                if not data:
                    continue
                ys = [float(d[col]) for d in data]
                if col == "loss":  # running mean over 20 steps
                    ys = [statistics.fmean(ys[max(0, i - 19) : i + 1]) for i in range(len(ys))]
                ax.plot([int(d["step"]) for d in data], ys, lw=0.8, label=row["label"])
            ax.set_yscale("log")
            ax.legend(fontsize=6, ncol=2)
            save_figure(fig, out / f"{name}_{dataset}.png")
