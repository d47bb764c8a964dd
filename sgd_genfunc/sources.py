"""The real dataset this paper adds to common.data: `olivetti_faces` (sklearn cache under --data_root, offline).

The synthetic `powerlaw` entry is registered by `sgd_genfunc.problems` next to `synthetic_problem`, so the import
goes one way only (problems -> sources); this module imports nothing from the paper.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from common.data import DatasetNotFoundError, register_dataset


@register_dataset("olivetti_faces", splits=("all",), description="Olivetti faces (sklearn cache), 400 x 1 x 64 x 64")
def _olivetti(split: str, root: Path) -> TensorDataset:
    from sklearn.datasets import fetch_olivetti_faces

    try:
        bunch = fetch_olivetti_faces(data_home=str(root), download_if_missing=False)
    except OSError:
        raise DatasetNotFoundError(
            f"dataset 'olivetti_faces': missing the sklearn cache under {root}; run "
            f"sklearn.datasets.fetch_olivetti_faces(data_home='{root}') once with network access"
        ) from None
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1)
    return TensorDataset(x, torch.tensor(bunch.target, dtype=torch.int64))
