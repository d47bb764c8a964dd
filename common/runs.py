"""Run directories: ``results/<paper>/<experiment>/<name>/`` with config.json, metrics and summary.json.

The last line a script prints is ``run dir: <path>`` so that other scripts, notebooks and tests can find it.
Only the primary rank (RANK/OMPI rank 0) writes files, prints or shows progress bars.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from common.cli import UsageError

__all__ = ["Run", "open_run", "progress", "is_primary_process", "to_jsonable", "write_csv"]


def is_primary_process() -> bool:
    """True on rank 0 of torchrun or mpirun, and in plain single-process runs."""
    for var in ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"):
        if var in os.environ:
            return int(os.environ[var]) == 0
    return True


def to_jsonable(obj: Any) -> Any:
    """Convert numpy/torch scalars, paths, namespaces and non-finite floats into plain JSON data."""
    if isinstance(obj, argparse.Namespace):
        obj = vars(obj)
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays/scalars, torch tensors
        return to_jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)  # "nan", "inf": JSON has no literal for them
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)


class Run:
    """One run directory. Create it with :func:`open_run`."""

    def __init__(self, path: Path, primary: bool = True, tensorboard: bool = False) -> None:
        self.path = path
        self.primary = primary
        self.started = time.time()
        self._csv_fields: list[str] | None = None
        self._writer = None
        if primary and tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(path / "tensorboard"))

    def log(self, step: int | None = None, **metrics: Any) -> None:
        """Append one row to metrics.jsonl and metrics.csv (new columns extend the CSV header)."""
        if not self.primary:
            return
        row = {"step": step, **{k: to_jsonable(v) for k, v in metrics.items()}}
        with open(self.path / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(row) + "\n")
        self._append_csv(row)
        if self._writer is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    self._writer.add_scalar(key, value, global_step=step)

    def _append_csv(self, row: dict[str, Any]) -> None:
        csv_path = self.path / "metrics.csv"
        if self._csv_fields is None and csv_path.exists():  # a resumed run keeps the existing header
            with open(csv_path, newline="") as handle:
                self._csv_fields = next(csv.reader(handle), [])
        fields = list(self._csv_fields or [])
        new = [k for k in row if k not in fields]
        if new or not csv_path.exists():
            fields += new
            old_rows = []
            if csv_path.exists():
                with open(csv_path, newline="") as handle:
                    old_rows = list(csv.DictReader(handle))
            with open(csv_path, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=fields)
                writer.writeheader()
                writer.writerows(old_rows)
            self._csv_fields = fields
        with open(csv_path, "a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=fields).writerow(row)

    def write_json(self, name: str, obj: Any) -> Path:
        """Write ``obj`` as JSON to ``<run dir>/<name>`` (plain data, non-finite floats as strings)."""
        target = self.path / name
        if self.primary:
            target.write_text(json.dumps(to_jsonable(obj), indent=2) + "\n")
        return target

    def write_csv(self, name: str, rows: Iterable[Mapping[str, Any]], fields: Iterable[str] | None = None) -> Path:
        """Write a table ``<run dir>/<name>`` with :func:`write_csv` (primary rank only) and return its path."""
        target = self.path / name
        if self.primary:
            write_csv(target, rows, fields)
        return target

    def save_figure(self, fig: Any, name: str) -> Path:
        """Save a matplotlib figure as a PNG in the run directory and close it."""
        from common.plotting import save_figure

        target = self.path / (name if name.endswith(".png") else f"{name}.png")
        if self.primary:
            save_figure(fig, target)
        return target

    def finish(self, summary: Mapping[str, Any]) -> Path:
        """Write summary.json (with wall time), close TensorBoard and print ``run dir: <path>`` last."""
        summary = {**summary, "wall_time_s": summary.get("wall_time_s", round(time.time() - self.started, 3))}
        path = self.write_json("summary.json", summary)
        if self._writer is not None:
            self._writer.close()
        if self.primary:
            print(f"run dir: {self.path}", flush=True)
        return path


def write_csv(
    path: str | Path,
    rows: Iterable[Mapping[str, Any]],
    fields: Iterable[str] | None = None,
    *,
    append: bool = False,
    extrasaction: str = "raise",
) -> Path:
    """Write dict ``rows`` to the CSV file ``path`` (the one CSV writer of the house) and return the path.

    ``fields`` is the header (default: every key in first-seen order); ``append=True`` adds the rows to an
    existing file and writes the header only when the file is new or empty; ``extrasaction="ignore"`` drops keys
    that are not in ``fields``. Folders are created. No rows and no fields leave an empty file.
    """
    path = Path(path)
    rows = list(rows)
    names = list(fields) if fields is not None else list(dict.fromkeys(k for row in rows for k in row))
    new = not (append and path.exists() and path.stat().st_size > 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a" if append else "w", newline="") as handle:
        if names:
            writer = csv.DictWriter(handle, fieldnames=names, extrasaction=extrasaction)
            if new:
                writer.writeheader()
            writer.writerows(rows)
    return path


def open_run(
    paper: str,
    experiment: str,
    config: Mapping[str, Any] | argparse.Namespace | None = None,
    name: str | None = None,
    root: str | Path = "results",
    tensorboard: bool = False,
) -> Run:
    """Create ``root/paper/experiment/name`` (name: a timestamp when None) and write config.json there."""
    if name is not None and (not name or "/" in name or name in {".", ".."}):
        raise UsageError(f"invalid run name {name!r}: use a plain folder name")
    name = name or time.strftime("%Y%m%d-%H%M%S")
    path = Path(root) / paper / experiment / name
    primary = is_primary_process()
    if primary:
        path.mkdir(parents=True, exist_ok=True)
    run = Run(path, primary=primary, tensorboard=tensorboard)
    if config is not None:
        run.write_json("config.json", config)
    return run


def progress(
    iterable: Iterable[Any] | None = None,
    desc: str | None = None,
    total: int | None = None,
    disable: bool = False,
    **kwargs: Any,
) -> tqdm:
    """A tqdm bar, hidden when ``disable`` is set or on non-primary ranks."""
    return tqdm(
        iterable, desc=desc, total=total, disable=disable or not is_primary_process(), dynamic_ncols=True, **kwargs
    )
