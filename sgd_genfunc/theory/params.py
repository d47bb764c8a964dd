"""Parameter handling shared by the theory modules.

Scalars alpha (step size), beta (momentum), gamma (batch noise factor, E2) and tau (SD parameter, E4) are accepted as
python floats, as tensors/arrays of any leading config shape G (broadcast against the mode axis of length N), or as
callables of the step index n >= 1 (schedules). Everything is computed in float64 unless the input says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

Scalar = float | int | torch.Tensor | np.ndarray | Callable[[int], object]

DTYPE = torch.float64


def as_tensor(x, dtype: torch.dtype | None = DTYPE, device=None) -> torch.Tensor:
    """Convert numpy arrays, lists, floats or tensors to a tensor (float64 by default) on `device`."""
    if isinstance(x, torch.Tensor):
        return x.to(dtype=dtype or x.dtype, device=device or x.device)
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


def value_at(x: Scalar, n: int):
    """The value of a (possibly scheduled) scalar at step n >= 1."""
    return x(n) if callable(x) else x


def config_param(x, device=None, dtype: torch.dtype = DTYPE):
    """A float stays a float; an array/tensor of config shape G becomes a tensor of shape (*G, 1)."""
    if isinstance(x, (bool, int, float, np.floating, np.integer)):
        return float(x)
    t = as_tensor(x, dtype=dtype, device=device)
    if t.ndim == 0:
        return t
    return t.unsqueeze(-1)


def config_shape(*params) -> tuple[int, ...]:
    """Broadcast shape G of the config axes of the (non-callable) parameters."""
    shapes = []
    for x in params:
        if callable(x) or isinstance(x, (bool, int, float, np.floating, np.integer)):
            continue
        shapes.append(tuple(np.shape(x)))
    return tuple(torch.broadcast_shapes(*shapes)) if shapes else ()


def check_nonneg(name: str, x) -> None:
    """Raise ValueError naming `name` when a non-callable parameter has a negative entry."""
    if callable(x):
        return
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=float)
    if np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0, got {arr.min() if arr.ndim else float(arr)}")


def check_spectrum(lam: torch.Tensor) -> None:
    """Scaled eigenvalues must lie in [0, 1] (K~ = K / lambda_max, E1)."""
    if lam.ndim != 1:
        raise ValueError(f"lam must be 1-D (N modes), got shape {tuple(lam.shape)}")
    if lam.numel() < 1:
        raise ValueError("lam must have at least one mode")
    lo, hi = float(lam.min()), float(lam.max())
    if lo < 0 or hi > 1 + 1e-12:
        raise ValueError(f"lam must lie in [0, 1] after scaling by lambda_max, got range [{lo}, {hi}]")
