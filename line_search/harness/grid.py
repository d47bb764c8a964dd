"""Grid runs of run_multiple.py / run_multiple_img.py (spec 4.2) and the section 6 verdicts.

Each run gets runs/<name>/config_gen.json (the seed's INI) and is trained in-process by line_search.main.main.
Afterwards table.csv (one row per run), summary.json (mean/std per dataset x optimizer, verdicts) and plots are
written into the aggregate folder.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.cli import UsageError, csv_list

__all__ = ["GridRun", "add_grid_args", "expand", "run_grid", "aggregate", "rule_verdicts", "grid_main", "ADAM_GRID"]

FINISHED = ("done", "diverged")
ADAM_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
OURS = ("sls", "adamsls", "kensls", "salsa")
TABLE_FIELDS = (
    "name dataset model optim label lr c beta speed_up seed status final_train_loss val_acc forwards_per_step "
    "forwards_per_step_after_200 search_fraction n_fail time_per_step wall_s"
).split()


def _bool_list(text: str) -> list[bool | None]:
    out = []
    for item in text.split(","):
        item = item.strip()
        if item in ("True", "False"):
            out.append(item == "True")
        elif item.lower() in ("default", "none", ""):
            out.append(None)
        else:
            raise ValueError(f"--speed_up takes True, False or default, got {item!r}")
    return out


def _opt_float(text: str) -> float | None:
    return None if text.lower() in ("default", "none", "") else float(text)


def add_grid_args(p, defaults: dict[str, Any]) -> None:
    """The flags of spec 4.2 with this script's offline defaults."""
    g = p.add_argument_group("grid")
    g.add_argument("--datasets", type=csv_list(str), default=defaults["datasets"], help="datasets (comma list)")
    g.add_argument("--models", type=csv_list(str), default=defaults["models"], help="models, paired with datasets")
    g.add_argument("--optims", type=csv_list(str), default=defaults["optims"], help="optimizers (comma list)")
    g.add_argument("--numexp", type=int, default=defaults["numexp"], help="seeds per configuration")
    g.add_argument("--epochs", type=int, default=defaults["epochs"], help="epochs per run")
    g.add_argument("--batch_size", type=int, default=defaults["batch_size"], help="mini-batch size")
    g.add_argument("--gradient_accumulation_steps", type=int, default=defaults.get("gas", 1), help="micro-batches")
    g.add_argument("--eval_every", type=int, default=1, help="epochs between full evaluations (last always)")
    g.add_argument("--c", type=_opt_float, default=None, help="Armijo c (default: class default)")
    g.add_argument("--beta", type=_opt_float, default=None, help="beta_s (default: class default)")
    g.add_argument("--speed_up", type=_bool_list, default=[None], help="True,False or default (every *sls)")
    g.add_argument("--adam_lrs", type=csv_list(float), default=list(ADAM_GRID), help="Adam learning rates")
    g.add_argument("--sgd_lrs", type=csv_list(float), default=defaults["sgd_lrs"], help="SGD learning rates")
    r = p.add_argument_group("run")
    r.add_argument("--device", default="auto", help="auto|cpu|cuda")
    r.add_argument("--seed", type=int, default=0, help="run i uses seed + i")
    r.add_argument("--out", metavar="DIR", default=None, help="aggregate dir (runs in DIR/runs/<name>/)")
    r.add_argument("--name", default=None, help="aggregate folder name under results/line_search/<script>/")
    r.add_argument("--data_root", default="data", help="dataset files")
    r.add_argument("--resume", action="store_true", help="skip finished runs, resume partial ones")
    r.add_argument("--dry_run", action="store_true", help="list the configs and exit")
    r.add_argument("--quick", action="store_true", help="1 seed, 1 epoch, Adam grid {1e-3} (smoke test)")
    r.add_argument("--paper", action="store_true", help="the paper-scale grid of spec 4.2 (GPU)")
    r.add_argument("--tensorboard", action="store_true", help="TensorBoard logs per run")
    r.add_argument("--wandb", action="store_true", help="wandb logs per run (pip install wandb)")
    r.add_argument("--no_progress", action="store_true", help="hide tqdm bars")


@dataclass
class GridRun:
    name: str
    config: dict[str, Any]
    label: str


def _fmt(x: float) -> str:
    return f"{x:g}"


def expand(args, kind: str, extra: dict[str, Any] | None = None) -> list[GridRun]:
    """Grid of spec 4.2: (dataset, model) pairs x optimizers (x LR grid for adam/sgd, x speed_up) x seeds."""
    datasets, models = args.datasets, args.models
    if len(models) not in (1, len(datasets)):
        raise UsageError(f"--models must give 1 model or one per dataset ({len(datasets)}), got {len(models)}")
    if args.numexp < 1 or args.epochs < 1 or args.batch_size < 1:
        raise UsageError("--numexp, --epochs and --batch_size must be >= 1")
    pairs = list(zip(datasets, models if len(models) == len(datasets) else models * len(datasets)))
    runs = []
    for dataset, model in pairs:
        for optim in args.optims:
            optim = optim.lower()
            variants: list[tuple[str, dict]] = []
            if optim == "adam":
                variants = [(f"adam_lr{_fmt(lr)}", {"lr": lr}) for lr in args.adam_lrs]
            elif optim == "sgd":
                variants = [(f"sgd_lr{_fmt(lr)}", {"lr": lr}) for lr in args.sgd_lrs]
            else:
                for su in args.speed_up:
                    tag = "" if su is None else ("_su" if su else "_nosu")
                    cfg = {"speed_up": su} if su is not None else {}
                    if args.c is not None:
                        cfg["c"] = args.c
                        tag += f"_c{_fmt(args.c)}"
                    if args.beta is not None:
                        cfg["beta"] = args.beta
                    variants.append((optim + tag, cfg))
            for label, cfg in variants:
                for i in range(args.numexp):
                    seed = args.seed + i
                    config = {
                        "dataset": dataset,
                        "model": model,
                        "optim": optim,
                        "type": kind,
                        "epochs": args.epochs,
                        "batch_size": args.batch_size,
                        "gradient_accumulation_steps": args.gradient_accumulation_steps,
                        "seed": seed,
                        "eval_every": args.eval_every,
                        "directory": f"{dataset}_{model}_{label}_s{seed}",
                        **(extra or {}),
                        **cfg,
                    }
                    runs.append(GridRun(config["directory"], config, label))
    return runs


def run_grid(runs: list[GridRun], out: Path, args) -> list[dict]:
    """Train every run in-process (skipping finished ones under --resume); returns table rows."""
    from line_search.harness.config import write_ini
    from line_search.main import main as train_main

    rows = []
    for i, r in enumerate(runs, start=1):
        run_dir = out / "runs" / r.name
        summary_path = run_dir / "summary.json"
        done = args.resume and summary_path.exists() and json.loads(summary_path.read_text()).get("status") in FINISHED
        if not done:
            run_dir.mkdir(parents=True, exist_ok=True)
            cfg_path = write_ini(
                {k: ("None" if v is None else v) for k, v in r.config.items()}, run_dir / "config_gen.json"
            )
            argv = ["--config_file", str(cfg_path), "--out", str(run_dir), "--device", args.device]
            argv += ["--data_root", args.data_root, "--no_progress", "--no_plots"]
            if args.resume and (run_dir / "checkpoint.pt").exists():
                argv.append("--resume")
            if args.tensorboard:
                argv.append("--tensorboard")
            if args.wandb:
                argv.append("--wandb")
            print(f"[{i}/{len(runs)}] {r.name}", flush=True)
            train_main(argv)
        summary = json.loads(summary_path.read_text())
        rows.append(_table_row(r, summary))
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
    """Mean and std per dataset x optimizer label of final loss, accuracy, forwards/step."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for row in rows:
        out.setdefault(row["dataset"], {}).setdefault(row["label"], {"runs": []})["runs"].append(row)
    for groups in out.values():
        for label, g in groups.items():
            runs = g.pop("runs")
            for key in ("final_train_loss", "val_acc", "forwards_per_step", "forwards_per_step_after_200", "n_fail"):
                m, s = _mean_std([r.get(key) for r in runs])
                g[f"{key}_mean"], g[f"{key}_std"] = m, s
            g["n"] = len(runs)
            g["diverged"] = sum(r.get("status") == "diverged" for r in runs)
            groups[label] = g
    return out


def rule_verdicts(groups: dict[str, dict], ours: tuple[str, ...], acc_margin: float, section: str) -> dict | None:
    """Section 6 rule: loss <= median of the Adam grid cells, accuracy >= best Adam cell - margin, per optimizer."""
    adam = [groups.get(f"adam_lr{_fmt(lr)}") for lr in ADAM_GRID]
    if any(a is None for a in adam) or any(o not in groups for o in ours):
        return None
    loss_thr = statistics.median(a["final_train_loss_mean"] for a in adam)
    acc_thr = max(a["val_acc_mean"] for a in adam) - acc_margin
    out = {"section": section, "loss_threshold": loss_thr, "acc_threshold": acc_thr, "optimizers": {}}
    for o in ours:
        g = groups[o]
        ok_loss = g["final_train_loss_mean"] <= loss_thr
        ok_acc = g["val_acc_mean"] >= acc_thr
        out["optimizers"][o] = {
            "final_train_loss": g["final_train_loss_mean"],
            "val_acc": g["val_acc_mean"],
            "pass": bool(ok_loss and ok_acc),
        }
    out["pass"] = all(v["pass"] for v in out["optimizers"].values())
    return out


def write_outputs(out: Path, rows: list[dict], verdicts: dict[str, Any]) -> dict:
    """table.csv, summary.json and the plots of spec 4.2."""
    with open(out / "table.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=TABLE_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    groups = aggregate(rows)
    summary = {"groups": groups, "verdicts": verdicts, "n_runs": len(rows)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    try:
        _plots(out, rows, groups)
    except Exception as exc:  # plots are a convenience; the numbers are already written
        print(f"plots skipped: {exc}")
    return summary


def _plots(out: Path, rows: list[dict], groups: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from common.plotting import new_figure, save_figure, use_style

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
                path = out / "runs" / row["name"] / "metrics.csv"
                if not path.exists():
                    continue
                with open(path, newline="") as handle:
                    data = list(csv.DictReader(handle))
                ys = [float(d[col]) for d in data]
                if col == "loss":  # running mean over 20 steps
                    ys = [statistics.fmean(ys[max(0, i - 19) : i + 1]) for i in range(len(ys))]
                ax.plot([int(d["step"]) for d in data], ys, lw=0.8, label=row["label"])
            ax.set_yscale("log")
            ax.legend(fontsize=6, ncol=2)
            save_figure(fig, out / f"{name}_{dataset}.png")


def grid_main(argv, script: str, kind: str, defaults: dict, paper: dict, verdicts_fn, check_paper=None) -> dict:
    """Shared main of the two grid scripts: parse (with --paper defaults), expand, run, aggregate, print run dir."""
    import sys

    from common.cli import ArgumentParser
    from common.runs import open_run

    argv = list(sys.argv[1:] if argv is None else argv)
    use = {**defaults, **paper} if "--paper" in argv else defaults
    p = ArgumentParser(prog=f"{script}.py", description=f"grid of line_search/main.py runs ({kind}; spec 4.2)")
    add_grid_args(p, use)
    for flag, kw in use.get("extra_flags", {}).items():
        p.add_argument(flag, **kw)
    args = p.parse_args(argv)
    if args.quick:
        args.numexp, args.epochs, args.adam_lrs, args.sgd_lrs = 1, 1, [1e-3], [0.1]
    if args.paper and check_paper is not None:
        check_paper(args)
    extra = use.get("extra_config", lambda a: {})(args)
    runs = expand(args, kind, extra)
    if args.dry_run:
        for r in runs:
            print(r.name, json.dumps(r.config))
        print(f"{len(runs)} runs")
        return {"n_runs": len(runs)}
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        run = None
    else:
        run = open_run("line_search", script, vars(args), name=args.name or ("quick" if args.quick else None))
        out = run.path
    rows = run_grid(runs, out, args)
    groups = aggregate(rows)
    verdicts = verdicts_fn(groups)
    summary = write_outputs(out, rows, verdicts)
    for dataset, g in groups.items():
        for label, v in sorted(g.items()):
            print(f"{dataset:16s} {label:22s} loss {v['final_train_loss_mean']:.5f} acc {v['val_acc_mean']:.4f} "
                  f"fwd/step {v['forwards_per_step_mean']:.2f} (n={v['n']})")  # fmt: skip
    for name, v in (verdicts or {}).items():
        if v:
            print(f"verdict {name}: {'pass' if v['pass'] else 'fail'}")
    print(f"run dir: {out}", flush=True)
    return summary
