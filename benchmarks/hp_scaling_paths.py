"""Path counting benchmark (hp_scaling/DESIGN.md §9): exact DP vs DFS enumeration on complete DAGs.

Target: path_moments / depth_histogram >= 10x faster than enumerate_paths + summation on the complete 12-node DAG,
with identical S(offset 3). N = 16 and N = 20 are printed without a target. Writes results/bench/hp_scaling_paths.json.
"""

from __future__ import annotations

from common.bench import BenchReport, compare
from common.cli import ArgumentParser, positive_int, run_main
from hp_scaling.dags import depth_histogram, enumerate_paths, parse_code, path_moments


def complete(n: int) -> str:
    return "_".join("2" * t for t in range(1, n))


def s_by_dfs(dag, offset: int = 3) -> int:
    return sum((sum(1 for (_, _, d) in p if dag.is_parameterized(d)) + offset) ** 3 for p in enumerate_paths(dag))


def s_by_hist(dag, offset: int = 3) -> int:
    return sum(c * (k + offset) ** 3 for k, c in depth_histogram(dag).items())


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=positive_int, default=5, metavar="INT", help="timed repetitions")
    p.add_argument("--sizes", nargs="+", type=positive_int, default=[12, 16, 20], metavar="N", help="DAG sizes")
    args = p.parse_args(argv)
    rep = BenchReport("hp_scaling_paths")
    for n in args.sizes:
        dag = parse_code(complete(n))
        s_dfs, s_dp, s_h = s_by_dfs(dag), path_moments(dag, 3).S, s_by_hist(dag)
        if not s_dfs == s_dp == s_h:
            raise RuntimeError(f"S differs on N={n}: DFS {s_dfs}, moments {s_dp}, histogram {s_h}")
        reps = args.reps if n <= 16 else 1
        target = 10.0 if n == 12 else None
        base, hist = compare(lambda d=dag: s_by_dfs(d), lambda d=dag: s_by_hist(d), warmup=1, reps=reps)
        rep.add(f"P{n}h", f"S of complete N={n}: histogram", base.median_s, hist.median_s, target, f"S = {s_dp}")
        base, mom = compare(lambda d=dag: s_by_dfs(d), lambda d=dag: path_moments(d, 3).S, warmup=1, reps=reps)
        rep.add(f"P{n}m", f"S of complete N={n}: moments", base.median_s, mom.median_s, target, "DFS / DP")
    rep.finish()
    return 0


if __name__ == "__main__":
    run_main(main)
