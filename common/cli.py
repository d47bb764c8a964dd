"""The command-line contract every script keeps: typed flags, presets, one-line errors, two exit codes.

Every script builds its parser with :class:`ArgumentParser`, adds the shared run flags with :func:`add_run_args`
and ends with ``if __name__ == "__main__": run_main(main)``. The contract:

- **Bad input** (a flag argparse rejects, or a :class:`UsageError` raised by validation, :class:`MissingInputError`
  for a file that is not there) is one line ``<prog>: error: <message>`` on stderr and exit status 2.
- **Any other exception** is an internal error: the traceback goes to a log file, stderr gets one line
  ``<prog>: internal error: <Type>: <message> (traceback: <log>)`` and the exit status is 1.
- ``--device`` is validated at parse time by :func:`device_arg` (unknown or unavailable devices are exit 2);
  scripts that run on the CPU only pass ``devices=("cpu",)`` to :func:`add_run_args`.
- ``--out`` is always the results *root*; the run folder is ``<out>/<paper>/<experiment>/<name>``
  (:func:`common.runs.open_run`).
- ``--tensorboard`` is only offered where events are written (``add_run_args(..., tensorboard=False)`` otherwise).
- Presets (``--quick``, ``--preset``) fill only what the user did not type: :attr:`ArgumentParser.explicit` holds
  the destinations given on the command line and :func:`apply_preset` respects it.
- Impossible combinations and inverted ranges raise :class:`UsageError` (:func:`check_range`).
- A resumed run says so: :func:`announce_resume` prints ``resumed from <path> at <position>``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "ArgumentParser",
    "MissingInputError",
    "UsageError",
    "add_run_args",
    "announce_resume",
    "apply_preset",
    "check_range",
    "device_arg",
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
EXIT_INTERNAL = 1


class UsageError(ValueError):
    """Bad input from the user: reported by :func:`run_main` as one line on stderr with exit status 2.

    Raise it (not a bare ValueError) from validation; a plain ValueError escaping a script is an internal error.
    """


class MissingInputError(UsageError, FileNotFoundError):
    """A file or folder the user named (or a dataset the run needs) is not there: exit status 2."""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


class ArgumentParser(argparse.ArgumentParser):
    """argparse with defaults shown in --help and every error reduced to one line on stderr (exit 2)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)
        self.explicit: set[str] = set()  # dests the user typed on the command line (after parse_args)

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> tuple[Any, list[str]]:
        """Parse as argparse does and record in :attr:`explicit` which destinations the user gave."""
        parsed, extras = super().parse_known_args(args, namespace)
        if namespace is None:
            self.explicit = _explicit_dests(self, sys.argv[1:] if args is None else list(args))
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        sys.exit(EXIT_USAGE)


def _explicit_dests(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """Destinations present on the command line: a second parse in which every default is suppressed."""
    saved: list[tuple[argparse.Action, Any]] = []
    parsers = [parser]
    while parsers:
        current = parsers.pop()
        for action in current._actions:
            saved.append((action, action.default))
            action.default = argparse.SUPPRESS
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    saved_defaults = [(p, dict(p._defaults)) for p in _all_parsers(parser)]
    for p, _ in saved_defaults:
        p._defaults.clear()
    try:
        namespace, _ = argparse.ArgumentParser.parse_known_args(parser, argv, argparse.Namespace())
        return set(vars(namespace))
    except SystemExit:  # pragma: no cover - the first parse already accepted argv
        return set()
    finally:
        for action, default in saved:
            action.default = default
        for p, defaults in saved_defaults:
            p._defaults.update(defaults)


def _all_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found, stack = [], [parser]
    while stack:
        current = stack.pop()
        found.append(current)
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
    return found


def apply_preset(args: argparse.Namespace, preset: Mapping[str, Any], explicit: set[str] | None) -> list[str]:
    """Fill ``args`` from ``preset`` where the user gave no value (``explicit``: :attr:`ArgumentParser.explicit`).

    Returns the names that the preset set. Flags the user typed always win over a preset.
    """
    explicit = explicit or set()
    applied = []
    for key, value in preset.items():
        if not hasattr(args, key):
            raise KeyError(f"preset names unknown flag destination {key!r}")
        if key not in explicit:
            setattr(args, key, value)
            applied.append(key)
    return applied


def check_range(low: Any, high: Any, what: str, strict: bool = False) -> None:
    """Raise :class:`UsageError` unless ``low <= high`` (``low < high`` with ``strict``); ``what`` names the flags."""
    if (low >= high) if strict else (low > high):
        relation = "<" if strict else "<="
        raise UsageError(f"{what}: expected {low!r} {relation} {high!r}")


def device_arg(allowed: Sequence[str] | None = None) -> Callable[[str], str]:
    """argparse type for ``--device``: ``auto | cpu | cuda | cuda:N`` (or ``allowed``), checked against this machine.

    An unknown spelling, a CUDA device on a machine without CUDA, or ``cuda:N`` past the device count is rejected
    at parse time (exit 2). The value stays a string; :func:`common.runtime.resolve_device` turns it into a device.
    """

    def parse(text: str) -> str:
        spec = text.strip().lower()
        base = spec.split(":", 1)[0]
        if spec == "auto" and allowed is not None and "auto" not in allowed:
            return allowed[0]
        if allowed is not None and spec not in allowed and base not in allowed:
            raise argparse.ArgumentTypeError(
                f"device {text!r} not supported by this script; choose {', '.join(allowed)}"
            )
        if spec in ("auto", "cpu"):
            return spec
        if base != "cuda" or (":" in spec and not spec.split(":", 1)[1].isdigit()):
            raise argparse.ArgumentTypeError(f"unknown device {text!r}; choose auto, cpu, cuda or cuda:N")
        import torch

        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"device {text!r} requested but CUDA is not available; use --device cpu")
        if ":" in spec and int(spec.split(":", 1)[1]) >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(
                f"device {text!r} does not exist: {torch.cuda.device_count()} CUDA device(s)"
            )
        return spec

    parse.__name__ = "device"
    return parse


def announce_resume(path: str | Path, position: str) -> str:
    """Print (and return) the line every resumable script shows: ``resumed from <path> at <position>``."""
    line = f"resumed from {path} at {position}"
    print(line, flush=True)
    return line


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


def auto_or(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """argparse type: the word ``auto`` (kept as the string) or a value that ``kind`` accepts.

    ``kind`` is one of the number types above (``auto_or(nonneg_int)`` for ``--workers auto|N``); its message is kept:
    ``expected 'auto' or a non-negative integer, got '-1'``.
    """
    what = getattr(kind, "__name__", "a value").replace("_", " ")

    def parse(text: str) -> Any:
        if text == "auto":
            return text
        try:
            return kind(text)
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            raise argparse.ArgumentTypeError(f"expected 'auto' or {what}, got {text!r}") from None

    parse.__name__ = f"auto or {what}".replace(" ", "_")
    return parse


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


def add_run_args(
    parser: argparse.ArgumentParser,
    dash: bool = False,
    results_root: str = "results",
    devices: Sequence[str] | None = None,
    tensorboard: bool = True,
    default_device: str = "auto",
) -> None:
    """Add the run flags every script shares: seed, device, run name, output root, progress and TensorBoard.

    ``dash=True`` spells multi-word flags with hyphens (timm-style scripts); the dest names are the same.
    ``devices`` restricts ``--device`` (e.g. ``("cpu",)`` for CPU-only scripts); ``tensorboard=False`` leaves out
    ``--tensorboard`` for scripts that write no per-step metrics. ``--out`` is the results root.
    """
    sep = "-" if dash else "_"
    group = parser.add_argument_group("run")
    group.add_argument("--seed", type=nonneg_int, default=0, metavar="INT", help="random seed")
    choices = " | ".join(devices) if devices else "auto | cpu | cuda | cuda:N"
    if devices and default_device not in devices:
        default_device = devices[0]
    group.add_argument("--device", type=device_arg(devices), default=default_device, metavar="DEV", help=choices)
    group.add_argument("--name", default=None, metavar="NAME", help="run name (default: a timestamp)")
    group.add_argument(
        "--out",
        default=results_root,
        metavar="DIR",
        help="results root: the run folder is <out>/<paper>/<experiment>/<name>",
    )
    group.add_argument(f"--no{sep}progress", dest="no_progress", action="store_true", help="hide progress bars")
    if tensorboard:
        group.add_argument(
            "--tensorboard", action="store_true", help="also write TensorBoard events to <run>/tensorboard"
        )


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _write_traceback(prog: str, exc: BaseException) -> Path:
    """Write the traceback of ``exc`` to ``$ERROR_LOG_DIR`` (default: the system temp folder) and return the path."""
    folder = Path(os.environ.get("ERROR_LOG_DIR") or tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    stem = Path(prog).stem or "script"
    path = folder / f"{stem}-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    path.write_text("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    return path


def run_main(main: Callable[[Sequence[str] | None], Any], argv: Sequence[str] | None = None) -> None:
    """Call ``main(argv)`` and map what escapes it to the two error classes of this module.

    :class:`UsageError` (and :class:`MissingInputError`): one line ``<prog>: error: ...``, exit 2.
    Any other exception (a bug, a failed computation): the traceback is written to a log file and one line
    ``<prog>: internal error: <Type>: <message> (traceback: <log>)`` goes to stderr, exit 1.
    KeyboardInterrupt exits 130 quietly; SystemExit passes through.
    """
    prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "error"
    try:
        result = main(argv)
    except UsageError as exc:
        sys.stderr.write(f"{prog}: error: {_first_line(exc)}\n")
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the contract: every other failure is an internal error
        log = _write_traceback(prog, exc)
        sys.stderr.write(f"{prog}: internal error: {type(exc).__name__}: {_first_line(exc)} (traceback: {log})\n")
        sys.exit(EXIT_INTERNAL)
    if isinstance(result, int) and result:
        sys.exit(result)
