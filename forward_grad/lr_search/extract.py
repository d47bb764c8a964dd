"""extract_best (DESIGN.md §3.5): one LR per search label from its checkpoint, written to the lrs/ tables.

Per checkpoint: s = loss - f* (f* of DESIGN.md §3.4; 0 for NN); candidates = individuals with s <= s_min (1 + margin)
(margin 0.05); the pick is the candidate whose lr_log10 is closest to the candidates' mean lr_log10 (decision: the
mean is taken in search space).
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path

from common.cli import UsageError
from common.runs import write_csv
from forward_grad.function_optimization import get_function
from forward_grad.lr_search.search import load_population

log = logging.getLogger(__name__)

__all__ = ["pick_lr", "extract_best", "TASKS", "TABLE_COLUMNS"]

TASKS = {
    "math": ("math", "math.csv"),
    "math_custom_tangents": ("math", "math__custom_tangents.csv"),
    "fc-nn": ("nns", "fc_nns.csv"),
    "sota-nn": ("nns", "sota_nns.csv"),
}
MATH_COLUMNS = ["function", "n", "gradient_approach", "k", "tangent_sampler", "optimizer", "lr", "loss"]
MATH_COLUMNS += ["num_evaluations", "n_candidates", "degenerate"]
NN_COLUMNS = ["model", "width", "dataset", "epochs", "gradient_approach", "k", "optimizer", "lr", "loss"]
NN_COLUMNS += ["num_evaluations"]
TABLE_COLUMNS = {"math": MATH_COLUMNS, "nns": NN_COLUMNS}


def pick_lr(points: list[tuple[float, float]], fstar: float = 0.0, margin: float = 0.05):
    """points: (lr_log10, loss). Returns (lr_log10, loss, n_candidates) by the margin rule, or None if none finite."""
    finite = [(x, loss) for x, loss in points if math.isfinite(loss)]
    if not finite:
        return None
    s_min = min(loss - fstar for _, loss in finite)
    bound = s_min * (1 + margin) if s_min >= 0 else s_min * (1 - margin)
    cands = [(x, loss) for x, loss in finite if loss - fstar <= bound]
    mean = sum(x for x, _ in cands) / len(cands)
    x, loss = min(cands, key=lambda c: abs(c[0] - mean))
    return x, loss, len(cands)


def _row(cfg: dict, x: float, loss: float, count: int, total: int, kind: str) -> dict:
    common = {
        "gradient_approach": cfg["gradient"],
        "k": "" if cfg["gradient"] == "bp" else cfg["k"],
        "optimizer": "plain_sgd",
        "lr": f"{10**x:.6g}",
        "loss": f"{loss:.6g}",
        "num_evaluations": total,
    }
    if kind == "math":
        fn = get_function(cfg["function"])
        return {
            "function": cfg["function"],
            "n": cfg["n"],
            "tangent_sampler": cfg["tangent_sampler"],
            **common,
            "n_candidates": count,
            "degenerate": fn.degenerate(cfg["n"]),
        }
    return {
        "model": cfg["model"],
        "width": cfg["model_width"] if cfg["model_width"] is not None else "",
        "dataset": cfg["dataset"],
        "epochs": cfg["epochs"],
        **common,
    }


def _belongs(task: str, cfg: dict) -> bool:
    sampler = cfg.get("tangent_sampler", "normal")
    if task == "math":  # the 264-cell grid; frog K=64 (normal) belongs to the custom-tangent table
        return sampler == "normal" and not (cfg["function"] == "styblinski-tang" and cfg["n"] == 64 and cfg["k"] == 64)
    if task == "math_custom_tangents":
        custom_cell = cfg["function"] == "styblinski-tang" and cfg["n"] == 64 and cfg["k"] in (16, 64)
        return custom_cell and (sampler.startswith("specific_angle") or cfg["gradient"] == "frog")
    if task == "fc-nn":
        return cfg.get("model") == "fc"
    return cfg.get("model") != "fc"


KEY_COLUMNS = {
    "math": ("function", "n", "gradient_approach", "k", "tangent_sampler"),
    "nns": ("model", "width", "dataset", "epochs", "gradient_approach", "k"),
}


def _key(kind: str, row: dict) -> tuple:
    return tuple(str(row[c]) for c in KEY_COLUMNS[kind])


def extract_best(
    search_root: str | Path, task: str, outfile: str | Path, margin: float = 0.05, verbose=False, update=False
):
    """Scan search_root/<math|nns>/**/checkpoints and write one row per label to outfile; returns the rows.

    update: keep the rows of an existing outfile whose search is not under search_root (a partial re-run replaces
    only its own rows; row order follows the existing table, new rows at the end). verbose: log each pick (INFO)."""
    if task not in TASKS:
        raise UsageError(f"unknown --task {task!r}; choose from {', '.join(TASKS)}")
    kind, _ = TASKS[task]
    rows = []
    for cfg_path in sorted((Path(search_root) / kind).glob("**/config.json")):
        cfg = json.loads(cfg_path.read_text())
        if not _belongs(task, cfg):
            continue
        population = load_population(cfg_path.parent / "checkpoints")
        fstar = get_function(cfg["function"]).fstar(cfg["n"]) if kind == "math" else 0.0
        picked = pick_lr([(float(ind["lr_log10"]), float(ind.loss)) for ind in population], fstar, margin)
        if picked is None:
            continue
        rows.append(_row(cfg, *picked, len(population), kind))
        if verbose:
            log.info("%s: lr %s loss %s (%d candidates)", cfg["label"], rows[-1]["lr"], rows[-1]["loss"], picked[2])
    outfile = Path(outfile)
    if update and outfile.exists():
        with open(outfile, newline="") as handle:
            old = list(csv.DictReader(handle))
        new = {_key(kind, r): r for r in rows}
        rows = [new.pop(_key(kind, r), r) for r in old] + list(new.values())
    write_csv(outfile, rows, TABLE_COLUMNS[kind])
    return rows
