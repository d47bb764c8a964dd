"""AutoWU: automated LR warmup and decay for large-batch training (Kim et al., AutoML@ICML 2021)."""

from autowu.config import DecayConfig, PolicyConfig, RampConfig
from autowu.gp_test import GPConfig, GPTest, TestOutcome
from autowu.scheduler import REASONS, AutoWU
from autowu.schedules import BaselineFactor, baseline_lr

__all__ = [
    "AutoWU",
    "REASONS",
    "RampConfig",
    "DecayConfig",
    "PolicyConfig",
    "GPConfig",
    "GPTest",
    "TestOutcome",
    "BaselineFactor",
    "baseline_lr",
]
