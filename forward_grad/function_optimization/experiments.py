"""Grid runner behind math_experiments.py (DESIGN.md §4; paper sec. 4.2 and 4.3): one GD run per
(function, n, approach, sampler, seed), rows for all.csv, history.csv and summary.csv, resumable by key."""

from __future__ import annotations

import math
from dataclasses import dataclass

from common.cli import UsageError
from forward_grad.forward_gradient.theory import sphere_optimal_lr
from forward_grad.function_optimization.optimize import optimize, parse_approach

__all__ = [
    "Cell",
    "CUSTOM_ANGLES",
    "STANDARD_APPROACHES",
    "STANDARD_N",
    "standard_cells",
    "custom_tangent_cells",
    "run_cell",
    "summarize",
    "ALL_FIELDS",
]

ALL_FIELDS = ["function", "n", "approach", "k", "sampler", "seed", "lr", "final_f", "best_f", "final_minus_fstar"]
ALL_FIELDS += ["steps", "stop_reason", "degenerate", "seconds"]
CUSTOM_ANGLES = (15, 30, 45, 60, 75, 90)
STANDARD_APPROACHES = ("bp", "fg-mean:1", "fg-mean:2", "fg-mean:4", "fg-mean:16", "frog:2", "frog:4", "frog:16")
STANDARD_N = tuple(2**i for i in range(11))  # 1 ... 1024: the grid of sec. 4.2 and lrs/math.csv


@dataclass(frozen=True)
class Cell:
    function: str
    n: int
    approach: str  # bp | fg-mean:K | frog:K | fg:K:<aggregation>
    sampler: str
    seed: int

    @property
    def key(self) -> tuple:
        return (self.function, str(self.n), self.approach, self.sampler, str(self.seed))


def standard_cells(functions, ns, approaches, seeds, sampler="normal") -> list[Cell]:
    for a in approaches:
        parse_approach(a)
    return [Cell(f, n, a, sampler, s) for f in functions for n in ns for a in approaches for s in seeds]


def custom_tangent_cells(seeds, ks=(16, 64), angles=CUSTOM_ANGLES, n=64) -> list[Cell]:
    """DESIGN.md §6 E3: Styblinski-Tang n = 64, mean with specific_angle_theta, frog with normal tangents."""
    cells = []
    for k in ks:
        for theta in angles:
            cells += [Cell("styblinski-tang", n, f"fg-mean:{k}", f"specific_angle_{theta}", s) for s in seeds]
            cells += [Cell("styblinski-tang", n, f"frog:{k}", f"specific_angle_{theta}", s) for s in seeds]
    return cells


def resolve_lr(cell: Cell, lr, lr_lookup) -> float:
    """lr: a float, "sphere_optimal" (3.2 closed form, sphere only) or None (table lookup)."""
    ap = parse_approach(cell.approach)
    if lr == "sphere_optimal":
        if cell.function != "sphere":
            raise UsageError("--lr sphere_optimal exists only for the sphere")
        agg = "bp" if ap.gradient == "bp" else ("frog" if ap.gradient == "frog" else "mean")
        return sphere_optimal_lr(cell.n, ap.k, agg)
    if lr is not None:
        return float(lr)
    grad = "bp" if ap.gradient == "bp" else ap.gradient
    return lr_lookup(cell.function, cell.n, grad, ap.k, cell.sampler)


def run_cell(cell: Cell, lr: float, max_steps=None, patience=50, dtype="float32", jvp_backend="analytic", history=10):
    r = optimize(
        cell.function,
        cell.n,
        cell.approach,
        lr,
        history_every=history,
        max_steps=max_steps,
        patience=patience,
        seed=cell.seed,
        sampler=cell.sampler,
        dtype=dtype,
        jvp_backend=jvp_backend,
    )
    ap = parse_approach(cell.approach)
    row = {
        "function": cell.function,
        "n": cell.n,
        "approach": cell.approach,
        "k": "" if ap.gradient == "bp" else ap.k,
        "sampler": cell.sampler,
        "seed": cell.seed,
        "lr": lr,
        "final_f": r.final_f,
        "best_f": r.best_f,
        "final_minus_fstar": r.final_minus_fstar,
        "steps": r.steps,
        "stop_reason": r.stop_reason,
        "degenerate": r.degenerate,
        "seconds": round(r.seconds, 4),
    }
    return row, r.history


def summarize(rows: list[dict]) -> list[dict]:
    """Mean (and count) of final f and f - f* over seeds per (function, n, approach, sampler)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["function"], int(row["n"]), row["approach"], row["sampler"]), []).append(row)
    out = []
    for (fn, n, ap, sampler), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], kv[0][3])):
        finals = [float(r["final_f"]) for r in rs]
        gaps = [float(r["final_minus_fstar"]) for r in rs]
        out.append(
            {
                "function": fn,
                "n": n,
                "approach": ap,
                "sampler": sampler,
                "seeds": len(rs),
                "mean_final_f": sum(finals) / len(finals),
                "mean_final_minus_fstar": sum(gaps) / len(gaps),
                "min_final_minus_fstar": min(gaps),
                "max_final_minus_fstar": max(gaps),
                "all_finite": all(math.isfinite(v) for v in finals),
            }
        )
    return out
