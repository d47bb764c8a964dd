"""The dag_mlp family (README.md §3): hp_scaling DAG MLPs of width 64 on the fixed mnist5k split.

All three members share data, batch size, step hint and the paper's init (eq. 4, ``init="paper"``); only the DAG
differs. ``dag_mlp_base`` is the chain the others transfer from (FAMILY_BASE).
"""

from __future__ import annotations

from arena.workloads import _common as C
from hp_scaling.models import build_model

FAMILY = "dag_mlp"
FAMILY_BASE = "dag_mlp_base"
METRIC, DIRECTION = "accuracy", "max"
BATCH_SIZE, STEP_HINT, EVAL_EVERY = 128, 400, 20
WIDTH = 64


def build_dag(code: str, device) -> dict:
    """DagMLP(code, 784 -> 64 -> 10, paper init) on mnist5k's 3000/1000/1000 split."""
    train, val, test = C.cached_split("mnist5k", 1000, 1000)
    model = build_model("mlp", code, in_shape=(1, 28, 28), num_classes=10, width=WIDTH, init="paper").to(device)
    return {"model": model, "train": train, "val": val, "test": test}
