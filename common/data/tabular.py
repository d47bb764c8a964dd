"""UCI regression tables: Bike Sharing (hour.csv / day.csv) and SGEMM GPU kernel performance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from common.cli import UsageError
from common.data.registry import register_dataset, require_files

__all__ = ["BIKE_DROP", "SGEMM_FEATURES", "SGEMM_RUNS"]

BIKE_DROP = ("instant", "dteday", "casual", "registered")
SGEMM_FEATURES = (
    "MWG",
    "NWG",
    "KWG",
    "MDIMC",
    "NDIMC",
    "MDIMA",
    "NDIMB",
    "KWI",
    "VWM",
    "VWN",
    "STRM",
    "STRN",
    "SA",
    "SB",
)
SGEMM_RUNS = ("Run1 (ms)", "Run2 (ms)", "Run3 (ms)", "Run4 (ms)")


@register_dataset("bike_sharing", splits=("all",), description="UCI Bike Sharing (hour.csv or day.csv), target cnt")
def _bike_sharing(split: str, root: Path, file: str = "hour") -> TensorDataset:
    import pandas as pd

    if file not in ("hour", "day"):
        raise UsageError(f"bike_sharing file must be 'hour' or 'day', got {file!r}")
    # our layout (data/bike_sharing/) or the seed's (data/Bike-Sharing/, from its wget + unzip block)
    folders = [root / "bike_sharing", root / "Bike-Sharing"]
    path = next((f / f"{file}.csv" for f in folders if (f / f"{file}.csv").exists()), folders[0] / f"{file}.csv")
    require_files(
        [path],
        "bike_sharing",
        "unzip https://archive.ics.uci.edu/ml/machine-learning-databases/00275/Bike-Sharing-Dataset.zip"
        f" into {folders[0]}"
        f" (or {folders[1]})",
    )
    frame = pd.read_csv(path).drop(columns=list(BIKE_DROP))
    y = frame.pop("cnt").to_numpy(np.float32)
    return TensorDataset(torch.tensor(frame.to_numpy(np.float32)), torch.tensor(y))


@register_dataset(
    "sgemm_product", splits=("all",), description="UCI SGEMM GPU kernel performance, target mean run (ms)"
)
def _sgemm(split: str, root: Path) -> TensorDataset:
    import pandas as pd

    path = root / "sgemm_product" / "sgemm_product.csv"
    require_files(
        [path],
        "sgemm_product",
        f"unzip https://archive.ics.uci.edu/static/public/440/sgemm+gpu+kernel+performance.zip into {path.parent}",
    )
    frame = pd.read_csv(path)
    missing = [c for c in SGEMM_FEATURES + SGEMM_RUNS if c not in frame.columns]
    if missing:
        raise UsageError(f"{path}: missing columns {missing}")
    x = frame[list(SGEMM_FEATURES)].to_numpy(np.float32)
    y = frame[list(SGEMM_RUNS)].mean(axis=1).to_numpy(np.float32)
    return TensorDataset(torch.tensor(x), torch.tensor(y))
