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
import importlib
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
    """The numpy pieces a version-1 checkpoint needs (array reconstruction only; never arbitrary callables)."""
    try:
        multiarray = importlib.import_module("numpy._core.multiarray")  # numpy >= 2
    except ImportError:
        multiarray = importlib.import_module("numpy.core.multiarray")
    names = [multiarray._reconstruct, np.ndarray, np.dtype]
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25 pickles dtypes through their classes
    if dtypes is not None:
        names += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType") and n != "ObjectDType"]
    return names


def _bytes_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.zeros(0, dtype=torch.uint8)


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


def _unsafe_globals(path: Path) -> str:
    """The globals a refused file asks for (for the error line), when torch can list them."""
    lister = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    try:
        found = sorted(set(lister(path)) - {f"{g.__module__}.{g.__qualname__}" for g in _numpy_safe_globals()})
    except Exception:  # noqa: BLE001 - only for the message; a legacy-format pickle cannot be listed
        return ""
    return f" ({', '.join(found[:3])}{', ...' if len(found) > 3 else ''})" if found else ""


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, with ``torch.load(weights_only=True)``.

    Raises :class:`~common.cli.MissingInputError` when the file is missing and :class:`~common.cli.UsageError`
    (one line naming the file) when it is not a checkpoint or needs more than plain data and tensors to load.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported" in str(exc) or "global" in str(exc).lower():
            raise UsageError(
                f"refusing to load checkpoint {path}: it holds objects other than plain data and tensors"
                f"{_unsafe_globals(path)}, and loading those could run code; write it again with this version"
            ) from None
        raise UsageError(f"checkpoint {path} is not a torch checkpoint: {str(exc).splitlines()[0]}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise UsageError(f"checkpoint {path} cannot be read (truncated or not a torch checkpoint): {exc}") from None
    if not isinstance(payload, dict):
        raise UsageError(f"checkpoint {path} holds a {type(payload).__name__}, not a dict of state")
    return _decode(payload)


def rng_state() -> dict[str, Any]:
    """Snapshot of python, numpy, torch (and CUDA) generator states as plain data (tuples, ints, tensors)."""
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a snapshot taken by :func:`rng_state` (or the numpy tuple form that version 1 stored)."""
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    numpy = state["numpy"]
    if isinstance(numpy, dict):
        key = numpy["key"]
        key = key.numpy() if isinstance(key, torch.Tensor) else np.asarray(key)
        np.random.set_state(
            {
                "bit_generator": numpy["bit_generator"],
                "state": {"key": key.astype(np.uint32), "pos": int(numpy["pos"])},
                "has_gauss": int(numpy["has_gauss"]),
                "gauss": float(numpy["gauss"]),
            }
        )
    else:
        np.random.set_state(numpy)
    torch.set_rng_state(state["torch"].cpu() if hasattr(state["torch"], "cpu") else state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
