"""Argument parsing helpers: one-line errors with exit status 2, typed flags, grid expansion.

Every script builds its parser with :class:`ArgumentParser`, adds the shared run flags with :func:`add_run_args`
and ends with ``if __name__ == "__main__": run_main(main)``, so bad input never shows a traceback.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "ArgumentParser",
    "UsageError",
    "add_run_args",
    "csv_list",
    "existing_dir",
    "existing_file",
    "expand_grid",
    "nonneg_float",
    "nonneg_int",
    "positive_float",
    "positive_int",
    "probability",
    "run_main",
]

EXIT_USAGE = 2


class UsageError(ValueError):
    """Bad input from the user: reported as one line on stderr with exit status 2."""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


class ArgumentParser(argparse.ArgumentParser):
    """argparse with defaults shown in --help and every error reduced to one line on stderr (exit 2)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(EXIT_USAGE)


def _number(kind: type, test: Callable[[Any], bool], what: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what.replace(" ", "_")
    return parse


positive_int = _number(int, lambda v: v > 0, "a positive integer")
nonneg_int = _number(int, lambda v: v >= 0, "a non-negative integer")
positive_float = _number(float, lambda v: v > 0 and v != float("inf"), "a positive number")
nonneg_float = _number(float, lambda v: v >= 0 and v != float("inf"), "a non-negative number")
probability = _number(float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")


def existing_file(text: str) -> Path:
    """argparse type: a path that must name an existing file."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"file not found: {text}")
    return path


def existing_dir(text: str) -> Path:
    """argparse type: a path that must name an existing directory."""
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"directory not found: {text}")
    return path


def csv_list(item_type: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    """argparse type for comma-separated lists, e.g. ``--lrs 0.1,0.01``; items parsed by ``item_type``."""

    def parse(text: str) -> list[Any]:
        parts = [p for p in text.split(",") if p.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
        try:
            return [item_type(p.strip()) for p in parts]
        except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
            raise argparse.ArgumentTypeError(f"bad list item in {text!r}: {exc}") from None

    parse.__name__ = "list"
    return parse


def add_run_args(parser: argparse.ArgumentParser, dash: bool = False, results_root: str = "results") -> None:
    """Add the run flags every script shares: seed, device, run name, output root, progress and TensorBoard.

    ``dash=True`` spells multi-word flags with hyphens (timm-style scripts); the dest names are the same.
    """
    sep = "-" if dash else "_"
    group = parser.add_argument_group("run")
    group.add_argument("--seed", type=nonneg_int, default=0, metavar="INT", help="random seed")
    group.add_argument("--device", default="auto", metavar="DEV", help="auto | cpu | cuda | cuda:N")
    group.add_argument("--name", default=None, metavar="NAME", help="run name (default: a timestamp)")
    group.add_argument("--out", default=results_root, metavar="DIR", help="results root directory")
    group.add_argument(f"--no{sep}progress", dest="no_progress", action="store_true", help="hide progress bars")
    group.add_argument("--tensorboard", action="store_true", help="also log metrics to TensorBoard")


def expand_grid(params: Mapping[str, Sequence[Any]], mode: str = "prod") -> list[dict[str, Any]]:
    """Expand list-valued parameters into a list of configurations.

    ``prod``: every combination (itertools.product, first key slowest). ``zip``: paired element-wise; lists must
    have equal lengths or length 1 (length-1 lists are broadcast). Scalars count as length-1 lists.
    """
    keys = list(params)
    values = [list(v) if isinstance(v, (list, tuple)) else [v] for v in params.values()]
    for key, vals in zip(keys, values):
        if not vals:
            raise UsageError(f"parameter {key!r} has an empty list of values")
    if mode == "prod":
        return [dict(zip(keys, combo)) for combo in itertools.product(*values)]
    if mode == "zip":
        lengths = {len(v) for v in values if len(v) != 1}
        if len(lengths) > 1:
            detail = ", ".join(f"{k}={len(v)}" for k, v in zip(keys, values))
            raise UsageError(f"zip expansion needs lists of equal length or length 1, got {detail}")
        n = lengths.pop() if lengths else 1
        return [{k: (v[0] if len(v) == 1 else v[i]) for k, v in zip(keys, values)} for i in range(n)]
    raise UsageError(f"unknown grid mode {mode!r}; choose prod or zip")


def run_main(main: Callable[[Sequence[str] | None], Any], argv: Sequence[str] | None = None) -> None:
    """Call ``main(argv)`` and turn bad input (UsageError, ValueError, FileNotFoundError) into one line + exit 2."""
    try:
        result = main(argv)
    except (ValueError, FileNotFoundError, NotADirectoryError) as exc:
        prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "error"
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        sys.stderr.write(f"{prog}: error: {message}\n")
        sys.exit(EXIT_USAGE)
    if isinstance(result, int) and result:
        sys.exit(result)
