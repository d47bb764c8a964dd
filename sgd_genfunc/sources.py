"""Datasets this paper registers in common.data (spec 5): `powerlaw` and `olivetti_faces`."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from common.data import DatasetNotFoundError, register_dataset


@register_dataset("powerlaw", splits=("all",), description="synthetic power-law kernel problem (E13) of sgd_genfunc")
def _powerlaw(
    split: str,
    root: Path,
    N: int = 1000,
    nu: float = 1.5,
    kappa: float = 1.0,
    lambda_min: float = 0.0,
    kappa_clamp: int = 0,
    basis: str = "orthogonal",
    seed: int = 0,
):
    """Returns a `sgd_genfunc.problems.KernelProblem` (kernel work needs the matrix, not samples)."""
    from sgd_genfunc.problems import synthetic_problem

    return synthetic_problem(N, nu, kappa, lambda_min, kappa_clamp, basis, seed)


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
