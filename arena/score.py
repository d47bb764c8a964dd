"""Scores of the arena (README.md §6): time to target, total cost, performance profiles, benchmark scores.

Pure functions of plain data: trial summaries (dicts as written by arena.trial) in, numbers out; nothing here reads
the clock or trains. The fixed API that tests and users call is :func:`performance_profile` and
:func:`benchmark_score` over ``times[contestant][workload]`` (a float; ``math.inf`` for a miss; a workload that some
contestant lacks counts as a miss for it).

Definitions (AlgoPerf's method, README.md §6):
  r_{c,w} = t_{c,w} / min_c t_{c,w}                      (inf when c misses w, or nobody reaches w)
  rho_c(tau) = |{w : r_{c,w} <= tau}| / |W|
  B_c = 1/(tau_max - 1) * integral_1^tau_max rho_c(tau) dtau
      = 1/(|W| (tau_max - 1)) * sum_w max(0, tau_max - max(r_{c,w}, 1))   (rho is a step function: exact sum)
With a fixed reference contestant ``ref`` the ratio is r_{c,w} = t_{c,w} / t_{ref,w} instead (a ratio below 1 gets
full credit; a workload the reference misses gives full credit to every contestant that reaches it).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "benchmark_score",
    "coverage",
    "median",
    "performance_profile",
    "ratios",
    "time_to_target",
    "total_cost",
    "times_table",
    "group_trials",
]

Times = Mapping[str, Mapping[str, float]]


def median(values: Sequence[float]) -> float:
    """Median with infinities allowed (the mean of the two middle values for an even count); inf when empty."""
    vals = sorted(float(v) for v in values)
    if not vals:
        return math.inf
    n = len(vals)
    mid = n // 2
    if n % 2:
        return vals[mid]
    a, b = vals[mid - 1], vals[mid]
    return math.inf if math.isinf(a) or math.isinf(b) else 0.5 * (a + b)


def _workloads(times: Times) -> list[str]:
    seen: dict[str, None] = {}
    for per in times.values():
        for w in per:
            seen.setdefault(w, None)
    return list(seen)


def _t(times: Times, c: str, w: str) -> float:
    v = times[c].get(w, math.inf)
    return math.inf if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def ratios(times: Times, reference: str | None = None) -> dict[str, dict[str, float]]:
    """r_{c,w}: to the best contestant on w, or to ``reference``'s time on w when given."""
    out: dict[str, dict[str, float]] = {c: {} for c in times}
    for w in _workloads(times):
        if reference is None:
            base = min(_t(times, c, w) for c in times)
        else:
            if reference not in times:
                raise ValueError(f"reference contestant {reference!r} has no times")
            base = _t(times, reference, w)
        for c in times:
            t = _t(times, c, w)
            if math.isinf(t):
                out[c][w] = math.inf
            elif math.isinf(base):
                out[c][w] = 0.0  # the reference misses w and c reaches it
            else:
                out[c][w] = t / base if base > 0 else (1.0 if t == base else math.inf)
    return out


def performance_profile(times: Times, taus: Iterable[float], reference: str | None = None) -> dict[str, list[float]]:
    """{contestant: [rho_c(tau) for tau in taus]}: the fraction of workloads with r_{c,w} <= tau."""
    taus = [float(t) for t in taus]
    r = ratios(times, reference)
    n = len(_workloads(times))
    if n == 0:
        return {c: [0.0 for _ in taus] for c in times}
    return {c: [sum(1 for v in r[c].values() if v <= tau) / n for tau in taus] for c in times}


def benchmark_score(times: Times, tau_max: float = 4.0, reference: str | None = None) -> dict[str, float]:
    """{contestant: B_c in [0, 1]}, the normalized area under rho_c from 1 to tau_max, computed exactly."""
    if not tau_max > 1:
        raise ValueError(f"tau_max must be > 1, got {tau_max}")
    r = ratios(times, reference)
    n = len(_workloads(times))
    if n == 0:
        return {c: 0.0 for c in times}
    return {
        c: sum(max(0.0, tau_max - max(v, 1.0)) for v in r[c].values() if v <= tau_max) / (n * (tau_max - 1.0))
        for c in times
    }


def coverage(times: Times) -> dict[str, float]:
    """Fraction of workloads each contestant reaches at all."""
    n = len(_workloads(times))
    return {c: (sum(1 for w in _workloads(times) if math.isfinite(_t(times, c, w))) / n if n else 0.0) for c in times}


# ------------------------------------------------------------------ from trial summaries
def _finite_time(s: Mapping[str, Any]) -> float:
    if not s.get("hit"):
        return math.inf
    t = float(s.get("time_to_target", math.inf))
    budget = float(s.get("budget", math.inf))
    return t if t <= budget else math.inf


def group_trials(summaries: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], dict[int, list[Mapping[str, Any]]]]:
    """{(contestant, workload): {study: [summaries sorted by trial]}}."""
    out: dict[tuple[str, str], dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for s in summaries:
        out[(s["contestant"], s["workload"])][int(s["study"])].append(s)
    for studies in out.values():
        for trials in studies.values():
            trials.sort(key=lambda s: int(s["trial"]))
    return {k: dict(v) for k, v in out.items()}


def time_to_target(studies: Mapping[int, Sequence[Mapping[str, Any]]]) -> float:
    """t_{c,w}: per study the fastest trial that reaches the target within its budget, then the median over studies."""
    if not studies:
        return math.inf
    return median([min((_finite_time(s) for s in trials), default=math.inf) for trials in studies.values()])


def total_cost(studies: Mapping[int, Sequence[Mapping[str, Any]]]) -> float:
    """T_{c,w}: per study the clocked CPU-s of every trial in trial order up to and including the first hit, plus what
    is charged once (``charged_once``, e.g. a transferred LR's base search); inf without a hit; median over studies."""
    if not studies:
        return math.inf
    per_study = []
    for trials in studies.values():
        spent, cost = 0.0, math.inf
        for s in trials:
            spent += float(s.get("cpu", 0.0))
            if math.isfinite(_finite_time(s)):
                cost = spent + max(float(s.get("charged_once", 0.0)) for s in trials)
                break
        per_study.append(cost)
    return median(per_study)


def times_table(
    summaries: Iterable[Mapping[str, Any]], contestants: Sequence[str], workloads: Sequence[str], kind: str = "t"
) -> dict[str, dict[str, float]]:
    """{contestant: {workload: t or T}} over the given names; a pair without trials (or n/a) is inf."""
    groups = group_trials(summaries)
    fn = time_to_target if kind == "t" else total_cost
    return {c: {w: fn(groups.get((c, w), {})) for w in workloads} for c in contestants}
