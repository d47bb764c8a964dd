"""AutoWU's rows of results/demo/REPORT.md (common.report): the bowl's decay-start LR and the claim grid."""

from __future__ import annotations

import json
from pathlib import Path

from autowu import reproduce, simulate
from common.report import DemoRow

FULL_SUMMARY = Path("results/autowu/reproduce/full_adamp/summary.json")


def _bowl_row(out_dir: Path) -> DemoRow:
    run_dir = out_dir / "simulate_bowl"
    simulate.main(["--curve", "bowl", "--noise", "0.05", "--seed", "0", "--save-dir", str(run_dir), "--no-progress"])
    s = json.loads((run_dir / "summary.json").read_text())
    ok = s["switch_step"] is not None and 900 < s["switch_step"] <= 1300 and 0.0067 <= s["switch_lr"] <= 0.015
    return DemoRow(
        "autowu",
        "decay starts at the loss minimum's LR, 0.01 (bowl, sigma 0.05)",
        "true minimum 0.01 at step 901; rule: switch in (900, 1300], eta_sw in [0.0067, 0.015] (DESIGN.md §7.4)",
        f"switch at step {s['switch_step']}, eta_sw {s['switch_lr']:.4f}, peak {s['peak_lr']:.3f}",
        "yes" if ok else "no",
        str(run_dir),
        str(run_dir / "trace.png"),
    )


def _grid_row(out_dir: Path, quick: bool) -> DemoRow:
    if quick:
        run_dir = out_dir / "reproduce_demo"
        argv = ["--preset", "demo", "--epochs", "30", "--jobs", "1", "--save-dir", str(run_dir), "--no-progress"]
        label = "demo, 1 seed, 30 epochs"
    else:
        run_dir = FULL_SUMMARY.parent
        argv = ["--preset", "full", "--jobs", "2", "--resume", "--save-dir", str(run_dir), "--no-progress"]
        label = "full preset, 3 seeds"
    reproduce.main(argv)
    s = json.loads((run_dir / "summary.json").read_text())
    ours = (
        f"AutoWU {s['autowu_mean']:.2f} % vs grid median {s['median']:.2f} / best {s['best']:.2f} ({label}); "
        f"switch epochs {s['switch_epochs']}, eta_sw {[round(v, 4) for v in s['eta_sw'] if v]}"
    )
    if FULL_SUMMARY.is_file():
        full = json.loads(FULL_SUMMARY.read_text())
        complete = full.get("complete") and len(full.get("seeds", [])) == 3
        verdict = ("yes" if full.get("verdict") == "PASS" else "no") if complete else "partial"
        ours += (
            f"; full preset: {full['autowu_mean']:.2f} vs {full['median']:.2f} / {full['best']:.2f}, {full['verdict']}"
        )
    else:
        verdict = "partial"
        ours += "; verdict needs the full preset: run make reproduce"
    return DemoRow(
        "autowu",
        "comparable or better than tuned baselines without LR tuning (rule: >= grid median and >= best - 1 pt)",
        "ImageNet R50 4K 75.70 (repo 75.54); pilot MNIST-1D: AutoWU 95.13 vs median 94.00 / best 96.07, PASS",
        ours,
        verdict,
        str(run_dir),
        str(run_dir / "grid.png"),
    )


def _lamb_row() -> DemoRow:
    run_dir = Path("results/autowu/reproduce/full_lamb")
    reproduce.main(
        [
            "--preset",
            "full",
            "--optimizer",
            "lamb",
            "--weight-decay",
            "0.01",
            "--jobs",
            "2",
            "--resume",
            "--save-dir",
            str(run_dir),
            "--no-progress",
        ]
    )
    s = json.loads((run_dir / "summary.json").read_text())
    return DemoRow(
        "autowu",
        "secondary: LAMB wd 0.01, same rule (reported, DESIGN.md §6.3)",
        "pilot: AutoWU 94.23 vs median 79.57 / best 95.40: FAIL (gap 1.17)",
        f"AutoWU {s['autowu_mean']:.2f} vs median {s['median']:.2f} / best {s['best']:.2f}: {s['verdict']}",
        "yes" if s["verdict"] == "PASS" else "no",
        str(run_dir),
        str(run_dir / "grid.png"),
    )


def _reference_rows(out_dir: Path) -> list[DemoRow]:
    rows = []
    for noise, seed in ((0.05, 0), (0.3, 1)):
        run_dir = out_dir / f"simulate_reference_{noise:g}"
        simulate.main(
            [
                "--curve",
                "bowl",
                "--noise",
                str(noise),
                "--seed",
                str(seed),
                "--reference",
                "--save-dir",
                str(run_dir),
                "--no-progress",
            ]
        )
        s = json.loads((run_dir / "summary.json").read_text())
        close = (
            abs(s["switch_step"] - s["ref_switch_step"]) <= 50 and abs(s["switch_lr"] / s["ref_switch_lr"] - 1) <= 0.1
        )
        rows.append(
            DemoRow(
                "autowu",
                f"lean GP test matches the reference procedure (bowl sigma {noise:g}, seed {seed})",
                "within 50 steps and 10 % (sigma 0.05); the reference false-switches at 150 on sigma 0.3 seeds 1-2",
                f"ours {s['switch_step']} / {s['switch_lr']:.4g}, reference {s['ref_switch_step']} / "
                f"{s['ref_switch_lr']:.3g}; test time ratio {s['test_time_ratio']:.1f}x",
                ("yes" if close else "no") if noise == 0.05 else ("yes" if 900 < s["switch_step"] <= 1400 else "no"),
                str(run_dir),
                str(run_dir / "trace.png"),
            )
        )
    return rows


def demo_rows(out_dir: Path, quick: bool = True) -> list[DemoRow]:
    """Row (a): the bowl; row (b): the claim grid (demo preset at 30 epochs when quick, else the full preset).

    quick=False (make reproduce) adds the LAMB preset and simulate.py --reference at sigma 0.05 and 0.3.
    """
    out_dir = Path(out_dir)
    rows = [_bowl_row(out_dir), _grid_row(out_dir, quick)]
    if not quick:
        rows += [_lamb_row(), *_reference_rows(out_dir)]
    return rows
