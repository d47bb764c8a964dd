"""Repository layout rules that keep any subset of the test files runnable together."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_module_basenames_are_unique() -> None:
    """pytest's prepend import mode imports test modules by basename: two test_demo.py files collide."""
    names = Counter(p.name for p in TESTS.rglob("*.py") if p.name != "conftest.py" and "__pycache__" not in p.parts)
    assert not [name for name, count in names.items() if count > 1]
