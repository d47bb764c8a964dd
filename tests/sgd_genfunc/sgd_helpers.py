"""Shared builders for the sgd_genfunc tests: tiny spectra and kernels, built in the test, offline.

A plain helper module with a basename unique under tests/ (pytest's prepend import mode puts each test folder on
sys.path, so `from sgd_helpers import ...` works whichever test files run together); fixtures live in the tests.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from sgd_genfunc.problems import orthogonal_basis, power_law_coefficients, power_law_spectrum, synthetic_problem


def power_problem(N: int, nu: float = 1.5, kappa: float = 1.0, basis: str = "orthogonal", seed: int = 0):
    return synthetic_problem(N, nu, kappa, basis=basis, seed=seed)


def random_kernel(N: int, seed: int = 0):
    """Random orthogonal eigenvectors with lambda_k = k^-1.5 (lambda_1 = 1) and a power-law residual."""
    U = orthogonal_basis(N, seed)
    lam = power_law_spectrum(N, 1.5)
    K = (U * lam) @ U.T
    d0 = U @ torch.sqrt(power_law_coefficients(N, 1.0))
    return lam, U, 0.5 * (K + K.T), d0


def all_batches(N: int, b: int):
    return [list(B) for B in itertools.combinations(range(N), b)]


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
