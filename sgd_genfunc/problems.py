"""Kernel problems: synthetic power laws (E13), real-data NTK kernels, spectral data (E1) and power-law fits (E9).

Symbols: N train points; K the NTK Gram matrix, lambda_max its top eigenvalue, K~ = K/lambda_max = U diag(lam) U^T with
lam sorted descending (lam_1 = 1, negatives from rounding clamped to 0); d0 the initial residual f(X) - y;
c_k = (u_k^T d0)^2; nu, kappa the spectral and target exponents.

(E13) synthetic: lambda_k = lambda_min + (1 - lambda_min) k^-nu, c_k proportional to k^-(kappa+1) with sum c = 1
      (L_0 = 1/(2N)), d0 = sum_k sqrt(c_k) u_k; U Haar-orthogonal ("orthogonal", seeded) or Walsh-Hadamard / sqrt(N)
      ("hadamard", N a power of 2). `kappa_clamp` K: c_k proportional to 1 for k <= K and (k-K)^-(kappa+1) beyond.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from common.cli import UsageError
from common.data import DatasetNotFoundError, as_tensors, get_dataset, register_dataset
from sgd_genfunc import sources  # noqa: F401 - registers olivetti_faces in common.data
from sgd_genfunc.ntk import NTKTwoLayerMLP, ntk_mlp1, ntk_relu_infinite

IMAGE_SETS = ("mnist", "cifar10", "digits", "mnist5k", "olivetti_faces")
SKLEARN_SETS = ("diabetes",)
UCI_SETS = ("bike_sharing", "sgemm_product")
REAL_DATASETS = IMAGE_SETS + SKLEARN_SETS + UCI_SETS
SEED_URLS = {
    "bike_sharing": "https://archive.ics.uci.edu/ml/machine-learning-databases/00275/Bike-Sharing-Dataset.zip",
    "sgemm_product": "https://archive.ics.uci.edu/ml/machine-learning-databases/00440/sgemm_product_dataset.zip",
}


class KernelProblem(NamedTuple):
    """A linearized regression problem in function space (E1). X, y, model are None for synthetic problems."""

    K_tilde: torch.Tensor
    d0: torch.Tensor
    lam: torch.Tensor
    U: torch.Tensor
    c: torch.Tensor
    lambda_max: float
    X: torch.Tensor | None
    y: torch.Tensor | None
    model: torch.nn.Module | None


class RegressionData(NamedTuple):
    """Standardized features X (N, d) and targets y (N,), float64; classification sets keep label mean/std for
    accuracy (round(out * std_y + mean_y) == label)."""

    X: torch.Tensor
    y: torch.Tensor
    labels: torch.Tensor | None
    mean_y: float
    std_y: float
    X_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    labels_val: torch.Tensor | None = None


class PowerLawFit(NamedTuple):
    """nu, kappa: means over the fit windows (with std); Lambda, C_tail: fitted prefactors;
    K = C_tail Lambda^-zeta / (2N)."""

    nu: float
    nu_std: float
    kappa: float
    kappa_std: float
    Lambda: float
    C_tail: float
    K: float


def _check_N(N: int) -> int:
    N = int(N)
    if N < 2:
        raise UsageError(f"N must be >= 2, got {N}")
    return N


def power_law_spectrum(N: int, nu: float, lambda_min: float = 0.0) -> torch.Tensor:
    """lambda_k = lambda_min + (1 - lambda_min) k^-nu, k = 1..N (E13)."""
    N = _check_N(N)
    if nu <= 0:
        raise UsageError(f"nu must be > 0, got {nu}")
    if not 0.0 <= lambda_min < 1.0:
        raise UsageError(f"lambda_min must lie in [0, 1), got {lambda_min}")
    k = torch.arange(1, N + 1, dtype=torch.float64)
    return lambda_min + (1.0 - lambda_min) * k**-nu


def power_law_coefficients(N: int, kappa: float, kappa_clamp: int = 0) -> torch.Tensor:
    """c_k proportional to k^-(kappa+1) (or 1 for k <= kappa_clamp and (k - kappa_clamp)^-(kappa+1) beyond), sum 1."""
    N = _check_N(N)
    if kappa <= 0:
        raise UsageError(f"kappa must be > 0, got {kappa}")
    if kappa_clamp < 0:
        raise UsageError(f"kappa_clamp must be >= 0, got {kappa_clamp}")
    k = torch.arange(1, N + 1, dtype=torch.float64)
    shifted = torch.clamp(k - kappa_clamp, min=1.0)
    c = shifted ** -(kappa + 1.0)
    return c / c.sum()


def hadamard_basis(N: int) -> torch.Tensor:
    """Walsh-Hadamard matrix / sqrt(N) (orthogonal, every entry squared = 1/N); N a power of 2."""
    if N < 1 or N & (N - 1):
        raise UsageError(f"basis 'hadamard' needs N a power of 2, got {N}")
    H = torch.ones(1, 1, dtype=torch.float64)
    while H.shape[0] < N:
        H = torch.cat([torch.cat([H, H], 1), torch.cat([H, -H], 1)], 0)
    return H / math.sqrt(N)


def orthogonal_basis(N: int, seed: int = 0) -> torch.Tensor:
    """Haar-random orthogonal N x N matrix (QR of a seeded Gaussian matrix with the sign fix)."""
    g = torch.Generator().manual_seed(int(seed))
    A = torch.randn(N, N, generator=g, dtype=torch.float64)
    Q, R = torch.linalg.qr(A)
    return Q * torch.sign(torch.diagonal(R))[None, :]


def synthetic_problem(
    N: int,
    nu: float,
    kappa: float,
    lambda_min: float = 0.0,
    kappa_clamp: int = 0,
    basis: str = "orthogonal",
    seed: int = 0,
) -> KernelProblem:
    """Synthetic power-law problem of (E13)."""
    lam = power_law_spectrum(N, nu, lambda_min)
    c = power_law_coefficients(N, kappa, kappa_clamp)
    if basis == "orthogonal":
        U = orthogonal_basis(N, seed)
    elif basis == "hadamard":
        U = hadamard_basis(N)
    else:
        raise UsageError(f"basis must be 'orthogonal' or 'hadamard', got {basis!r}")
    K = (U * lam[None, :]) @ U.T
    K = 0.5 * (K + K.T)
    d0 = U @ torch.sqrt(c)
    return KernelProblem(K, d0, lam, U, c, 1.0, None, None, None)


@register_dataset("powerlaw", splits=("all",), description="synthetic power-law kernel problem (E13) of sgd_genfunc")
def _powerlaw_dataset(
    split: str,
    root: Path,
    N: int = 1000,
    nu: float = 1.5,
    kappa: float = 1.0,
    lambda_min: float = 0.0,
    kappa_clamp: int = 0,
    basis: str = "orthogonal",
    seed: int = 0,
) -> KernelProblem:
    """common.data entry `powerlaw`: a `KernelProblem` (kernel work needs the matrix, not samples)."""
    return synthetic_problem(N, nu, kappa, lambda_min, kappa_clamp, basis, seed)


def spectral_data(K, d0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """(lam, U, c, lambda_max) of a kernel K (E1): eigenpairs sorted descending, scaled by lambda_max, clamped >= 0,
    c_k = (u_k^T d0)^2."""
    K = torch.as_tensor(K, dtype=torch.float64)
    d0 = torch.as_tensor(d0, dtype=torch.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1] or d0.shape != (K.shape[0],):
        raise ValueError(f"K must be N x N and d0 of length N, got {tuple(K.shape)} and {tuple(d0.shape)}")
    evals, evecs = torch.linalg.eigh(0.5 * (K + K.T))
    evals, evecs = evals.flip(0), evecs.flip(1)
    lambda_max = float(evals[0])
    if lambda_max <= 0:
        raise ValueError("kernel has no positive eigenvalue")
    lam = torch.clamp(evals / lambda_max, min=0.0, max=1.0)
    c = (evecs.T @ d0) ** 2
    return lam, evecs, c, lambda_max


def _load(name: str, root: Path):
    try:
        split = "train" if name in ("mnist", "cifar10") else None
        X, y = as_tensors(get_dataset(name, split, root=root))
    except DatasetNotFoundError as exc:
        url = SEED_URLS.get(name)
        msg = str(exc).splitlines()[0]
        raise DatasetNotFoundError(msg + (f" (seed URL: {url})" if url else "")) from None
    return X, y


def regression_data(name: str, N: int, root="data", seed: int = 42, n_val: int = 0) -> RegressionData:
    """A standardized subset of N points of a real dataset (DESIGN.md §5).

    Images: flattened, pixel mean/std of the full train split, stratified subset (random_state = seed). sklearn sets:
    subset (random_state = seed), global standardization. UCI: subset, per-feature standardization on the subset
    (std 0 -> 1). Targets: the label or value, standardized on the subset. With n_val > 0, up to n_val points of the
    complement (random_state = seed + 1) form a validation set standardized the same way.
    """
    from sklearn.model_selection import train_test_split

    if name not in REAL_DATASETS:
        raise UsageError(f"unknown dataset {name!r}; choose one of {', '.join(REAL_DATASETS)}")
    N = _check_N(N)
    X, y = _load(name, Path(root))
    X = X.reshape(X.shape[0], -1).double()
    n_total = X.shape[0]
    if N > n_total:
        raise UsageError(f"N={N} exceeds the size of dataset {name!r} ({n_total})")
    is_class = name in IMAGE_SETS
    idx = np.arange(n_total)
    if N < n_total:
        strat = y.numpy() if is_class else None
        try:
            idx, _ = train_test_split(idx, train_size=N, random_state=seed, stratify=strat)
        except ValueError:  # too few points per class to stratify
            idx, _ = train_test_split(idx, train_size=N, random_state=seed)
    rest = np.setdiff1d(np.arange(n_total), idx)
    idx = torch.as_tensor(np.sort(idx))
    val_idx = None
    if n_val > 0 and len(rest) > 0:
        rng = np.random.default_rng(seed + 1)
        val_idx = torch.as_tensor(np.sort(rng.permutation(rest)[: min(n_val, len(rest))]))
    if name in IMAGE_SETS or name in SKLEARN_SETS:
        X = (X - X.mean()) / X.std()
        mu, std = 0.0, 1.0
    else:
        std = X[idx].std(0)
        std[std == 0] = 1.0
        mu = X[idx].mean(0)
    Xs = (X[idx] - mu) / std
    ys = y[idx].double()
    mean_y, std_y = float(ys.mean()), float(ys.std())
    std_y = std_y if std_y > 0 else 1.0
    labels = y[idx].long() if is_class else None
    out = RegressionData(Xs, (ys - mean_y) / std_y, labels, mean_y, std_y)
    if val_idx is not None:
        out = out._replace(
            X_val=(X[val_idx] - mu) / std,
            y_val=(y[val_idx].double() - mean_y) / std_y,
            labels_val=y[val_idx].long() if is_class else None,
        )
    return out


def real_problem(
    name: str, N: int, root="data", seed: int = 42, hidden_dim: int = 1000, ntk_model: str = "infinite"
) -> KernelProblem:
    """Kernel problem on real data: `infinite` uses `ntk_relu_infinite` with d0 = -y; `mlp` the closed-form NTK of an
    `NTKTwoLayerMLP` initialized with torch.manual_seed(seed), with d0 = f_0(X) - y."""
    if ntk_model not in ("infinite", "mlp"):
        raise UsageError(f"ntk_model must be 'infinite' or 'mlp', got {ntk_model!r}")
    data = regression_data(name, N, root, seed)
    model = None
    if ntk_model == "infinite":
        K = ntk_relu_infinite(data.X)
        d0 = -data.y
    else:
        torch.manual_seed(seed)
        model = NTKTwoLayerMLP(data.X.shape[1], hidden_dim).double()
        K = ntk_mlp1(model, data.X)
        with torch.no_grad():
            d0 = model(data.X) - data.y
    lam, U, c, lambda_max = spectral_data(K, d0)
    return KernelProblem(K / lambda_max, d0, lam, U, c, lambda_max, data.X, data.y, model)


def _window_fit(x: np.ndarray, logy: np.ndarray, windows) -> tuple[list[float], list[float]]:
    slopes, intercepts = [], []
    n = len(x)
    for lo, hi in windows:
        lo, hi = min(lo, n - 2), min(hi, n)
        sel = slice(lo - 1, hi)
        xs, ys = np.log(x[sel]), logy[sel]
        ok = np.isfinite(ys)
        if ok.sum() < 2:
            continue
        s, b = np.polyfit(xs[ok], ys[ok], 1)
        slopes.append(-s)
        intercepts.append(b)
    if not slopes:
        raise ValueError("too few modes to fit power laws")
    return slopes, intercepts


def fit_power_laws(lam, c) -> PowerLawFit:
    """Fit lambda_k ~ Lambda k^-nu (k in [5,100], [50,200], [100,300]) and sum_{l>=k} c_l / sum c ~ k^-kappa
    (k in [10,110], [60,210], [110,310]); windows are clipped to the available modes (E9)."""
    lam = np.asarray(torch.as_tensor(lam, dtype=torch.float64).cpu())
    c = np.asarray(torch.as_tensor(c, dtype=torch.float64).cpu())
    N = len(lam)
    k = np.arange(1, N + 1, dtype=float)
    with np.errstate(divide="ignore"):
        nus, lam_b = _window_fit(k, np.log(lam), [(5, 100), (50, 200), (100, 300)])
        tail = np.cumsum(c[::-1])[::-1]
        kappas, tail_b = _window_fit(k, np.log(tail / tail[0]), [(10, 110), (60, 210), (110, 310)])
    nu, kappa = float(np.mean(nus)), float(np.mean(kappas))
    Lambda = float(np.exp(np.mean(lam_b)))
    C_tail = float(np.exp(np.mean(tail_b)) * tail[0])
    K = C_tail * Lambda ** (-kappa / nu) / (2 * N)
    return PowerLawFit(nu, float(np.std(nus)), kappa, float(np.std(kappas)), Lambda, C_tail, K)
