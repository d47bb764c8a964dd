"""AutoWU's settings grouped into small frozen config objects (DESIGN.md §3.3).

``AutoWU(optimizer, S, E, ramp=RampConfig(...), decay=DecayConfig(...), gp=GPConfig(...), policy=PolicyConfig(...))``
and the flat keywords of the seed README (``AutoWU(optimizer, S, E, immediate_cooldown=True, ...)``) are the same
thing: :func:`resolve_settings` routes every flat keyword to the group that owns it, a typed flat keyword wins over
the group's field, and each group validates itself (a ValueError that names the argument).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, NamedTuple

from autowu.gp_test import GPConfig
from autowu.schedules import COOLDOWN_TYPES, WARMUP_TYPES, WARMUP_UNITS

__all__ = ["RampConfig", "DecayConfig", "PolicyConfig", "GPConfig", "Settings", "resolve_settings"]


def check_choice(name: str, value: Any, choices) -> None:
    """ValueError naming ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; got {value!r}")


@dataclass(frozen=True)
class RampConfig:
    """The warmup ramp (DESIGN.md §3.1): eta_min, eta_max, the cap f_w, exponential or linear, per step or epoch."""

    min_lr: float = 1e-5
    max_lr: float = 1.0
    max_warmup_fraction: float = 0.5
    warmup_type: str = "exp"
    warmup_unit: str = "step"

    def __post_init__(self) -> None:
        if not (0 < self.min_lr < self.max_lr):
            raise ValueError(
                f"min_lr and max_lr must satisfy 0 < min_lr < max_lr; got min_lr={self.min_lr}, max_lr={self.max_lr}"
            )
        if not 0.0 <= self.max_warmup_fraction <= 1.0:
            raise ValueError(f"max_warmup_fraction must lie in [0, 1]; got {self.max_warmup_fraction}")
        check_choice("warmup_type", self.warmup_type, WARMUP_TYPES)
        check_choice("warmup_unit", self.warmup_unit, WARMUP_UNITS)
        for name in ("min_lr", "max_lr", "max_warmup_fraction"):
            object.__setattr__(self, name, float(getattr(self, name)))


@dataclass(frozen=True)
class DecayConfig:
    """What follows the switch (DESIGN.md §3.1): cosine, or constant-then-cosine, and the fallback LR at the cap."""

    immediate_cooldown: bool = True
    decay_phase_stat: str | None = None
    decay_phase_factor: float = 1.0
    cooldown_fraction: float = 0.2
    cooldown_type: str = "cosine"
    fallback_lr: str = "ramp"

    def __post_init__(self) -> None:
        if not 0.0 <= self.cooldown_fraction <= 1.0:
            raise ValueError(f"cooldown_fraction must lie in [0, 1]; got {self.cooldown_fraction}")
        check_choice("cooldown_type", self.cooldown_type, COOLDOWN_TYPES)
        check_choice("decay_phase_stat", self.decay_phase_stat, (None, "loss"))
        check_choice("fallback_lr", self.fallback_lr, ("ramp", "argmin"))
        if not 0.0 < self.decay_phase_factor <= 1.0:
            raise ValueError(f"decay_phase_factor must lie in (0, 1]; got {self.decay_phase_factor}")
        object.__setattr__(self, "immediate_cooldown", bool(self.immediate_cooldown))
        object.__setattr__(self, "decay_phase_factor", float(self.decay_phase_factor))
        object.__setattr__(self, "cooldown_fraction", float(self.cooldown_fraction))


@dataclass(frozen=True)
class PolicyConfig:
    """When the test runs and how its verdicts and bad losses act (DESIGN.md §3.2, §3.4)."""

    test_interval: int | None = None
    patience: int = 3
    on_nonfinite: str = "switch"
    divergence_factor: float | None = 2.0

    def __post_init__(self) -> None:
        if self.test_interval is not None and int(self.test_interval) < 1:
            raise ValueError(f"test_interval must be >= 1; got {self.test_interval}")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1; got {self.patience}")
        check_choice("on_nonfinite", self.on_nonfinite, ("switch", "ignore", "raise"))
        if self.divergence_factor is not None and not self.divergence_factor > 0:
            raise ValueError(f"divergence_factor must be > 0 or None; got {self.divergence_factor}")
        object.__setattr__(self, "patience", int(self.patience))
        if self.test_interval is not None:
            object.__setattr__(self, "test_interval", int(self.test_interval))
        if self.divergence_factor is not None:
            object.__setattr__(self, "divergence_factor", float(self.divergence_factor))


class Settings(NamedTuple):
    ramp: RampConfig
    decay: DecayConfig
    gp: GPConfig
    policy: PolicyConfig


_GROUPS = (("ramp", RampConfig), ("decay", DecayConfig), ("gp", GPConfig), ("policy", PolicyConfig))


def resolve_settings(groups: Mapping[str, Any], flat: Mapping[str, Any]) -> Settings:
    """Build the four groups from the given group objects (or defaults) and the flat keywords that override them.

    A flat keyword no group owns raises TypeError, as an unknown keyword argument would.
    """
    owners = {f.name: key for key, cls in _GROUPS for f in fields(cls)}
    unknown = sorted(set(flat) - set(owners))
    if unknown:
        raise TypeError(f"AutoWU got unexpected keyword argument(s) {', '.join(map(repr, unknown))}")
    built = {}
    for key, cls in _GROUPS:
        base = groups.get(key)
        if base is not None and not isinstance(base, cls):
            raise TypeError(f"{key} must be a {cls.__name__}; got {type(base).__name__}")
        mine = {name: value for name, value in flat.items() if owners[name] == key}
        if base is None:
            built[key] = cls(**mine)
        else:
            built[key] = replace(base, **mine) if mine else base
    return Settings(**built)
