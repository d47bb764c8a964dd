"""Atomic checkpoints of plain data and tensors, loaded without running code; RNG state for bit-exact resumes.

A checkpoint is written to a temporary file in the target folder and moved onto the final name with
``os.replace``, so a crash leaves either the old file or the new one, never half a file.

Loading a pickle can run arbitrary code, so a checkpoint holds only plain data: dict (and OrderedDict), list,
tuple, set, str, bytes, int, float, complex, bool, None, tensors, torch dtypes/devices/sizes, and numpy arrays or
scalars of numeric dtypes (stored as dtype, shape and a uint8 tensor of the raw bytes, and rebuilt on load; bytes
likewise). :func:`save_checkpoint`
rejects anything else with a TypeError naming the key, and :func:`load_checkpoint` reads with
``torch.load(weights_only=True)``: a file that needs anything more (a crafted pickle, or a checkpoint holding
arbitrary objects) is refused with one line (:class:`~common.cli.UsageError`) before any of its code runs.
Checkpoints written before this rule (numpy RNG state stored as a pickled numpy array) still load: numpy's array
reconstruction is the only extra type allowed.
"""

from __future__ import annotations

import collections
import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.cli import MissingInputError, UsageError

__all__ = ["save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state", "CHECKPOINT_VERSION"]

# The state seen through load_checkpoint. Files written before the plain-data rule (numpy pickled as arrays) carry the
# same number and load to the same values; only their encoding on disk differs.
CHECKPOINT_VERSION = 1
_NUMPY_TAG = "__checkpoint_numpy__"
_PLAIN_LEAVES = (str, int, float, complex, bool, type(None), torch.Tensor, torch.dtype, torch.device, torch.Size)


def _numpy_safe_globals() -> list[Any]:
    """What numpy arrays and scalars pickled by numpy 1.x need: rebuilders and numeric dtypes, no callable else."""
    from numpy.core import multiarray

    numeric = {type(np.dtype(code)) for code in np.typecodes["AllInteger"] + np.typecodes["AllFloat"] + "?"}
    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype, *sorted(numeric, key=str)]


def _bytes_tensor(data: bytes) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(data, dtype=np.uint8).copy())


def _encode(obj: Any, where: str) -> Any:
    """``obj`` as plain data (numpy arrays and scalars become tagged dicts); TypeError naming ``where`` otherwise."""
    if isinstance(obj, np.ndarray | np.generic):
        arr = np.asarray(obj)
        if arr.dtype.hasobject:
            raise TypeError(f"cannot store a numpy array of Python objects at {where}")
        kind = "scalar" if isinstance(obj, np.generic) else "array"
        return {
            _NUMPY_TAG: kind,
            "dtype": arr.dtype.str,
            "shape": list(arr.shape),
            "data": _bytes_tensor(arr.tobytes()),
        }
    if isinstance(obj, bytes):  # pickle protocol 2 stores bytes through a reduce call; a uint8 tensor needs none
        return {_NUMPY_TAG: "bytes", "data": _bytes_tensor(obj)}
    if isinstance(obj, _PLAIN_LEAVES):
        return obj
    if type(obj) in (dict, collections.OrderedDict):
        for key in obj:
            if not isinstance(key, str | int | float | bool | tuple | type(None)):
                raise TypeError(f"cannot store a {type(key).__name__} key at {where}")
        return type(obj)((key, _encode(value, f"{where}[{key!r}]")) for key, value in obj.items())
    if type(obj) in (list, tuple, set):
        return type(obj)(_encode(value, f"{where}[{i}]") for i, value in enumerate(obj))
    raise TypeError(
        f"cannot store {type(obj).__module__}.{type(obj).__qualname__} at {where}: a checkpoint holds only plain "
        "data (dict, list, tuple, set, str, bytes, numbers, bool, None), tensors and numeric numpy arrays"
    )


def _decode(obj: Any) -> Any:
    """Inverse of :func:`_encode` on a loaded payload."""
    if type(obj) in (dict, collections.OrderedDict):
        kind = obj.get(_NUMPY_TAG)
        if kind == "bytes":
            return obj["data"].numpy().tobytes()
        if kind in ("array", "scalar"):
            raw = obj["data"].numpy().tobytes()
            arr = np.frombuffer(raw, dtype=np.dtype(obj["dtype"])).reshape(obj["shape"]).copy()
            return arr[()] if kind == "scalar" else arr
        return type(obj)((key, _decode(value)) for key, value in obj.items())
    if type(obj) in (list, tuple, set):
        return type(obj)(_decode(value) for value in obj)
    return obj


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (plus a ``version`` key) to ``path`` atomically and return the path.

    Raises TypeError, before writing anything, when ``state`` holds something other than plain data and tensors.
    """
    path = Path(path)
    payload = _encode({"version": CHECKPOINT_VERSION, **state}, "state")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _unsafe_globals(path: Path) -> list[str]:
    """The globals a refused file asks for beyond the allowed ones (empty when torch cannot list them)."""
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - only for the message: torch < 2.5, or a pickle that is no zip archive
        found = []
    return sorted(set(found) - {f"{g.__module__}.{g.__qualname__}" for g in _numpy_safe_globals()})


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, with ``torch.load(weights_only=True)``.

    Raises :class:`~common.cli.MissingInputError` when the file is missing and :class:`~common.cli.UsageError`
    (one line naming the file) when it cannot be read or needs more than plain data and tensors to load.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        names = _unsafe_globals(path)
        asks = f" (it asks for {', '.join(names)})" if names else ""
        raise UsageError(
            f"refusing to load checkpoint {path}: it holds more than plain data and tensors{asks}, "
            "and loading that could run code; write it again with common.checkpoint.save_checkpoint"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise UsageError(
            f"checkpoint {path} cannot be read: empty, truncated or not a torch checkpoint ({type(exc).__name__})"
        ) from None
    if not isinstance(payload, dict):
        raise UsageError(f"checkpoint {path} holds a {type(payload).__name__}, not a dict of state")
    return _decode(payload)


def rng_state() -> dict[str, Any]:
    """Snapshot of python, numpy, torch (and CUDA) generator states as plain data (tuples, ints, tensors)."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": kind,
            "key": torch.from_numpy(key.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a snapshot taken by :func:`rng_state` (or the numpy tuple form stored before the plain-data rule)."""
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    numpy = state["numpy"]
    if isinstance(numpy, dict):
        numpy = (numpy["bit_generator"], np.asarray(numpy["key"]), numpy["pos"], numpy["has_gauss"], numpy["gauss"])
    np.random.set_state(numpy)
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
