"""Baseline pruning rule of the LR search (DESIGN.md §3.5), free of propulate so it is testable on hand series.

Symbols: s(.) = loss - f* (DESIGN.md §3.4; 0 for NN), m the margin (default 0.5), p the patience (p < 1: a fraction
of the run's step budget; p >= 1: steps). The baseline is the finished run with the lowest final loss. A run is
cancelled when s_t > s(baseline_t)/m and s_t > s(baseline_final) held for more than p consecutive steps; steps
beyond the baseline's length compare with its final value. Merging keeps the baseline with the better final loss
(propulate's StaticSurrogate keeps the worse one and zero-pads runs; not used). m = 0 disables pruning.
"""

from __future__ import annotations

import math

from common.cli import UsageError

__all__ = ["BaselinePruner"]


class BaselinePruner:
    """Pure state machine behind the search's propulate Surrogate: start_run, cancel(loss), update(final), merge."""

    def __init__(self, margin: float = 0.5, patience: float = 0.05, max_steps: int = 1000, fstar: float = 0.0):
        if margin < 0:
            raise UsageError(f"surrogate margin must be >= 0, got {margin}")
        if patience < 0:
            raise UsageError(f"surrogate patience must be >= 0, got {patience}")
        self.margin = margin
        self.patience = patience * max_steps if patience < 1 else patience
        self.fstar = fstar
        self.baseline: list[float] = []
        self.current: list[float] = []
        self.bad = 0
        self.pruned = False
        self._unsent = False  # the own baseline changed since data() last handed it out

    def start_run(self) -> None:
        self.current, self.bad, self.pruned = [], 0, False

    def cancel(self, loss: float) -> bool:
        """Record the step's loss; True once the run should be cancelled."""
        t = len(self.current)
        self.current.append(float(loss))
        if self.margin == 0 or not self.baseline:
            return False
        s_t = loss - self.fstar
        if not math.isfinite(s_t):
            return False  # the loss generator ends non-finite runs itself
        final = self.baseline[-1] - self.fstar
        ref = (self.baseline[t] if t < len(self.baseline) else self.baseline[-1]) - self.fstar
        if s_t > ref / self.margin and s_t > final:
            self.bad += 1
        else:
            self.bad = 0
        if self.bad > self.patience:
            self.pruned = True
        return self.pruned

    def update(self, final_loss: float) -> None:
        """End of a run: a finished (not pruned), finite run with a better final loss becomes the baseline."""
        if self.pruned or not self.current or not math.isfinite(final_loss):
            return
        if not self.baseline or final_loss < self.baseline[-1]:
            self.baseline = list(self.current)
            self._unsent = True

    def data(self) -> list[float]:
        """The baseline for the other ranks, only when this rank's own baseline changed since the last call
        (else []: merge ignores it); propulate attaches it to every individual it sends."""
        if not self._unsent:
            return []
        self._unsent = False
        return list(self.baseline)

    def merge(self, other: list[float]) -> None:
        """Adopt another rank's baseline when its final loss is better (commutative: the better one wins)."""
        if other and math.isfinite(other[-1]) and (not self.baseline or other[-1] < self.baseline[-1]):
            self.baseline = list(other)
