"""Demo rows for results/demo/REPORT.md (``make demo``: quick=True; ``make reproduce``: quick=False).

Every claim's row is computed with the rules of DESIGN.md §5, which never depend on the preset:
- quick (``make demo``, about a minute on 2 cores): R1 depth chains, R2 on the *demo preset* (14 random topologies,
  2 per multiplier bin, one seed, half-octave grid), R3 moments, R4 on the *demo preset* (4 NB201 cells, 2 cells per
  stage, 3 epochs, one seed). Rows say "demo preset, one seed".
- full (``make reproduce``): R1-full, R2 (28 topologies, 3 seeds, 41 LRs), R2 linear-only, R4 (6 cells, 5 epochs).

Results are cached with :func:`common.report.stamp`: a cached summary is used only when the configuration and the
code of hp_scaling/ and common/ match, and its row says "cached from <date>, <commit>". A quick demo also shows the
full-run rows of the last ``make reproduce`` when (and only when) their stamps match.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Callable
from pathlib import Path

import torch

from common.report import DemoRow, load_or_compute, read_stamped, stamp

PAPER = "hp_scaling"
CODE_DIRS = ("hp_scaling", "common")
R1_QUICK = (
    "--arch mlp --depth_chain 0 2 4 6 8 --chain_nodes 9 --width 32 --seeds 0 1 --lr_min 0.015625 --lr_max 2 "
    "--steps_per_octave 2"
).split()
R1_FULL = "--arch mlp --depth_chain 0 1 2 3 4 5 6 7 8 --width 64 --repeat 3".split()
R2 = "--arch mlp --random_topologies 28 --width 64 --repeat 3".split()
R2_DEMO = (
    "--arch mlp --random_topologies 14 --per_bin 2 --width 64 --seeds 0 --lr_min 0.00390625 --lr_max 4 "
    "--steps_per_octave 2"
).split()
R4 = "--dataset digits --width 8 --num_cells 6 --epochs 5 --batch_size 64 --init reference".split()
R4_DEMO = (
    "--dataset digits --width 8 --num_cells 4 --cells_per_stage 2 --epochs 3 --batch_size 64 --init reference"
).split()
R2_RULE = {"paper": 0.3, "reference": 0.6}  # DESIGN.md §5.2: r > 0.3 (paper init), r > 0.6 (reference init)
FIG2 = "Fig. 2: r = 0.838 (CIFAR-10, GPU scale)"
NB201_GAINS = "+0.44 / +1.24 / +2.09 points (CIFAR-10 / CIFAR-100 / ImageNet16-120)"


def _script(name: str) -> Callable:
    if name == "lr_sweep":
        from hp_scaling.lr_sweep import main
    else:
        from hp_scaling.nb201_compare import main
    return main


def _run(script: str, argv: list[str], out_root: Path, name: str) -> dict:
    """Run a script in-process (output hidden); its summary.json plus ``run_dir``."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        _script(script)([*argv, "--no_progress", "--out", str(out_root), "--name", name])
    path = Path(buf.getvalue().strip().splitlines()[-1].removeprefix("run dir: "))
    return {**json.loads((path / "summary.json").read_text()), "run_dir": str(path)}


def _stamp_for(script: str, argv: list[str]) -> dict:
    return stamp(PAPER, {"script": script, "argv": argv}, list(CODE_DIRS))


def cached_or_run(out: Path, script: str, argv: list[str], name: str) -> tuple[dict, str]:
    """(summary, note): the stamped cache under ``out/cache`` when it matches, else a fresh run written there."""
    cache = out / "cache" / f"{name}.json"
    return load_or_compute(cache, _stamp_for(script, argv), lambda: _run(script, argv, out.parent, name))


def cached_only(out: Path, script: str, argv: list[str], name: str) -> tuple[dict, str] | None:
    """A full-run result left by ``make reproduce`` (results/reproduce/hp_scaling/cache), only if its stamp matches."""
    hit = read_stamped(out / "cache" / f"{name}.json", _stamp_for(script, argv))
    if hit is None:
        return None
    from common.report import cached_note

    return hit[0], cached_note(hit[1])


def r1_verdict(s: dict) -> tuple[str, str]:
    """DESIGN.md §5.1: r3 >= 0.9; LR(k=max) < LR(k=0); LR(k=0)/LR(k=max) in [2, 10]; r3 >= r1."""
    found = list(s["found_lr"].values())
    first, last = found[0], found[-1]
    r3, r1 = s["pearson_off3"], s["pearson_off1"]
    ratio = first / last
    ok = r3 >= 0.9 and last < first and 2 <= ratio <= 10 and r3 >= r1
    fig = f"r = {r3:.3f} (offset 3), {r1:.3f} (offset 1); LR(k=0)/LR(k=max) = {ratio:.2f}; slope {s['slope_vs_S']:.2f}"
    return ("yes" if ok else "no"), fig


def r2_verdict(paper: dict, reference: dict) -> tuple[str, str]:
    """DESIGN.md §5.2: r > 0.3 with --init paper and r > 0.6 with --init reference."""
    rp, rr = paper["pearson_off3"], reference["pearson_off3"]
    ok = rp > R2_RULE["paper"] and rr > R2_RULE["reference"]
    fig = f"r = {rp:.3f} (init paper, rule > 0.3), {rr:.3f} (init reference, rule > 0.6)"
    return ("yes" if ok else "no"), fig


def r4_verdict(s: dict) -> tuple[str, str]:
    """DESIGN.md §5.4: every run finite, each recipe's mean accuracy >= 0.5, mean gain >= -2 points."""
    ok = s["all_finite"] and s["mean_acc_base"] >= 0.5 and s["mean_acc_ours"] >= 0.5 and s["mean_gain"] >= -0.02
    tau = s.get("kendall_tau")
    tau_text = "n/a" if tau is None or (isinstance(tau, float) and math.isnan(tau)) else f"{tau:.2f}"
    fig = (
        f"mean gain {100 * s['mean_gain']:+.1f} points (base {s['mean_acc_base']:.3f}, ours "
        f"{s['mean_acc_ours']:.3f}); gain bottom/top half {100 * s['gain_bottom_half']:+.1f}/"
        f"{100 * s['gain_top_half']:+.1f}; tau {tau_text}"
    )
    return ("yes" if ok else "no"), fig


def _row(claim: str, paper_fig: str, verdict_fig: tuple[str, str], note: str, s: dict, png: str) -> DemoRow:
    verdict, fig = verdict_fig
    run_dir = s.get("run_dir", "")
    return DemoRow(PAPER, claim, paper_fig, f"{fig} [{note}]", verdict, run_dir, str(Path(run_dir) / png))


def depth_row(out: Path, quick: bool) -> DemoRow:
    argv, name = (R1_QUICK, "R1") if quick else (R1_FULL, "R1-full")
    s, note = cached_or_run(out, "lr_sweep", argv, name)
    label = "R1 digits, width 32, 2 seeds" if quick else "R1-full digits, width 64, 3 seeds"
    claim = f"eq. 8 transfers the max LR across depth ({label})"
    return _row(claim, "App. D: r = 0.962 (CIFAR-10 MLP)", r1_verdict(s), note, s, "pred_vs_found.png")


def topology_rows(out: Path, quick: bool) -> list[DemoRow]:
    """R2 on the demo preset (quick) or in full; a quick demo adds the full rows only from a matching stamp."""
    rows = []
    argv, tag = (R2_DEMO, "R2-demo") if quick else (R2, "R2")
    res = {init: cached_or_run(out, "lr_sweep", [*argv, "--init", init], f"{tag}-{init}") for init in R2_RULE}
    if quick:
        claim = "eq. 8 predicts the max LR over random 5-node DAGs (R2 demo preset: 14 topologies, one seed, 21 LRs)"
    else:
        claim = "eq. 8 predicts the max LR over 28 random 5-node DAG topologies (R2, digits, width 64, 3 seeds)"
    (sp, note), (sr, _) = res["paper"], res["reference"]
    rows.append(_row(claim, FIG2, r2_verdict(sp, sr), note, sr, "pred_vs_found.png"))
    if quick:
        full = {
            init: cached_only(out.parent.parent / "reproduce" / PAPER, "lr_sweep", [*R2, "--init", init], f"R2-{init}")
            for init in R2_RULE
        }
        if all(v is not None for v in full.values()):
            claim = "eq. 8 predicts the max LR over 28 random 5-node DAG topologies (R2, 3 seeds)"
            (fp, fnote), (fr, _) = full["paper"], full["reference"]
            rows.append(_row(claim, FIG2, r2_verdict(fp, fr), fnote, fr, "pred_vs_found.png"))
    return rows


def moment_ratios(width: int = 512, batch: int = 1024, draws: int = 3, seed: int = 0) -> dict:
    """Node E||z||^2 / node 0 on 2_22_222_2222 for paper/pre, he/pre, reference/post, he/post (R3)."""
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
        f"reference/post {rp:.1f}x vs he/post {hpo:.1f}x [computed now]"
    )
    claim = "eq. 4 keeps every node's second moment equal to the input's (R3, width 512)"
    return DemoRow(PAPER, claim, "eq. 4: preserved", fig, "yes" if ok else "no", str(out))


def nb201_rows(out: Path, quick: bool) -> list[DemoRow]:
    argv, tag = (R4_DEMO, "R4-demo") if quick else (R4, "R4")
    s, note = cached_or_run(out, "nb201_compare", argv, tag)
    if quick:
        claim = "scaled init + LR retrains NB201 cells better (R4 demo preset: 4 cells, 2 per stage, 3 epochs, 1 seed)"
    else:
        claim = "scaled init + LR retrains NB201 cells better (R4: 6 cells, digits, 5 epochs)"
    rows = [_row(claim, NB201_GAINS, r4_verdict(s), note, s, "scatter.png")]
    if quick:
        full = cached_only(out.parent.parent / "reproduce" / PAPER, "nb201_compare", R4, "R4")
        if full is not None:
            claim = "scaled init + LR retrains NB201 cells better (R4: 6 cells, digits, 5 epochs)"
            rows.append(_row(claim, NB201_GAINS, r4_verdict(full[0]), full[1], full[0], "scatter.png"))
    return rows


def demo_rows(out_dir: Path, quick: bool = True) -> list[DemoRow]:
    """R1, R2 (both inits), R3 and R4, all computed (or read from a matching stamp); see the module docstring."""
    out = Path(out_dir)
    torch.set_num_threads(1)
    rows = [depth_row(out, quick), *topology_rows(out, quick), moments_row(out / "moments")]
    if not quick:
        cached_or_run(out, "lr_sweep", [*R2, "--linear_only", "--init", "paper"], "R2-linear")
    rows.extend(nb201_rows(out, quick))
    return rows
