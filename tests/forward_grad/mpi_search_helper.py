"""Run under mpirun by test_fg_mpi.py: a sphere search whose first evaluation on rank 1 raises (spec 7.13)."""

from __future__ import annotations

import json
import sys

from mpi4py import MPI

from forward_grad.lr_search.search import SearchConfig, _math_steps, run_search


def steps(cfg, lr):
    if MPI.COMM_WORLD.rank == 1 and not getattr(steps, "raised", False):
        steps.raised = True
        raise RuntimeError("forced failure for spec 7.13")
    yield from _math_steps(cfg, lr)


if __name__ == "__main__":
    root, evaluations = sys.argv[1], int(sys.argv[2])
    fail = sys.argv[3] == "fail" if len(sys.argv) > 3 else False
    cfg = SearchConfig(mode="math", function="sphere", n=16, gradient="fg-mean", k=1, num_evaluations=evaluations,
                       max_steps=60, search_root=root, no_progress=True, limits=(-4.0, 0.0))  # fmt: skip
    res = run_search(cfg, steps if fail else None)
    print(json.dumps({"rank": MPI.COMM_WORLD.rank, "best_lr": res.best_lr, "population": res.population,
                      "evaluated": res.evaluated}), flush=True)  # fmt: skip
