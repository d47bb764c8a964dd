"""The tuned step-size dict {(nu, kappa): alpha} that tune_alpha_beta.py writes and
train_spectral_diagonal_from_hparam_dict.py reads (DESIGN.md §4).

The file format is plain JSON, {"nu,kappa": alpha}. The seed's pickled dict (.pkl) is still read, but through an
unpickler that resolves no global at all: a plain dict of float tuples to floats needs none, and anything that would
import or call code (the way a pickle runs code) is refused before it can run.
"""

from __future__ import annotations

import io
import json
import math
import pickle
from pathlib import Path

from common.cli import MissingInputError, UsageError

HParams = dict[tuple[float, float], float]


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles builtin containers and numbers only: every global lookup (class, function) is refused."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: the file may only hold plain data")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refusing persistent ids: the file may only hold plain data")


def _plain_pickle(raw: bytes):
    return _PlainUnpickler(io.BytesIO(raw)).load()


def write_hparam_dict(path: str | Path, hp: HParams) -> Path:
    """Write {(nu, kappa): alpha} as JSON {"nu,kappa": alpha}."""
    path = Path(path)
    path.write_text(json.dumps({f"{k[0]},{k[1]}": float(v) for k, v in hp.items()}, indent=2) + "\n")
    return path


def read_hparam_dict(path: str | Path) -> HParams:
    """Read {(nu, kappa): alpha} from .json {"nu,kappa": alpha} or the seed's .pkl {(nu, kappa): alpha}.

    Raises MissingInputError for a missing file and UsageError (one line naming the file) for anything else than
    a non-empty mapping of two positive exponents to a finite step size; a pickle that needs code is refused unrun.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingInputError(f"--hparam_dict_path not found: {path}")
    try:
        if p.suffix == ".json":
            raw = json.loads(p.read_text())
            items = [(tuple(float(x) for x in str(k).split(",")), v) for k, v in raw.items()]
        else:
            raw = _plain_pickle(p.read_bytes())
            items = [(tuple(float(x) for x in k), v) for k, v in raw.items()]
        out = {k: float(v) for k, v in items}
    except Exception as exc:  # noqa: BLE001 - any failure to parse is bad input, reported in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UsageError(f"malformed --hparam_dict_path {path}: {type(exc).__name__}: {first}") from None
    bad = [k for k, v in out.items() if len(k) != 2 or min(k) <= 0 or not math.isfinite(v) or v < 0]
    if not out or bad:
        raise UsageError(
            f"malformed --hparam_dict_path {path}: need a non-empty {{(nu, kappa): alpha}} mapping with nu, kappa > 0"
            f" and alpha >= 0" + (f", got entry {bad[0]}" if bad else "")
        )
    return out
