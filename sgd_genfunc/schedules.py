"""Step-size and momentum schedules as pure functions of the step index n >= 1.

Jacobi (non-stationary heavy ball) schedules with parameters (a, b):
    alpha_n = lr (2n+a+b+1)(2n+a+b+2) / (2 (n+a+1)(n+a+b+1)),
    beta_n  = n (n+b) (2n+a+b+2) / ((n+a+1)(n+a+b+1)(2n+a+b)).
"""

from __future__ import annotations

from collections.abc import Callable

from common.cli import UsageError


class constant:  # noqa: N801 - reads as a function in configs: constant(0.5)
    """A schedule that returns v at every step."""

    def __init__(self, v: float):
        self.v = float(v)

    def __call__(self, n: int) -> float:
        return self.v

    def __repr__(self) -> str:
        return f"constant({self.v})"


class JacobiScheduleA:
    """Jacobi step sizes alpha_n (see module docstring)."""

    def __init__(self, lr: float, a: float = 1.0, b: float = 1.0):
        if lr < 0:
            raise UsageError(f"lr must be >= 0, got {lr}")
        if a <= -1 or b <= -1:
            raise UsageError(f"Jacobi parameters need a > -1 and b > -1, got a={a}, b={b}")
        self.lr, self.a, self.b = float(lr), float(a), float(b)

    def __call__(self, n: int) -> float:
        a, b = self.a, self.b
        return self.lr * (2 * n + a + b + 1) * (2 * n + a + b + 2) / (2 * (n + a + 1) * (n + a + b + 1))


class JacobiScheduleB:
    """Jacobi momenta beta_n (see module docstring); beta_n -> 1 as n grows."""

    def __init__(self, a: float = 1.0, b: float = 1.0):
        if a <= -1 or b <= -1:
            raise UsageError(f"Jacobi parameters need a > -1 and b > -1, got a={a}, b={b}")
        self.a, self.b = float(a), float(b)

    def __call__(self, n: int) -> float:
        a, b = self.a, self.b
        return n * (n + b) * (2 * n + a + b + 2) / ((n + a + 1) * (n + a + b + 1) * (2 * n + a + b))


def as_schedule(x) -> Callable[[int], float]:
    """A callable stays as it is; a number becomes `constant(x)`."""
    return x if callable(x) else constant(x)
