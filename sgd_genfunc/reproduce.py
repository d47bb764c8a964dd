"""Preregistered reproductions R1-R6 of DESIGN.md §6: run, check every rule, write report.md, summary.json and figures.

Examples: python sgd_genfunc/reproduce.py --quick (make demo sizes); python sgd_genfunc/reproduce.py (make
reproduce: R1 with b in {10, 100}, R3 at N = 1e5, R4 at N = T = 1e4, R6 40 x 40); --only R1,R3 selects rows.
"""

from __future__ import annotations

import time

from common.cli import UsageError, csv_list, run_main
from sgd_genfunc import scripting
from sgd_genfunc.claims import ALL, run
from sgd_genfunc.plots import plot

DEMO_ROWS = ("R1", "R2", "R3", "R4", "R5")


def build_parser():
    p = scripting.make_parser(__doc__.split("\n")[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="demo sizes (make demo), rows R1-R5")
    g.add_argument("--ci", action="store_true", help="the CI sizes of DESIGN.md §6 (slow tests)")
    p.add_argument("--only", type=csv_list(str), default=None, metavar="R1,R3", help="run only these rows")
    scripting.add_run_block(p, devices=("cpu",))  # the presets are sized for the CPU; GPU commands: README
    return p


def report_markdown(reps) -> str:
    lines = ["# sgd_genfunc reproductions (DESIGN.md §6)", "", "| id | claim | size | verdict |", "|---|---|---|---|"]
    lines += [f"| {r.rid} | {r.claim} | {r.size} | {r.verdict} |" for r in reps]
    for r in reps:
        lines += ["", f"## {r.rid}: {r.claim}", "", "| rule | expected | measured | pass |", "|---|---|---|---|"]
        lines += [f"| {x.name} | {x.expected} | {x.measured} | {'yes' if x.passed else 'no'} |" for x in r.rules]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = build_parser().parse_args(argv)
    preset = "demo" if args.quick else ("ci" if args.ci else "full")
    rows = [r.strip().upper() for r in args.only] if args.only else (list(DEMO_ROWS) if args.quick else list(ALL))
    unknown = [r for r in rows if r not in ALL]
    if unknown:
        raise UsageError(f"unknown rows {unknown}; choose from {', '.join(ALL)}")
    run_dir = scripting.open_script_run("reproduce", args)
    t0 = time.time()
    reps = []
    bar = scripting.progress_bar(args, len(rows), "claims")
    for rid in rows:
        rep = run(rid, preset, seed=args.seed)
        plot(rep, run_dir.path)
        reps.append(rep)
        bar.update(1)
        bar.write(f"{rid}: {rep.verdict} ({rep.size})")
    bar.close()
    (run_dir.path / "report.md").write_text(report_markdown(reps))
    run_dir.finish({"preset": preset, "rows": [r.summary() for r in reps], "wall_time_s": scripting.wall(t0)})
    return 0


if __name__ == "__main__":
    run_main(main)
