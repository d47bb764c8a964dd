"""Shared core: data, models, runs, CLI, runtime, checkpoints, distributed helpers, report, bench, plotting."""
