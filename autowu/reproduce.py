"""The preregistered claim grid (DESIGN.md §6.2): AutoWU against 15 tuned linear-warmup + cosine baselines.

    python autowu/reproduce.py --preset full --jobs 2            # 48 runs on MNIST-1D, cnn1d_bn w=16, AdamP wd 0.1
    python autowu/reproduce.py --preset full --optimizer lamb --weight-decay 0.01

Rule (fixed before any run): PASS iff mean_seeds(AutoWU test acc) >= median of the 15 cell means and
>= best cell mean - 1.0 pt. The verdict is recorded either way.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from autowu.harness import open_autowu_run, write_rows_csv
from common.cli import (
    ArgumentParser,
    add_run_args,
    announce_resume,
    apply_preset,
    csv_list,
    nonneg_float,
    nonneg_int,
    positive_int,
    run_main,
)
from common.runs import Run, progress

RULE = (
    "PASS iff mean_seeds(AutoWU test acc) >= median of the 15 cell means and >= best cell mean - 1.0 pt "
    "(DESIGN.md §6.2)"
)
# presets fill only the flags the user did not type; both keep the 120-epoch regime of the design (DESIGN.md §6.1)
PRESETS = {
    "full": {"peaks": [1e-3, 3e-3, 1e-2, 3e-2, 1e-1], "warmups": [0.0, 0.05, 0.2], "seeds": [0, 1, 2], "epochs": 120},
    "demo": {"peaks": [3e-3, 1e-2, 3e-2, 1e-1], "warmups": [0.05], "seeds": [0], "epochs": 120},
}
FIELDS = [
    "sched",
    "peak",
    "warmup",
    "seed",
    "test_acc",
    "train_loss",
    "switch_step",
    "switch_epoch",
    "eta_sw",
    "peak_lr",
    "reason",
    "seconds",
]
PILOT = {
    "autowu": 95.13,
    "median": 94.00,
    "best": 96.07,
    "lamb_autowu": 94.23,
    "lamb_median": 79.57,
    "lamb_best": 95.40,
}


def _fraction(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"warmup fraction must lie in [0, 1]; got {text}")
    return v


def _positive(text: str) -> float:
    v = float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"peak lr must be > 0; got {text}")
    return v


def build_parser():
    p = ArgumentParser(description=__doc__.split("\n")[0])
    g = p.add_argument_group("grid")
    g.add_argument("--preset", default="full", choices=sorted(PRESETS), help="grid preset (flags below override it)")
    g.add_argument("--peaks", type=csv_list(_positive), default=None, metavar="LIST", help="baseline peak LRs")
    g.add_argument("--warmups", type=csv_list(_fraction), default=None, metavar="LIST", help="warmup fractions")
    g.add_argument("--seeds", type=csv_list(nonneg_int), default=None, metavar="LIST", help="seeds")
    g = p.add_argument_group("training")
    g.add_argument("--optimizer", default="adamp", choices=("adamp", "lamb", "adamw", "sgd"), help="optimizer")
    g.add_argument("--weight-decay", type=nonneg_float, default=None, metavar="WD", help="default: per optimizer")
    g.add_argument("--epochs", type=positive_int, default=None, metavar="E", help="epochs (preset: 120)")
    g.add_argument("--batch-size", type=positive_int, default=512, metavar="B", help="batch size")
    g.add_argument("--dataset", default="mnist1d", choices=("mnist1d", "digits", "mnist5k", "synthetic"))
    g.add_argument("--model", default="cnn1d_bn", choices=("cnn1d_bn", "cnn_bn", "mlp"))
    g.add_argument("--width", type=positive_int, default=16, metavar="W", help="channels of the small model")
    g.add_argument("--data-root", default="data", metavar="DIR", help="dataset cache folder")
    g = p.add_argument_group("execution")
    g.add_argument("--jobs", type=positive_int, default=1, metavar="N", help="parallel processes (one thread each)")
    g.add_argument("--resume", action="store_true", help="skip runs already in runs.csv")
    g.add_argument("--save-dir", default=None, metavar="DIR", help="run directory (overrides --out/--name)")
    # the grid's models are tiny: one CPU thread per run beats a GPU, so the device is the CPU
    add_run_args(p, dash=True, devices=("cpu",), tensorboard=False)
    return p


def run_job(job: dict) -> dict:
    """One training run (a process-pool task): returns a runs.csv row plus the LR/loss traces."""
    import torch

    from autowu.training import build_small_model, fit_tensors, load_offline, make_optimizer, make_scheduler

    torch.set_num_threads(1)
    train, test, data_kw = load_offline(job["dataset"], job["data_root"])
    torch.manual_seed(job["seed"])
    model = build_small_model(job["model"], job["width"], data_kw)
    opt = make_optimizer(job["optimizer"], model.parameters(), lr=1e-3, weight_decay=job["weight_decay"])
    steps = -(-train[0].shape[0] // job["batch_size"])
    if job["sched"] == "autowu":
        sched = make_scheduler("autowu", opt, steps, job["epochs"])
    else:
        sched = make_scheduler("cosine", opt, steps, job["epochs"], peak=job["peak"], warmup_frac=job["warmup"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit_tensors(
            model,
            train,
            test,
            optimizer=opt,
            scheduler=sched,
            epochs=job["epochs"],
            batch_size=job["batch_size"],
            seed=job["seed"],
        )
    row = {
        "sched": job["sched"],
        "peak": job["peak"],
        "warmup": job["warmup"],
        "seed": job["seed"],
        "test_acc": res.test_acc,
        "train_loss": res.train_loss,
        "switch_step": res.switch_step,
        "switch_epoch": res.switch_epoch,
        "eta_sw": res.switch_lr,
        "peak_lr": res.peak_lr,
        "reason": res.reason,
        "seconds": round(res.seconds, 2),
    }
    return {"row": row, "lrs": res.lrs, "losses": res.losses, "steps_per_epoch": steps}


def _key(row) -> str:
    return f"{row['sched']}|{float(row['peak'] or 0):g}|{float(row['warmup'] or 0):g}|{int(row['seed'])}"


def summarize(rows: list[dict], peaks, warmups, seeds) -> dict:
    """Cell means, median, best, AutoWU's mean, margins and the rule's verdict (DESIGN.md §6.2)."""
    cells = {}
    for p in peaks:
        for w in warmups:
            accs = [
                float(r["test_acc"])
                for r in rows
                if r["sched"] == "cosine" and float(r["peak"]) == p and float(r["warmup"]) == w
            ]
            if accs:
                cells[f"{p:g}/{w:g}"] = statistics.mean(accs)
    auto = [r for r in rows if r["sched"] == "autowu"]
    auto_mean = statistics.mean(float(r["test_acc"]) for r in auto) if auto else float("nan")
    median = statistics.median(cells.values()) if cells else float("nan")
    best_key = max(cells, key=cells.get) if cells else None
    best = cells[best_key] if best_key else float("nan")
    passed = bool(auto and cells and auto_mean >= median and auto_mean >= best - 1.0)
    return {
        "cell_means": cells,
        "median": median,
        "best": best,
        "best_cell": best_key,
        "autowu_mean": auto_mean,
        "autowu_accs": [float(r["test_acc"]) for r in auto],
        "margin_median": auto_mean - median,
        "margin_best_minus_1": auto_mean - (best - 1.0),
        "verdict": "PASS" if passed else "FAIL",
        "rule": RULE,
        "switch_epochs": [None if r["switch_epoch"] in ("", None) else int(float(r["switch_epoch"])) for r in auto],
        "eta_sw": [None if r["eta_sw"] in ("", None) else float(r["eta_sw"]) for r in auto],
        "peak_lr": [None if r["peak_lr"] in ("", None) else float(r["peak_lr"]) for r in auto],
        "reasons": [r["reason"] for r in auto],
        "complete": len(cells) == len(peaks) * len(warmups),
    }


def _figures(run: Run, summary, rows, traces, peaks, warmups):
    from autowu.plots import plot_grid, plot_ramp_loss, plot_schedules
    from autowu.schedules import warmup_lr  # noqa: F401 - documents where the ramp comes from

    run.save_figure(
        plot_grid(summary["cell_means"], peaks, warmups, summary["autowu_mean"], summary["verdict"]), "grid.png"
    )
    ramps = []
    for key, tr in sorted(traces.items()):
        if not key.startswith("autowu"):
            continue
        row = next((r for r in rows if _key(r) == key), None)
        if row is None:  # a trace of a seed outside this summary
            continue
        n = int(row["switch_step"] or len(tr["lrs"]))
        ramps.append(
            {
                "lr": tr["lrs"][:n],
                "loss": tr["losses"][:n],
                "switch_lr": row["eta_sw"],
                "peak_lr": row["peak_lr"],
                "label": f"seed {row['seed']}",
            }
        )
    if ramps:
        run.save_figure(plot_ramp_loss(ramps, "AutoWU ramp: loss against LR"), "ramp_loss.png")
    sched = {}
    auto_keys = sorted(k for k in traces if k.startswith("autowu") and any(_key(r) == k for r in rows))
    if auto_keys:
        sched["AutoWU"] = traces[auto_keys[0]]["lrs"]
    if summary["best_cell"]:
        p, w = summary["best_cell"].split("/")
        keys = {_key(r) for r in rows}
        bkeys = sorted(k for k in traces if k.startswith(f"cosine|{float(p):g}|{float(w):g}|") and k in keys)
        if bkeys:
            sched[f"best baseline ({summary['best_cell']})"] = traces[bkeys[0]]["lrs"]
    if sched:
        run.save_figure(plot_schedules(sched, "AutoWU against the best baseline"), "lr.png")


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    apply_preset(args, PRESETS[args.preset], parser.explicit)
    peaks, warmups, seeds = args.peaks, args.warmups, args.seeds
    run = open_autowu_run(
        "reproduce", args, name=args.name or f"{args.preset}_{args.optimizer}", root=args.out, save_dir=args.save_dir
    )
    base = {
        "optimizer": args.optimizer,
        "weight_decay": args.weight_decay,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "dataset": args.dataset,
        "model": args.model,
        "width": args.width,
        "data_root": args.data_root,
    }
    jobs = [{**base, "sched": "autowu", "peak": None, "warmup": None, "seed": s} for s in seeds]
    jobs += [
        {**base, "sched": "cosine", "peak": p, "warmup": w, "seed": s} for p in peaks for w in warmups for s in seeds
    ]
    runs_csv, traces_json = run.path / "runs.csv", run.path / "traces.json"
    rows, traces = [], {}
    if args.resume and runs_csv.exists():
        with open(runs_csv, newline="") as fh:
            rows = list(csv.DictReader(fh))
        if traces_json.exists():
            traces = json.loads(traces_json.read_text())
    done = {_key(r) for r in rows}
    todo = [j for j in jobs if _key(j) not in done]
    if rows:
        announce_resume(runs_csv, f"{len(jobs) - len(todo)} of {len(jobs)} runs")
    print(f"{len(jobs)} runs ({len(jobs) - len(todo)} done already), {args.jobs} job(s)")
    t0 = time.time()

    def record(out):
        row = out["row"]
        rows.append({k: ("" if row[k] is None else row[k]) for k in FIELDS})
        write_rows_csv(runs_csv, rows)  # after every run, so an interrupted grid resumes
        traces[_key(row)] = {"lrs": out["lrs"], "losses": out["losses"] if row["sched"] == "autowu" else []}
        traces_json.write_text(json.dumps(traces))  # after every run, so an interrupted grid resumes with its traces

    bar = progress(total=len(todo), desc="runs", disable=args.no_progress)
    if args.jobs == 1:
        for job in todo:
            record(run_job(job))
            bar.update(1)
    else:
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
            for out in pool.map(run_job, todo):
                record(out)
                bar.update(1)
    bar.close()
    traces_json.write_text(json.dumps(traces))
    rows = [r for r in rows if int(r["seed"]) in seeds]  # a --seeds subset is summarised on its own
    summary = summarize(rows, peaks, warmups, seeds)
    summary.update(
        preset=args.preset,
        optimizer=args.optimizer,
        epochs=args.epochs,
        seeds=seeds,
        runs=len(rows),
        seconds=round(time.time() - t0, 1),
        pilot=PILOT,
    )
    _figures(run, summary, rows, traces, peaks, warmups)
    print(
        f"AutoWU {summary['autowu_mean']:.2f} % vs median {summary['median']:.2f} / best {summary['best']:.2f} "
        f"({summary['best_cell']}): {summary['verdict']}; switch epochs {summary['switch_epochs']}, "
        f"eta_sw {[round(v, 4) for v in summary['eta_sw'] if v]}"
    )
    run.finish(summary)
    return 0


if __name__ == "__main__":
    run_main(main)
