"""A grid of math LR searches in one MPI job: the lrs/math.csv and lrs/math__custom_tangents.csv tables.

    mpirun -n 2 python forward_grad/lr_search/sweep.py --grid math --num_evaluations 100
    mpirun -n 2 python forward_grad/lr_search/sweep.py --grid math --functions rosenbrock --n 16
    mpirun -n 2 python forward_grad/lr_search/sweep.py --grid math_custom_tangents --num_evaluations 100

Every label is the search that `propulate_search.py --num_evaluations E --gradient G -k K math --function F -n N`
runs (same run dir, checkpoint and resume, so a finished label evaluates nothing), but the interpreter, torch and
propulate start once for the whole grid instead of once per label (about 10 s each, 264 times). The grid ends with
`extract_best` for its table unless --no_extract.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from common.cli import ArgumentParser, UsageError, nonneg_int, positive_int, run_main
from forward_grad.function_optimization.experiments import CUSTOM_ANGLES, STANDARD_APPROACHES, STANDARD_N
from forward_grad.function_optimization.optimize import MATH_BACKENDS, parse_approach


def grid_cells(grid: str, functions=None, ns=None, approaches=None) -> list[tuple[str, int, str, str]]:
    """(function, n, approach, sampler) cells of a table; `math` can be narrowed by functions, ns, approaches."""
    if grid == "math_custom_tangents":
        cells = []
        for k in (16, 64):
            cells += [("styblinski-tang", 64, f"fg-mean:{k}", f"specific_angle_{a}") for a in CUSTOM_ANGLES]
            cells.append(("styblinski-tang", 64, f"frog:{k}", "normal"))
        return cells
    approaches = approaches or STANDARD_APPROACHES
    for a in approaches:
        parse_approach(a)
    fns = functions or ["sphere", "styblinski-tang", "rosenbrock"]
    return [(f, n, a, "normal") for f in fns for n in sorted(ns or STANDARD_N, reverse=True) for a in approaches]


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="sweep.py", description=__doc__)
    p.add_argument("--grid", default="math", choices=["math", "math_custom_tangents"], help="which table")
    p.add_argument("--functions", nargs="+", default=None, metavar="FN", help="math: narrow the functions")
    p.add_argument("--n", nargs="+", type=positive_int, default=None, metavar="N", help="math: narrow the dimensions")
    p.add_argument("--approaches", nargs="+", default=None, metavar="A", help="math: bp, fg-mean:K, frog:K")
    p.add_argument("--num_evaluations", type=positive_int, default=100, metavar="INT", help="per label, in total")
    p.add_argument("--limits", nargs=2, type=float, default=[-6.0, 0.0], metavar=("LO", "HI"), help="lr_log10")
    p.add_argument("--seed", type=nonneg_int, default=0, metavar="INT")
    p.add_argument("--jvp_backend", default="analytic", choices=list(MATH_BACKENDS))
    p.add_argument("--search_root", default="results/forward_grad/lr_search", metavar="DIR")
    p.add_argument("--outfile", default=None, metavar="CSV", help="extract_best target (default: lrs/<table>)")
    p.add_argument("--no_extract", action="store_true", help="skip extract_best at the end")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cells = grid_cells(args.grid, args.functions, args.n, args.approaches)
    except ValueError as err:
        raise UsageError(str(err)) from None
    from mpi4py import MPI

    from forward_grad.lr_search.search import SearchConfig, run_search

    rank = MPI.COMM_WORLD.rank
    for i, (function, n, approach, sampler) in enumerate(cells, 1):
        ap = parse_approach(approach)
        cfg = SearchConfig(mode="math", limits=tuple(args.limits), num_evaluations=args.num_evaluations,
                           gradient=ap.gradient, k=ap.k, tangent_sampler=sampler, seed=args.seed,
                           search_root=args.search_root, no_progress=True, function=function, n=n,
                           jvp_backend=args.jvp_backend)  # fmt: skip
        try:
            cfg.validate()
        except ValueError as err:
            raise UsageError(str(err)) from None
        start = time.perf_counter()
        result = run_search(cfg)
        if rank == 0:
            print(f"[{i}/{len(cells)}] {result.run_dir}: best lr {result.best_lr:.4g}, {result.evaluated} run now, "
                  f"{time.perf_counter() - start:.1f} s", flush=True)  # fmt: skip
    if rank == 0 and not args.no_extract:
        from forward_grad.lr_search.extract import TASKS, extract_best
        from forward_grad.lr_search.get_best_lr import LRS_DIR

        outfile = args.outfile or LRS_DIR / TASKS[args.grid][1]
        rows = extract_best(args.search_root, args.grid, outfile)
        print(f"{len(rows)} rows -> {outfile}")
    return 0


if __name__ == "__main__":
    run_main(main)
