"""Load workload and contestant files by name (arena/workloads/, arena/contestants/) or by path (README.md §3, §4).

A name is a file stem in the arena's own folders; anything ending in ``.py`` or containing a path separator is a
file path, so a user's own method or task is one file. Bad input raises common.cli errors (exit 2 in the scripts):
an unknown name (UsageError), a missing file (MissingInputError), a file without a required attribute (UsageError).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

from common.cli import MissingInputError, UsageError

__all__ = [
    "CONTESTANT_DIR",
    "WORKLOAD_DIR",
    "list_contestants",
    "list_workloads",
    "load_contestant",
    "load_workload",
    "meets",
    "ruleset",
]

HERE = Path(__file__).resolve().parent
WORKLOAD_DIR = HERE / "workloads"
CONTESTANT_DIR = HERE / "contestants"

WORKLOAD_ATTRS = ("NAME", "METRIC", "DIRECTION", "BATCH_SIZE", "STEP_HINT", "EVAL_EVERY", "build", "loss", "evaluate")
CONTESTANT_ATTRS = ("NAME", "RULESET", "init", "step")
RULESETS = ("self", "external")


def _names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))


def list_workloads(tier: str | None = None) -> list[str]:
    """Names of the built-in workloads (all, or those of ``tier``: "cpu" or "gpu")."""
    names = _names(WORKLOAD_DIR)
    if tier is None:
        return names
    return [n for n in names if getattr(load_workload(n), "TIER", "cpu") == tier]


def list_contestants() -> list[str]:
    """Names of the built-in contestants."""
    return _names(CONTESTANT_DIR)


def _is_path(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or "\\" in spec


_CACHE: dict[tuple[str, str], ModuleType] = {}


def _load(kind: str, spec: str, folder: Path, package: str) -> ModuleType:
    key = (kind, spec)
    if key in _CACHE:
        return _CACHE[key]
    if _is_path(spec):
        path = Path(spec).resolve()
        if not path.is_file():
            raise MissingInputError(f"{kind} file not found: {spec}")
        mod_name = f"arena_user_{kind}_{path.stem}_{abs(hash(str(path))) % 10**8}"
        loader_spec = importlib.util.spec_from_file_location(mod_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise UsageError(f"{kind} file {spec} is not a Python module")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[mod_name] = module
        try:
            loader_spec.loader.exec_module(module)
        except SyntaxError as exc:
            raise UsageError(f"{kind} file {spec} does not parse: {exc.msg} (line {exc.lineno})") from None
        module.__arena_source__ = str(path)
    else:
        if spec not in _names(folder):
            raise UsageError(f"unknown {kind} {spec!r}; choose from {', '.join(_names(folder))} or give a .py path")
        module = importlib.import_module(f"{package}.{spec}")
        module.__arena_source__ = spec
    _CACHE[key] = module
    return module


def _require(module: ModuleType, kind: str, spec: str, attrs: tuple[str, ...]) -> None:
    missing = [a for a in attrs if not hasattr(module, a)]
    if missing:
        what = ", ".join(f"{a}()" if a.islower() else a for a in missing)
        raise UsageError(f"{kind} file {spec} defines no {what}")
    for fn in (a for a in attrs if a.islower()):
        if not callable(getattr(module, fn)):
            raise UsageError(f"{kind} file {spec}: {fn} is not a function")


def load_workload(spec: str) -> ModuleType:
    """The workload module for a name or a .py path, checked for the attributes README.md §3 requires."""
    module = _load("workload", spec, WORKLOAD_DIR, "arena.workloads")
    _require(module, "workload", spec, WORKLOAD_ATTRS)
    if module.DIRECTION not in ("min", "max"):
        raise UsageError(f"workload file {spec}: DIRECTION must be 'min' or 'max', got {module.DIRECTION!r}")
    for attr in ("BATCH_SIZE", "STEP_HINT", "EVAL_EVERY"):
        value = getattr(module, attr)
        if not isinstance(value, int) or value < 1:
            raise UsageError(f"workload file {spec}: {attr} must be a positive int, got {value!r}")
    return module


def load_contestant(spec: str) -> ModuleType:
    """The contestant module for a name or a .py path, checked for the attributes README.md §4 requires."""
    module = _load("contestant", spec, CONTESTANT_DIR, "arena.contestants")
    _require(module, "contestant", spec, CONTESTANT_ATTRS)
    if module.RULESET not in RULESETS:
        raise UsageError(f"contestant file {spec}: RULESET must be 'self' or 'external', got {module.RULESET!r}")
    if module.RULESET == "external" and not getattr(module, "SEARCH_SPACE", None):
        raise UsageError(f"contestant file {spec}: an external contestant needs a non-empty SEARCH_SPACE")
    return module


def ruleset(contestant: ModuleType) -> str:
    return contestant.RULESET


def meets(value: float, target: float, direction: str) -> bool:
    """True when a validation value reaches the target (>= for "max", <= for "min"); NaN never does."""
    if value is None or not math.isfinite(value):
        return False
    return value >= target if direction == "max" else value <= target
