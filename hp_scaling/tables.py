"""The one CSV writer of hp_scaling (results.csv, found.csv, losses.csv, cells.csv, metrics.csv, steps.csv).

Kept in one place until common.runs offers a table writer; floats are written with ``repr`` so that a CSV read back
gives the same numbers bit for bit (the resume and MPI tests compare found.csv files byte for byte).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from common.runs import write_csv

__all__ = ["write_table"]


def write_table(path: str | Path, rows: Sequence[Mapping[str, Any]], fields: Sequence[str] | None = None) -> Path:
    """Write ``rows`` to ``path`` (header: ``fields``, default every key in first-seen order); returns the path."""
    path = Path(path)
    names = list(fields) if fields is not None else list(dict.fromkeys(k for r in rows for k in r))
    return write_csv(
        path, [{k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()} for row in rows], names
    )
