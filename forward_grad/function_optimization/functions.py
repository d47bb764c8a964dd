"""Closed-form test functions of the paper's sec. 4.2 (spec 3.4).

| function        | f(x)                                          | x0            | max steps | f*                 |
| sphere          | sum x_i^2                                     | (-1, ..., -1) | 1000      | 0 at 0             |
| rosenbrock      | sum_{i<n} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2 | (-1, 0, ..., 0) | 25000   | 0 at (1, ..., 1)   |
| styblinski-tang | 1/2 sum (x_i^4 - 16 x_i^2 + 5 x_i)            | 0             | 1000      | -39.16616570377142 n |

Notes: the reference rounded the Styblinski-Tang constant to -39.16599, which made f - f* negative; we use the exact
value. Rosenbrock with n = 1 is the empty sum (f == 0): allowed and flagged `degenerate`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["ClosedFormFunction", "FUNCTIONS", "get_function", "ST_FSTAR_PER_DIM", "ST_ARGMIN"]

ST_FSTAR_PER_DIM = -39.16616570377142
ST_ARGMIN = -2.903534


def sphere(x: torch.Tensor) -> torch.Tensor:
    return (x * x).sum()


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    head, tail = x[:-1], x[1:]
    return (100.0 * (tail - head * head) ** 2 + (1.0 - head) ** 2).sum()


def styblinski_tang(x: torch.Tensor) -> torch.Tensor:
    x2 = x * x
    return 0.5 * (x2 * x2 - 16.0 * x2 + 5.0 * x).sum()


def _x0_sphere(n, dtype):
    return -torch.ones(n, dtype=dtype)


def _x0_rosenbrock(n, dtype):
    x = torch.zeros(n, dtype=dtype)
    x[0] = -1.0
    return x


def _x0_st(n, dtype):
    return torch.zeros(n, dtype=dtype)


@dataclass(frozen=True)
class ClosedFormFunction:
    """A test function: f, start point x0(n), step budget, optimum f*(n)."""

    name: str
    f: Callable[[torch.Tensor], torch.Tensor]
    x0_fn: Callable[[int, torch.dtype], torch.Tensor]
    max_steps: int
    fstar_per_dim: float = 0.0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x)

    def x0(self, n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        if int(n) != n or n <= 0:
            raise ValueError(f"dimension n must be a positive integer, got {n}")
        return self.x0_fn(int(n), dtype)

    def fstar(self, n: int) -> float:
        return self.fstar_per_dim * n

    def degenerate(self, n: int) -> bool:
        """True for rosenbrock at n = 1 (the empty sum, f == 0)."""
        return self.name == "rosenbrock" and n == 1


FUNCTIONS = {
    "sphere": ClosedFormFunction("sphere", sphere, _x0_sphere, 1000),
    "rosenbrock": ClosedFormFunction("rosenbrock", rosenbrock, _x0_rosenbrock, 25000),
    "styblinski-tang": ClosedFormFunction("styblinski-tang", styblinski_tang, _x0_st, 1000, ST_FSTAR_PER_DIM),
}


def get_function(name: str) -> ClosedFormFunction:
    """The function of spec 3.4 by name; ValueError for unknown names."""
    if name not in FUNCTIONS:
        raise ValueError(f"unknown function {name!r}; choose from {', '.join(FUNCTIONS)}")
    return FUNCTIONS[name]
