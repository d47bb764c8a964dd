"""Closed-form test functions of the paper's sec. 4.2 (DESIGN.md §3.4).

| function        | f(x)                                          | x0            | max steps | f*                 |
| sphere          | sum x_i^2                                     | (-1, ..., -1) | 1000      | 0 at 0             |
| rosenbrock      | sum_{i<n} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2 | (-1, 0, ..., 0) | 25000   | 0 at (1, ..., 1)   |
| styblinski-tang | 1/2 sum (x_i^4 - 16 x_i^2 + 5 x_i)            | 0             | 1000      | -39.16616570377142 n |

Notes: the reference rounded the Styblinski-Tang constant to -39.16599, which made f - f* negative; we use the exact
value. Rosenbrock with n = 1 is the empty sum (f == 0): allowed and flagged `degenerate`.

Each function also carries its gradient in closed form. `directional(x, D)` returns (f(x), D grad f(x)): the
directional derivatives d_i = v_i . grad f(x) that forward mode computes (the tangent part of f(x + eps v_i)),
evaluated from the written-out gradient. For these three functions it equals torch.func.jvp to float rounding
(tests/forward_grad/test_fg_functions.py) and costs a few microseconds instead of a vmap(jvp) trace: the
`analytic` backend of math_experiments.py and of the LR search.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from common.cli import UsageError

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


def sphere_value_and_grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (x * x).sum(), 2.0 * x


def rosenbrock_value_and_grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """f and grad f sharing the terms r_i = x_{i+1} - x_i^2 and x_i - 1:
    df/dx_i = -400 x_i r_i + 2 (x_i - 1) (i < n) + 200 r_{i-1} (i > 0)."""
    head = x[:-1]
    inner = x[1:] - head * head
    head_m1 = head - 1.0
    value = (100.0 * inner * inner + head_m1 * head_m1).sum()
    g = torch.zeros_like(x)
    g[:-1] = 2.0 * head_m1 - 400.0 * head * inner
    g[1:] += 200.0 * inner
    return value, g


def styblinski_tang_value_and_grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x2 = x * x
    return 0.5 * (x2 * x2 - 16.0 * x2 + 5.0 * x).sum(), (2.0 * x2 - 16.0) * x + 2.5


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
    value_and_grad_fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None  # closed form

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x)

    def value_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f(x), grad f(x)) from the closed-form gradient."""
        return self.value_and_grad_fn(x)

    def directional(self, x: torch.Tensor, D: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f(x), d) with d_i = D_i . grad f(x) for the K rows of D: the K forward-mode jvps in closed form."""
        value, g = self.value_and_grad_fn(x)
        return value, D @ g

    def x0(self, n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        if int(n) != n or n <= 0:
            raise UsageError(f"dimension n must be a positive integer, got {n}")
        return self.x0_fn(int(n), dtype)

    def fstar(self, n: int) -> float:
        return self.fstar_per_dim * n

    def degenerate(self, n: int) -> bool:
        """True for rosenbrock at n = 1 (the empty sum, f == 0)."""
        return self.name == "rosenbrock" and n == 1


FUNCTIONS = {
    "sphere": ClosedFormFunction("sphere", sphere, _x0_sphere, 1000, 0.0, sphere_value_and_grad),
    "rosenbrock": ClosedFormFunction("rosenbrock", rosenbrock, _x0_rosenbrock, 25000, 0.0, rosenbrock_value_and_grad),
    "styblinski-tang": ClosedFormFunction(
        "styblinski-tang", styblinski_tang, _x0_st, 1000, ST_FSTAR_PER_DIM, styblinski_tang_value_and_grad
    ),
}


def get_function(name: str) -> ClosedFormFunction:
    """The function of DESIGN.md §3.4 by name; ValueError for unknown names."""
    if name not in FUNCTIONS:
        raise UsageError(f"unknown function {name!r}; choose from {', '.join(FUNCTIONS)}")
    return FUNCTIONS[name]
