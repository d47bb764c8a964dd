"""One reader for the INI files the seeds define, with typed values and one-line errors.

The seeds keep settings in INI files: forward_grad's ``nn_training/configs/*.ini`` (a [DEFAULT] section and one
section per dataset, gradient, model and optimizer, applied in that order) and line_search's ``config.json``, which
despite its name holds INI text with a [DEFAULT] section. Both are read here:

>>> read_ini("line_search/config.json")["epochs"]                                     # doctest: +SKIP
15
>>> read_ini("forward_grad/nn_training/configs/defaults.ini", ["MNIST", "FC"])        # doctest: +SKIP
{'initial_lr': 0.1, 'epochs': 200, 'early_stopping_patience': 10, 'batch_size': 64, 'model_hidden_size': 1024}

Values are Python literals where they parse as one (``ast.literal_eval``: numbers, ``None``, ``True``, tuples,
lists, quoted strings; ``true``/``false``/``none``/``null`` in any case too) and plain strings otherwise. Keys are
lower-cased as :mod:`configparser` does. A missing file raises :class:`~common.cli.MissingInputError`, a file that
is not INI or a section that is not there raises :class:`~common.cli.UsageError`; both name the file (and the
section), so ``common.cli.run_main`` reports them as one line with exit status 2.
"""

from __future__ import annotations

import ast
import configparser
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common.cli import MissingInputError, UsageError

__all__ = ["parse_value", "read_ini", "sections"]

DEFAULT = "DEFAULT"
_NO_DEFAULT = "\0no default section"
_WORDS = {"true": True, "false": False, "none": None, "null": None}


def parse_value(text: str) -> Any:
    """A typed value from INI text: a Python literal where ``text`` is one, else the stripped string."""
    text = text.strip()
    if text.lower() in _WORDS:
        return _WORDS[text.lower()]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def _load(path: str | Path) -> tuple[Path, configparser.ConfigParser]:
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"config file not found: {path}")
    # [DEFAULT] is read as an ordinary section (no inheritance): read_ini merges the sections itself, so that a
    # later section never re-applies a [DEFAULT] value over an earlier section's.
    parser = configparser.ConfigParser(interpolation=None, default_section=_NO_DEFAULT)
    try:
        parser.read_string(path.read_text(), source=str(path))
    except configparser.MissingSectionHeaderError as exc:
        raise UsageError(f"{path}: not an INI file: line {exc.lineno} comes before any [section] header") from None
    except configparser.DuplicateSectionError as exc:
        raise UsageError(f"{path}: section [{exc.section}] appears twice (line {exc.lineno})") from None
    except configparser.DuplicateOptionError as exc:
        raise UsageError(f"{path}: key {exc.option!r} appears twice in [{exc.section}] (line {exc.lineno})") from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{path}: not a valid INI file ({first})") from None
    return path, parser


def sections(path: str | Path) -> list[str]:
    """The section names of an INI file, in file order ([DEFAULT] not included)."""
    return [name for name in _load(path)[1].sections() if name != DEFAULT]


def read_ini(
    path: str | Path, section: str | Sequence[str] | None = None, *, missing_ok: bool = False
) -> dict[str, Any]:
    """Typed settings from an INI file: [DEFAULT], then ``section`` (or each of a list of sections, in order).

    Later sections override earlier ones and [DEFAULT]. A named section that is not in the file is a
    :class:`UsageError` naming the file, the section and the sections that exist, unless ``missing_ok`` (then it
    is skipped: the seeds' INI files hold sections only for the datasets and models that need them).
    """
    path, parser = _load(path)
    wanted = [] if section is None else [section] if isinstance(section, str) else list(section)
    values: dict[str, Any] = {}
    for name in [DEFAULT, *(w for w in wanted if w != DEFAULT)]:
        if not parser.has_section(name):
            if missing_ok or name == DEFAULT:
                continue
            found = ", ".join(f"[{s}]" for s in parser.sections() if s != DEFAULT) or "none besides [DEFAULT]"
            raise UsageError(f"{path}: no section [{name}]; sections: {found}")
        values.update({key: parse_value(text) for key, text in parser.items(name)})
    return values
