"""The step-size arena: the five papers' methods and the standard baselines on shared workloads, one score.

Rules: arena/README.md. Entry points: ``python -m arena.run`` (trials), ``python -m arena.targets`` (targets and
budgets), ``python -m arena.report`` (REPORT.md from a results tree); ``arena.score`` holds the pure scoring functions.
The arena imports the paper packages; no paper imports the arena.
"""

__all__ = ["score", "loading"]
