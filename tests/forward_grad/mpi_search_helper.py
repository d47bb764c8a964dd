"""Run under mpirun by test_fg_mpi.py: a sphere search whose first evaluation on rank 1 raises (DESIGN.md §7.13)."""

from __future__ import annotations

import json
import sys
import time

from mpi4py import MPI

from forward_grad.lr_search.search import SearchConfig, SearchFailedError, _math_steps, run_search


def steps(cfg, lr):
    if MPI.COMM_WORLD.rank == 1 and not getattr(steps, "raised", False):
        steps.raised = True
        raise RuntimeError("forced failure for DESIGN.md §7.13")
    yield from _math_steps(cfg, lr)


def slow(cfg, lr):
    """Evaluations that take long enough for the SIGKILL test to land in the middle of the search."""
    time.sleep(0.5)
    yield from _math_steps(cfg, lr)


def always_fails(cfg, lr):
    raise RuntimeError(f"every evaluation fails (rank {MPI.COMM_WORLD.rank})")
    yield  # pragma: no cover - a generator


if __name__ == "__main__":
    root, evaluations = sys.argv[1], int(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else ""
    cfg = SearchConfig(mode="math", function="sphere", n=16, gradient="fg-mean", k=1, num_evaluations=evaluations,
                       max_steps=60, search_root=root, no_progress=True, limits=(-4.0, 0.0))  # fmt: skip
    try:
        res = run_search(cfg, {"fail": steps, "allfail": always_fails, "slow": slow}.get(mode))
    except SearchFailedError as exc:
        print(json.dumps({"rank": MPI.COMM_WORLD.rank, "failed": str(exc)}), flush=True)
        sys.exit(1)
    print(json.dumps({"rank": MPI.COMM_WORLD.rank, "best_lr": res.best_lr, "population": res.population,
                      "evaluated": res.evaluated}), flush=True)  # fmt: skip
