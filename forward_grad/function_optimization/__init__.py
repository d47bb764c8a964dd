"""Closed-form function optimization with forward gradients (DESIGN.md §3.4)."""

from forward_grad.function_optimization.functions import FUNCTIONS, ClosedFormFunction, get_function
from forward_grad.function_optimization.optimize import (
    Approach,
    OptimizationResult,
    descend,
    optimize,
    parse_approach,
)

__all__ = [
    "FUNCTIONS",
    "Approach",
    "ClosedFormFunction",
    "OptimizationResult",
    "descend",
    "get_function",
    "optimize",
    "parse_approach",
]
