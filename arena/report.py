"""python -m arena.report: REPORT.md and figures from an arena results tree (README.md §8).

Reads every finished trial under ``<run>/trials`` and writes ``<run>/REPORT.md`` with the leaderboard (B on time to
target t, B on total cost T, B against adamw_cosine, coverage), the time-to-target and total-cost tables (CPU-s,
"miss", "n/a"), the performance profiles of t and T, per workload the validation metric against CPU-seconds with
the target line, the LR sensitivity of the external contestants, the cost breakdown and a "which to use" paragraph
generated from the numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from arena import score
from common.cli import ArgumentParser, MissingInputError, csv_list, positive_int, run_main
from common.report import git_commit

__all__ = ["leaderboard", "write_report", "main", "REFERENCE", "TAU_MAX"]

REFERENCE = "adamw_cosine"
TAU_MAX = 4.0

REPO_ROOT = Path(__file__).resolve().parents[1]


def _na(summaries: list[dict], c: str, w: str) -> bool:
    rows = [s for s in summaries if s["contestant"] == c and s["workload"] == w]
    return bool(rows) and all(s.get("status") == "n/a" for s in rows)


def _fmt_t(v: float, na: bool = False) -> str:
    if na:
        return "n/a"
    return "miss" if not math.isfinite(v) else f"{v:.2f}"


def leaderboard(
    summaries: list[dict[str, Any]], workloads: Sequence[str], contestants: Sequence[str]
) -> list[dict[str, Any]]:
    """One row per contestant: B_t, B_T, B against the reference, coverage, hits, sorted by B_T then B_t."""
    t = score.times_table(summaries, contestants, workloads, "t")
    T = score.times_table(summaries, contestants, workloads, "T")
    b_t = score.benchmark_score(t, TAU_MAX)
    b_T = score.benchmark_score(T, TAU_MAX)
    b_ref = score.benchmark_score(t, TAU_MAX, reference=REFERENCE) if REFERENCE in t else {}
    cov = score.coverage(t)
    rows = []
    for c in contestants:
        ruleset = next((s.get("ruleset", "") for s in summaries if s["contestant"] == c), "")
        rows.append(
            {
                "contestant": c,
                "ruleset": ruleset,
                "B_t": b_t[c],
                "B_T": b_T[c],
                "B_ref": b_ref.get(c, math.nan),
                "coverage": cov[c],
                "hits": sum(1 for s in summaries if s["contestant"] == c and s.get("hit")),
                "trials": sum(1 for s in summaries if s["contestant"] == c and s.get("status") != "n/a"),
            }
        )
    rows.sort(key=lambda r: (-r["B_T"], -r["B_t"], r["contestant"]))
    return rows


def _plot_profiles(t, T, path: Path) -> Path:
    from common.plotting import new_figure, save_figure

    taus = [1.0 + 0.01 * i for i in range(int((TAU_MAX - 1.0) / 0.01) + 1)]
    fig, axes = new_figure("Performance profiles (CPU-seconds)", "tau (ratio to the fastest)", "rho(tau)", ncols=2)
    for ax, times, what in ((axes[0], t, "time to target t"), (axes[1], T, "total cost T (incl. tuning)")):
        prof = score.performance_profile(times, taus)
        for i, (c, rho) in enumerate(sorted(prof.items())):  # 10 colours, then dashed: every line tells apart
            ax.step(taus, rho, where="post", label=c, color=f"C{i % 10}", ls="-" if i < 10 else "--")
        ax.set_title(what)
        ax.set_ylim(-0.02, 1.02)
    axes[1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7)
    return save_figure(fig, path)


def _plot_curves(run_dir: Path, summaries: list[dict], workload: str, path: Path) -> Path | None:
    from common.plotting import new_figure, save_figure

    rows = [s for s in summaries if s["workload"] == workload and s.get("status") != "n/a"]
    if not rows:
        return None
    metric, target = rows[0].get("metric", "metric"), rows[0].get("target")
    direction = rows[0].get("direction", "max")
    fig, ax = new_figure(f"{workload}: validation {metric}", "clocked CPU-seconds", metric)
    for c in sorted({s["contestant"] for s in rows}):
        mine = [s for s in rows if s["contestant"] == c]
        sign = 1.0 if direction == "max" else -1.0

        def key(s: dict, sign: float = sign) -> float:
            v = float(s.get("best_val", math.nan))
            return sign * v if math.isfinite(v) else -math.inf

        best = max(mine, key=key)
        curve_file = run_dir / "trials" / workload / c / f"s{best['study']}_t{best['trial']}" / "curve.csv"
        if not curve_file.is_file():
            continue
        lines = curve_file.read_text().splitlines()[1:]
        pts = [ln.split(",") for ln in lines if ln]
        xs = [float(p[1]) for p in pts]
        ys = [float(p[3]) for p in pts]
        ax.plot(xs, ys, label=c, lw=1.0)
    if target is not None:
        ax.axhline(float(target), color="k", ls="--", lw=0.8, label="target")
    if metric in ("val_loss", "rmse"):
        ax.set_yscale("log")
    ax.legend(fontsize=6, ncol=2)
    return save_figure(fig, path)


def _plot_lr(summaries: list[dict], workloads: Sequence[str], path: Path) -> Path | None:
    from common.plotting import new_figure, save_figure

    ext = [s for s in summaries if s.get("ruleset") == "external" and "lr" in (s.get("hparams") or {})]
    if not ext:
        return None
    n = len(workloads)
    fig, axes = new_figure("LR sensitivity of the external contestants", "learning rate", "best validation", ncols=n)
    axes = [axes] if n == 1 else list(axes)
    for ax, w in zip(axes, workloads):
        for c in sorted({s["contestant"] for s in ext if s["workload"] == w}):
            pts = [(s["hparams"]["lr"], s.get("best_val")) for s in ext if s["workload"] == w and s["contestant"] == c]
            pts = [(x, float(y)) for x, y in pts if y is not None and math.isfinite(float(y))]
            if pts:
                ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=10, label=c)
        tgt = next((s.get("target") for s in summaries if s["workload"] == w), None)
        if tgt is not None:
            ax.axhline(float(tgt), color="k", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(w, fontsize=8)
    axes[-1].legend(fontsize=6)
    return save_figure(fig, path)


def _which_to_use(rows: list[dict], t: dict, T: dict, workloads: Sequence[str]) -> str:
    if not rows:
        return "No finished trials."
    best_T = rows[0]
    best_t = max(rows, key=lambda r: (r["B_t"], r["contestant"]))
    no_lr = [r for r in rows if r["ruleset"] == "self" and r["contestant"] != "adam_default"]
    parts = [
        f"Counting what a user pays (tuning included), **{best_T['contestant']}** scores best "
        f"(B on T = {best_T['B_T']:.3f}, reaches {best_T['coverage']:.0%} of the workloads).",
        f"Given a tuned setting for free, **{best_t['contestant']}** is fastest (B on t = {best_t['B_t']:.3f}).",
    ]
    if no_lr:
        top = max(no_lr, key=lambda r: (r["B_T"], r["contestant"]))
        parts.append(
            f"Of the methods that need no learning rate, {top['contestant']} does best (B on T = {top['B_T']:.3f})."
        )
    ref = next((r for r in rows if r["contestant"] == REFERENCE), None)
    if ref is not None:
        beat = [r["contestant"] for r in rows if r["B_T"] > ref["B_T"]]
        parts.append(
            f"Tuned AdamW ({REFERENCE}) has B on T = {ref['B_T']:.3f}; "
            + (f"ahead of it once tuning is paid: {', '.join(beat)}." if beat else "nothing beats it on T here.")
        )
    unreached = [w for w in workloads if all(not math.isfinite(t[c][w]) for c in t)]
    if unreached:
        parts.append(f"No contestant reached the target on: {', '.join(unreached)}.")
    return " ".join(parts)


def _select(
    summaries: list[dict], config: dict, workloads: Sequence[str] | None, contestants: Sequence[str] | None
) -> tuple[list[str], list[str], list[dict]]:
    """The scored workloads and contestants (arguments, else config.json, else what the trials hold) and their trials,
    plus the base-search trials of a family base that is not scored itself (they are charged to its members)."""
    workloads = list(workloads or config.get("workloads") or sorted({s["workload"] for s in summaries}))
    contestants = list(contestants or config.get("contestants") or sorted({s["contestant"] for s in summaries}))
    bases = {s2.get("transfer_from") for s2 in summaries}
    kept = [s for s in summaries if s["contestant"] in contestants and s["workload"] in workloads] + [
        s
        for s in summaries
        if s["contestant"] in contestants
        and s["workload"] not in workloads
        and s.get("kind") == "trial"
        and s["workload"] in bases
    ]
    return workloads, contestants, kept


def _md_intro(run_dir: Path, config: dict, workloads: Sequence[str], contestants: Sequence[str], n: int) -> list[str]:
    lines = [f"# Arena report: {run_dir.name}", ""]
    if config:
        lines += [
            f"Preset `{config.get('preset')}`: {len(workloads)} workloads, {len(contestants)} contestants, "
            f"{config.get('studies')} studies, {config.get('trials')} trials per study of an external contestant; "
            f"{n} finished trials. Command: `{config.get('command', '')}`.",
            "",
        ]
    return lines + [
        "Clock: CPU-seconds of init + step (torch on one thread); evaluation off the clock. "
        f"B = normalized area under the performance profile from 1 to {TAU_MAX:g} (1 = fastest everywhere). "
        "t: time to target (fastest hitting trial per study, median over studies); T: total cost, every trial up to "
        "the first hit plus what is charged once. Rules: arena/README.md.",
        "",
    ]


def _md_leaderboard(rows: list[dict]) -> list[str]:
    lines = [
        "## Leaderboard",
        "",
        f"| contestant | ruleset | B on t | B on T | B vs {REFERENCE} | coverage | hits / trials |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['contestant']} | {r['ruleset']} | {r['B_t']:.3f} | {r['B_T']:.3f} | "
            f"{r['B_ref']:.3f} | {r['coverage']:.0%} | {r['hits']} / {r['trials']} |"
        )
    return lines


def _md_times(t: dict, T: dict, scored: list[dict], workloads: Sequence[str], contestants: Sequence[str]) -> list[str]:
    lines: list[str] = []
    for title, table in (("Time to target t (CPU-s)", t), ("Total cost T including tuning (CPU-s)", T)):
        lines += [
            "",
            f"## {title}",
            "",
            "| contestant | " + " | ".join(workloads) + " |",
            "|---|" + "---|" * len(workloads),
        ]
        for c in contestants:
            cells = [_fmt_t(table[c][w], _na(scored, c, w)) for w in workloads]
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
    return lines


def _md_targets(scored: list[dict], workloads: Sequence[str]) -> list[str]:
    lines = ["", "## Targets", "", "| workload | metric | target | budget (CPU-s) | hits |", "|---|---|---|---|---|"]
    for w in workloads:
        mine = [s for s in scored if s["workload"] == w and s.get("status") != "n/a"]
        if mine:
            m = mine[0]
            lines.append(
                f"| {w} | {m.get('metric')} ({m.get('direction')}) | {float(m['target']):.4g} | "
                f"{float(m['budget']) / (1.5 if m.get('ruleset') == 'self' else 1.0):.3g} | "
                f"{sum(1 for s in mine if s.get('hit'))} / {len(mine)} |"
            )
    return lines


def _md_costs(scored: list[dict], contestants: Sequence[str]) -> list[str]:
    lines = [
        "",
        "## Cost breakdown (CPU-s, summed over all trials)",
        "",
        "| contestant | trials | clocked | of it init | charged once (per study) | passes fwd / bwd | wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in contestants:
        mine = [s for s in scored if s["contestant"] == c and s.get("status") != "n/a"]
        if not mine:
            lines.append(f"| {c} | 0 | | | | | |")
            continue
        lines.append(
            f"| {c} | {len(mine)} | {sum(float(s.get('cpu', 0)) for s in mine):.1f} | "
            f"{sum(float(s.get('init_cpu', 0)) for s in mine):.1f} | "
            f"{max(float(s.get('charged_once', 0)) for s in mine):.1f} | "
            f"{sum(int(s.get('forwards') or 0) for s in mine)} / {sum(int(s.get('backwards') or 0) for s in mine)} | "
            f"{sum(float(s.get('wall', 0)) for s in mine):.1f} |"
        )
    errors = [s for s in scored if s.get("status") == "error"]
    if errors:
        lines += ["", "## Errors (counted as misses)", ""]
        for s in errors[:20]:
            lines.append(f"- {s['contestant']} on {s['workload']} s{s['study']} t{s['trial']}: {s.get('message', '')}")
    return lines


def _md_figures(run_dir: Path, figures: list[Path], contestants: Sequence[str]) -> list[str]:
    lines = ["## Figures", ""] + [f"![{p.stem}]({p.relative_to(run_dir)})" for p in figures] + [""]
    if any(c == "genfunc_sgd" for c in contestants):
        lines += [
            "Note: genfunc_sgd applies the squared-loss theory to classification workloads through the NTK of "
            "the logits and the residual one-hot minus initial outputs (a proxy).",
            "",
        ]
    return lines


def _load(run_dir: Path, studies: int | None) -> list[dict[str, Any]]:
    """The run's finished trials, only those of the first ``studies`` studies when given."""
    from arena.run import load_summaries

    summaries = load_summaries(run_dir)
    return summaries if studies is None else [s for s in summaries if int(s["study"]) < studies]


def _scored(run_dir: Path, studies: int | None, workloads, contestants) -> tuple:
    """(config, workloads, contestants, summaries, scored summaries, t table, T table) of a run's selection."""
    config_file = run_dir / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    workloads, contestants, summaries = _select(_load(run_dir, studies), config, workloads, contestants)
    scored = [s for s in summaries if s["workload"] in workloads]
    t = score.times_table(scored, contestants, workloads, "t")
    T = score.times_table(scored, contestants, workloads, "T")
    return config, workloads, contestants, summaries, scored, t, T


def write_report(
    run_dir: str | Path,
    workloads: Sequence[str] | None = None,
    contestants: Sequence[str] | None = None,
    studies: int | None = None,
) -> Path:
    """Write ``<run_dir>/REPORT.md`` (and its PNGs) from the finished trials (of the first ``studies`` studies when
    given: a study still running is left out); returns the report path."""
    run_dir = Path(run_dir)
    config, workloads, contestants, summaries, scored, t, T = _scored(run_dir, studies, workloads, contestants)
    rows = leaderboard(scored, workloads, contestants)
    figs = run_dir / "figures"
    figures = [_plot_profiles(t, T, figs / "profiles.png")]
    figures += [p for p in [_plot_lr(scored, workloads, figs / "lr_sensitivity.png")] if p]
    figures += [p for w in workloads if (p := _plot_curves(run_dir, scored, w, figs / f"curve_{w}.png"))]

    lines = _md_intro(run_dir, config, workloads, contestants, len(summaries)) + _md_leaderboard(rows)
    lines += _md_times(t, T, scored, workloads, contestants) + _md_targets(scored, workloads)
    lines += _md_costs(scored, contestants)
    lines += ["", "## Which to use", "", _which_to_use(rows, t, T, workloads), ""]
    lines += _md_figures(run_dir, figures, contestants)
    out = run_dir / "REPORT.md"
    tmp = run_dir / ".REPORT.md.tmp"
    tmp.write_text("\n".join(lines))
    tmp.replace(out)
    (run_dir / "scores.json").write_text(json.dumps({"leaderboard": rows, "t": _plain(t), "T": _plain(T)}, indent=2))
    return out


def _plain(table: dict) -> dict:
    return {c: {w: (v if math.isfinite(v) else None) for w, v in row.items()} for c, row in table.items()}


def export(
    run_dir: str | Path, path: str | Path, studies: int | None = None, workloads: Sequence[str] | None = None
) -> Path:
    """Write the scores of a run with its provenance (the leaderboard file a README quotes, e.g.
    arena/leaderboard.json): leaderboard, t and T tables, per workload target, budget and hits / trials."""
    import time

    run_dir = Path(run_dir)
    config, workloads, contestants, summaries, scored, t, T = _scored(run_dir, studies, workloads, None)
    per_workload = {}
    for w in workloads:
        mine = [s for s in scored if s["workload"] == w and s.get("status") != "n/a"]
        ext = next((s for s in mine if s.get("ruleset") != "self"), mine[0] if mine else {})
        per_workload[w] = {
            "metric": ext.get("metric"),
            "direction": ext.get("direction"),
            "target": ext.get("target"),
            "budget": ext.get("budget"),
            "hits": sum(1 for s in mine if s.get("hit")),
            "trials": len(mine),
        }
    studies = sorted({int(s["study"]) for s in scored})
    ranks = int(config.get("ranks", 1))
    command = config.get("command", "")
    doc = {
        "provenance": {
            "command": (f"mpirun -n {ranks} " if ranks > 1 else "") + command,
            "commit": git_commit(REPO_ROOT),
            "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "studies_finished": len(studies),
            "trials_per_study": config.get("trials"),
            "workloads": workloads,
            "finished_trials": len(summaries),
            "ranks": ranks,
        },
        "leaderboard": leaderboard(scored, workloads, contestants),
        "t": _plain(t),
        "T": _plain(T),
        "workloads": per_workload,
    }
    path = Path(path)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m arena.report", description=__doc__.split("\n")[0])
    p.add_argument("run", help="an arena run folder (e.g. results/arena/quick)")
    p.add_argument("--export", default=None, metavar="FILE", help="also write the scores and provenance as JSON")
    p.add_argument("--studies", type=positive_int, default=None, metavar="S", help="score only the first S studies")
    p.add_argument(
        "--workloads", type=csv_list(str), default=None, metavar="A,B", help="score only these workloads of the run"
    )
    args = p.parse_args(argv)
    run_dir = Path(args.run)
    if not (run_dir / "trials").is_dir():
        raise MissingInputError(f"no arena trials under {run_dir}")
    print(f"report: {write_report(run_dir, args.workloads, studies=args.studies)}")
    if args.export:
        print(f"scores: {export(run_dir, args.export, args.studies, args.workloads)}")
    return 0


if __name__ == "__main__":
    run_main(main)
