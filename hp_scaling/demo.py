"""Demo rows for results/demo/REPORT.md (make demo: quick=True; make reproduce: quick=False). Rules of spec 6."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import torch

from common.report import DemoRow

PAPER = "hp_scaling"
R1_QUICK = (
    "--arch mlp --depth_chain 0 2 4 6 8 --chain_nodes 9 --width 32 --seeds 0 1 --lr_min 0.015625 --lr_max 2 "
    "--steps_per_octave 2"
).split()
R1_FULL = "--arch mlp --depth_chain 0 1 2 3 4 5 6 7 8 --width 64 --repeat 3".split()
R2 = "--arch mlp --random_topologies 28 --width 64 --repeat 3".split()
R4 = "--dataset digits --width 8 --num_cells 6 --epochs 5 --batch_size 64 --init reference".split()


def _run(main, argv) -> Path:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main([*argv, "--no_progress"])
    return Path(buf.getvalue().strip().splitlines()[-1].removeprefix("run dir: "))


def _summary(path: Path) -> dict | None:
    f = path / "summary.json"
    return json.loads(f.read_text()) if f.exists() else None


def _cached(out: Path, rel: str) -> Path:
    """A run dir left by an earlier full run: under out, or under results/reproduce/hp_scaling (make reproduce)."""
    for root in (out, out.parent.parent / "reproduce" / PAPER):
        if (root / rel / "summary.json").exists():
            return root / rel
    return out / rel


def r1_verdict(s: dict, first: float, last: float) -> tuple[str, str]:
    """Spec 6 R1 rule: r3 >= 0.9; LR(k=8) < LR(k=0); ratio in [2, 10]; r3 >= r1."""
    r3, r1 = s["pearson_off3"], s["pearson_off1"]
    ratio = first / last
    ok = r3 >= 0.9 and last < first and 2 <= ratio <= 10 and r3 >= r1
    fig = f"r = {r3:.3f} (offset 3), {r1:.3f} (offset 1); LR(k=0)/LR(k=max) = {ratio:.2f}; slope {s['slope_vs_S']:.2f}"
    return ("yes" if ok else "no"), fig


def depth_row(out: Path, quick: bool) -> DemoRow:
    from hp_scaling.lr_sweep import main

    argv = R1_QUICK if quick else R1_FULL
    path = _run(main, [*argv, "--out", str(out / "lr_sweep"), "--name", "R1" if quick else "R1-full"])
    s = _summary(path)
    found = list(s["found_lr"].values())
    verdict, fig = r1_verdict(s, found[0], found[-1])
    label = "R1 digits, width 32, 2 seeds" if quick else "R1-full digits, width 64, 3 seeds"
    return DemoRow(
        PAPER,
        f"eq. 8 transfers the max LR across depth ({label})",
        "App. D: r = 0.962 (CIFAR-10 MLP)",
        fig,
        verdict,
        str(path),
        str(path / "pred_vs_found.png"),
    )


def topology_row(out: Path, quick: bool) -> DemoRow:
    from hp_scaling.lr_sweep import main

    res = {}
    for init in ("paper", "reference"):
        name = f"R2-{init}"
        path = _cached(out, f"lr_sweep/{name}")
        if not quick:
            path = _run(main, [*R2, "--init", init, "--out", str(out / "lr_sweep"), "--name", name])
        res[init] = (_summary(path), path)
    claim = "eq. 8 predicts the max LR over 28 random 5-node DAG topologies (R2, digits, width 64, 3 seeds)"
    paper_fig = "Fig. 2: r = 0.838 (CIFAR-10, GPU scale)"
    if any(s is None for s, _ in res.values()):
        return DemoRow(PAPER, claim, paper_fig, "not run (CPU cost ~7 min; `make reproduce` runs it)", "partial")
    rp, rr = res["paper"][0]["pearson_off3"], res["reference"][0]["pearson_off3"]
    ok = rp > 0.3 and rr > 0.6
    fig = f"r = {rp:.3f} (init paper, rule > 0.3), {rr:.3f} (init reference, rule > 0.6)"
    return DemoRow(
        PAPER,
        claim,
        paper_fig,
        fig,
        "yes" if ok else "no",
        str(res["reference"][1]),
        str(res["reference"][1] / "pred_vs_found.png"),
    )


def moment_ratios(width: int = 512, batch: int = 1024, draws: int = 3, seed: int = 0) -> dict:
    """Node E||z||^2 / node 0 on 2_22_222_2222 for paper/pre, he/pre, reference/post, he/post (spec 7.5, R3)."""
    from hp_scaling.models import DagMLP

    g = torch.Generator().manual_seed(seed)
    out = {}
    for init, block in (("paper", "pre"), ("he", "pre"), ("reference", "post"), ("he", "post")):
        acc = torch.zeros(5)
        for _ in range(draws):
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
            m = DagMLP("2_22_222_2222", width, width, 10, init=init, block=block)
            with torch.no_grad():
                nodes = m.node_values(torch.randn(batch, width))[:5]
            acc += torch.tensor([v.pow(2).sum(1).mean().item() for v in nodes]) / draws
        out[f"{init}/{block}"] = (acc / acc[0]).tolist()
    return out


def moments_row(out: Path) -> DemoRow:
    r = moment_ratios()
    p, hp, rp, hpo = r["paper/pre"], r["he/pre"][-1], r["reference/post"][-1], r["he/post"][-1]
    ok = all(abs(v - 1) < 0.1 for v in p) and hp >= 4 and rp < hpo
    out.mkdir(parents=True, exist_ok=True)
    (out / "moments.json").write_text(json.dumps(r, indent=2))
    fig = (
        f"paper/pre node ratios {[round(v, 2) for v in p]}; last node he/pre {hp:.1f}x, "
        f"reference/post {rp:.1f}x vs he/post {hpo:.1f}x"
    )
    return DemoRow(
        PAPER,
        "eq. 4 keeps every node's second moment equal to the input's (R3, width 512)",
        "eq. 4: preserved",
        fig,
        "yes" if ok else "no",
        str(out),
    )


def nb201_row(out: Path, quick: bool) -> DemoRow:
    from hp_scaling.nb201_compare import main

    path = _cached(out, "nb201_compare/R4")
    if not quick:
        path = _run(main, [*R4, "--out", str(out / "nb201_compare"), "--name", "R4"])
    s = _summary(path)
    claim = "scaled init + LR retrains NB201 cells better (R4: 6 cells, digits, 5 epochs)"
    paper_fig = "+0.44 / +1.24 / +2.09 points (CIFAR-10 / CIFAR-100 / ImageNet16-120)"
    if s is None:
        return DemoRow(PAPER, claim, paper_fig, "not run (`make reproduce` runs R4)", "partial")
    ok = s["all_finite"] and s["mean_acc_base"] >= 0.5 and s["mean_acc_ours"] >= 0.5 and s["mean_gain"] >= -0.02
    tau = s.get("kendall_tau")
    fig = (
        f"mean gain {100 * s['mean_gain']:+.1f} points (base {s['mean_acc_base']:.3f}, ours "
        f"{s['mean_acc_ours']:.3f}); gain bottom/top half {100 * s['gain_bottom_half']:+.1f}/"
        f"{100 * s['gain_top_half']:+.1f}; tau {tau if tau is None or math.isnan(tau) else round(tau, 2)}"
    )
    return DemoRow(PAPER, claim, paper_fig, fig, "yes" if ok else "no", str(path), str(path / "scatter.png"))


def demo_rows(out_dir: Path, quick: bool = True) -> list[DemoRow]:
    """R1, R3 always; R2 (both inits) and R4 run under quick=False and are read back afterwards."""
    out = Path(out_dir)
    torch.set_num_threads(1)
    rows = [depth_row(out, quick), topology_row(out, quick), moments_row(out / "moments")]
    if not quick:
        from hp_scaling.lr_sweep import main

        _run(main, [*R2, "--linear_only", "--init", "paper", "--out", str(out / "lr_sweep"), "--name", "R2-linear"])
    rows.append(nb201_row(out, quick))
    return rows
