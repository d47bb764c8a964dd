"""forward_grad (external ruleset): adamw_cosine's model, schedule and search space, but each trial's setting is
proposed by propulate's evolutionary propagator (the one forward_grad's LR search uses) from the study's results so
far, instead of the harness's quasi-random draws; same trial count (README.md §4).

The propagator is propulate's default (crossover 0.7, mutation 0.4, random init 0.1, sigma factor 0.05, as in
forward_grad.lr_search.search) over log10 LR, log10 weight decay and warmup fraction. Its population size is
forward_grad's default (8) capped at half the trial count (at least 2), so that a 5-trial study leaves the random
initial phase; trials of one study therefore run in order.
"""

from __future__ import annotations

import math
import random

from arena.contestants import adamw_cosine

NAME = "propulate_adamw"
RULESET = "external"
SEARCH_SPACE = adamw_cosine.SEARCH_SPACE
init = adamw_cosine.init
step = adamw_cosine.step


def _limits() -> dict:
    out = {}
    for key, spec in SEARCH_SPACE.items():
        lo, hi = float(spec["min"]), float(spec["max"])
        out[key] = (math.log10(lo), math.log10(hi)) if spec.get("scaling") == "log" else (lo, hi)
    return out


def _to_position(hparams: dict) -> dict:
    return {
        k: (math.log10(hparams[k]) if SEARCH_SPACE[k].get("scaling") == "log" else float(hparams[k]))
        for k in SEARCH_SPACE
    }


def _from_individual(ind) -> dict:
    out = {}
    for k, spec in SEARCH_SPACE.items():
        v = float(ind[k])
        lo, hi = _limits()[k]
        v = min(max(v, lo), hi)
        out[k] = 10.0**v if spec.get("scaling") == "log" else v
    return out


def propose(history: list[dict], seed: int, n_trials: int = 5) -> dict:
    """The next setting from the finished trials of this study (objective: lower is better, see README.md §6)."""
    from propulate import Individual, get_default_propagator

    from forward_grad.lr_search.search import SearchConfig

    limits = _limits()
    pop_size = max(2, min(SearchConfig(mode="nn").population_size, n_trials // 2))
    rng = random.Random(seed + 7919 * len(history))
    propagator = get_default_propagator(pop_size, limits, 0.7, 0.4, 0.1, 0.05, rng=rng)
    population = []
    for i, h in enumerate(history):
        ind = Individual(_to_position(h["hparams"]), limits, generation=i, rank=0)
        ind.loss = float(h["objective"])
        population.append(ind)
    child = propagator(population)
    return _from_individual(child)
