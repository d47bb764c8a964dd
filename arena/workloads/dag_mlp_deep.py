"""dag_mlp family member ``dag_mlp_deep``: a deeper chain of five Linear blocks (one path, k = 5) (README.md §3)."""

from __future__ import annotations

from arena.workloads import _common as C
from arena.workloads import _dag

NAME = "dag_mlp_deep"
METRIC, DIRECTION = _dag.METRIC, _dag.DIRECTION
BATCH_SIZE, STEP_HINT, EVAL_EVERY = _dag.BATCH_SIZE, _dag.STEP_HINT, _dag.EVAL_EVERY
FAMILY, FAMILY_BASE = _dag.FAMILY, _dag.FAMILY_BASE
DAG = "2_02_002_0002_00002"
TIER = "cpu"

loss = C.classification_loss
criterion = C.criterion
evaluate = C.accuracy


def build(seed: int, device) -> dict:
    """hp_scaling DagMLP for DAG 2_02_002_0002_00002."""
    return _dag.build_dag(DAG, device)
