"""Hyperparameter draws for the external ruleset (README.md §4): scrambled Halton points mapped onto a search space.

A search space maps names to ``{"min", "max", "scaling": "log" | "linear"}``, ``{"points": [...]}`` or
``{"value": v}`` (fixed). Draws are a pure function of (space, seed): trial i of a study is point i.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

from scipy.stats import qmc

from common.cli import UsageError

__all__ = ["draw", "stable_seed", "check_space"]


def stable_seed(*parts: Any) -> int:
    """A 31-bit seed from the text of ``parts`` (sha256), identical on every rank and every run."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


def check_space(space: Mapping[str, Mapping[str, Any]], owner: str) -> None:
    """Raise UsageError for a malformed search space."""
    for name, spec in space.items():
        if not isinstance(spec, Mapping):
            raise UsageError(f"{owner}: SEARCH_SPACE[{name!r}] must be a dict")
        if "points" in spec:
            if not spec["points"]:
                raise UsageError(f"{owner}: SEARCH_SPACE[{name!r}] has no points")
        elif "value" in spec:
            continue
        else:
            lo, hi = spec.get("min"), spec.get("max")
            if lo is None or hi is None or not lo <= hi:
                raise UsageError(f"{owner}: SEARCH_SPACE[{name!r}] needs min <= max")
            if spec.get("scaling", "linear") == "log" and lo <= 0:
                raise UsageError(f"{owner}: SEARCH_SPACE[{name!r}] log scaling needs min > 0")


def _map(spec: Mapping[str, Any], u: float) -> Any:
    if "value" in spec:
        return spec["value"]
    if "points" in spec:
        pts = list(spec["points"])
        return pts[min(int(u * len(pts)), len(pts) - 1)]
    lo, hi = float(spec["min"]), float(spec["max"])
    if spec.get("scaling", "linear") == "log":
        return math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    return lo + u * (hi - lo)


def draw(space: Mapping[str, Mapping[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` settings: the first n points of a scrambled Halton sequence (seeded) in [0, 1)^d mapped onto ``space``."""
    names = list(space)
    if not names:
        return [{} for _ in range(n)]
    points = qmc.Halton(d=len(names), scramble=True, seed=seed).random(n)
    return [{k: _map(space[k], float(u)) for k, u in zip(names, row)} for row in points]
