"""Argument handling of the line-search optimizers (DESIGN.md §3.2, §3.3, §9): parameter-group forms, reference
aliases, and the range checks of the settings and of the per-group hyperparameters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

__all__ = [
    "LINE_SEARCH_KNOBS",
    "SETTINGS",
    "UNSET",
    "check_group_values",
    "check_not_sharded",
    "normalize_params",
    "pick",
    "resolve_betas",
    "resolve_grow",
    "validate_settings",
]

UNSET = object()

# keys that belong to the one shared line search and may not differ between groups
LINE_SEARCH_KNOBS = (
    "lr",
    "c",
    "init_step_size",
    "grow",
    "shrink",
    "beta_b",
    "max_trials",
    "beta_s",
    "eta_min",
    "eta_max",
    "speed_up",
    "line_search",
    "step_direction",
    "min_slope",
    "accept_ties",
    "nan_policy",
    "seed",
    "replay_rng",
    "reset_option",
    "smooth",
    "use_mv",
    "momentum",
    "beta",
)


def pick(name: str, value: Any, alias: str, alias_value: Any, default: Any) -> Any:
    """Resolve a knob given under its DESIGN.md name or its reference alias; both at once is a TypeError."""
    if value is not UNSET and alias_value is not UNSET:
        raise TypeError(f"got both {name!r} and its alias {alias!r}; pass one")
    if value is not UNSET:
        return value
    if alias_value is not UNSET:
        return alias_value
    return default


def resolve_grow(grow: Any, gamma: Any, n_batches_per_epoch: Any, default: float) -> float:
    """`grow`, or the SLS reference form gamma^(1/n_batches_per_epoch) (defaults 2 and 500); both is a TypeError."""
    if grow is not UNSET and (gamma is not UNSET or n_batches_per_epoch is not UNSET):
        raise TypeError("got both 'grow' and its reference form gamma^(1/n_batches_per_epoch); pass one")
    if grow is not UNSET:
        return grow
    if gamma is UNSET and n_batches_per_epoch is UNSET:
        return default
    g = 2.0 if gamma is UNSET else gamma
    n = 500 if n_batches_per_epoch is UNSET else n_batches_per_epoch
    return g ** (1.0 / n)


def normalize_params(params: Any) -> list[dict]:
    """Accept a plain iterable of tensors, a list of dicts, or the seed's list of iterables (one group each)."""
    if isinstance(params, torch.Tensor):
        raise TypeError("params must be an iterable of tensors, dicts or iterables, not a single tensor")
    items = list(params)
    if not items:
        raise ValueError("optimizer got an empty parameter list")
    kinds = set()
    for x in items:
        if isinstance(x, torch.Tensor):
            kinds.add("tensor")
        elif isinstance(x, dict):
            kinds.add("dict")
        elif isinstance(x, Iterable) and not isinstance(x, str | bytes):
            kinds.add("iterable")
        else:
            raise TypeError(f"params entries must be tensors, dicts or iterables of tensors, got {type(x).__name__}")
    if len(kinds) > 1:
        raise TypeError(f"params mixes forms {sorted(kinds)}; pass tensors, group dicts or iterables, not a mix")
    kind = kinds.pop()
    if kind == "tensor":
        return [{"params": items}]
    if kind == "dict":
        return [dict(g) for g in items]
    groups = []
    for x in items:
        tensors = list(x)
        if not all(isinstance(t, torch.Tensor) for t in tensors):
            raise TypeError("each iterable in params must yield tensors")
        groups.append({"params": tensors})
    return groups


def _check(cond: bool, name: str, value: Any, rule: str) -> None:
    if not cond:
        raise ValueError(f"invalid {name}: {value!r} (must be {rule})")


# the line-search settings: saved in state_dict()["line_search"]["settings"] and restored by load_state_dict
SETTINGS = (
    "c",
    "init_step_size",
    "grow",
    "shrink",
    "max_trials",
    "beta_s",
    "eta_min",
    "eta_max",
    "speed_up",
    "line_search",
    "search_direction",
    "step_direction",
    "moments",
    "min_slope",
    "accept_ties",
    "nan_policy",
    "replay_rng",
    "sync_losses",
    "reset_option",
)


def validate_settings(st: dict[str, Any]) -> None:
    """ValueError naming the first line-search setting out of range (DESIGN.md §9)."""
    _check(0.0 < st["c"] < 1.0, "c", st["c"], "in (0, 1)")
    _check(st["init_step_size"] > 0.0, "init_step_size", st["init_step_size"], "> 0")
    _check(st["grow"] >= 1.0, "grow", st["grow"], ">= 1")
    _check(0.0 < st["shrink"] < 1.0, "shrink", st["shrink"], "in (0, 1)")
    max_trials = st["max_trials"]
    _check(isinstance(max_trials, int) and max_trials >= 1, "max_trials", max_trials, "an int >= 1")
    _check(0.0 <= st["beta_s"] < 1.0, "beta_s", st["beta_s"], "in [0, 1)")
    eta_min, eta_max = st["eta_min"], st["eta_max"]
    _check(0.0 < eta_min <= st["init_step_size"], "eta_min", eta_min, "in (0, init_step_size]")
    _check(eta_max is None or eta_max >= eta_min, "eta_max", eta_max, ">= eta_min or None")
    _check(st["nan_policy"] in ("raise", "skip"), "nan_policy", st["nan_policy"], '"raise" or "skip"')
    direction = st["search_direction"]
    _check(direction in ("sgd", "precond", "momentum"), "search_direction", direction, "sgd, precond or momentum")
    _check(st["step_direction"] in ("trial", "momentum"), "step_direction", st["step_direction"], "trial or momentum")
    _check(st["reset_option"] in (0, 1, 2), "reset_option", st["reset_option"], "0, 1 or 2")
    _check(st["min_slope"] >= 0.0, "min_slope", st["min_slope"], ">= 0")
    if not st["moments"] and (direction != "sgd" or st["step_direction"] != "trial"):
        raise ValueError("step_direction='momentum' and preconditioned directions need Adam moments")


def check_group_values(g: dict) -> None:
    """The per-group hyperparameters that may differ between groups: weight_decay, betas, eps."""
    if "weight_decay" in g:
        _check(g["weight_decay"] >= 0.0, "weight_decay", g["weight_decay"], ">= 0")
    if "eps" in g:
        _check(g["eps"] > 0.0, "eps", g["eps"], "> 0")
    if "betas" in g:
        betas = tuple(g["betas"])
        _check(len(betas) == 2 and all(0.0 <= b < 1.0 for b in betas), "betas", g["betas"], "two values in [0, 1)")


def check_not_sharded(params: Iterable[torch.Tensor]) -> None:
    for p in params:
        # Deliberately unsupported, not a stub: the Armijo test needs the full loss decrease and the full
        # gradient norm over all parameters; on shards each rank would accept or reject its own step size.
        # DDP (replicated parameters) is supported and tested.
        if type(p).__name__ in ("DTensor", "FlatParameter") or getattr(p, "_is_sharded", False):
            raise NotImplementedError(
                "sharded parameters (FSDP/DTensor) are not supported: one Armijo search needs the whole "
                "gradient on every rank; wrap the model in DistributedDataParallel instead"
            )


def resolve_betas(betas, momentum, beta) -> tuple[float, float]:
    """Resolve (b1, b2) from `betas` or the reference spellings `momentum` (b1) and `beta` (b2)."""
    if betas is not UNSET and (momentum is not UNSET or beta is not UNSET):
        raise TypeError("got both 'betas' and its aliases 'momentum'/'beta'; pass one")
    if betas is not UNSET:
        return tuple(betas)
    return (0.9 if momentum is UNSET else momentum, 0.999 if beta is UNSET else beta)
