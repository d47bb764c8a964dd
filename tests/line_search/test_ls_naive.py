"""The naive baseline of benchmarks/line_search_naive.py makes our accept decisions (issue 6, test 19 decision)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from ls_recipes import batches, mlp
from torch import nn

from line_search.sls import KenSLS, SaLSa

ROOT = Path(__file__).resolve().parents[2]


def _naive():
    spec = importlib.util.spec_from_file_location("line_search_naive", ROOT / "benchmarks" / "line_search_naive.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.NaiveArmijo


CASES = {
    "salsa_speed_up": (SaLSa, {}, {}),
    "salsa_no_speed_up": (SaLSa, {"speed_up": False}, {"speed_up": False}),
    "kensls": (
        KenSLS,
        {},
        dict(
            c=0.5,
            init_step_size=0.1,
            grow=1 / 0.999,
            shrink=0.9,
            beta_s=0.99,
            speed_up=False,
            search_direction="momentum",
            step_direction="trial",
        ),
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", list(CASES))
def test_naive_makes_our_decisions(case, digits):
    x, y = digits
    cls, ours_kw, naive_kw = CASES[case]
    a, b = mlp(dropout=0.1), mlp(dropout=0.1)
    ours = cls(a.parameters(), seed=3, **ours_kw)
    naive = _naive()(b.parameters(), seed=3, **naive_kw)
    crit = nn.CrossEntropyLoss()
    mine = []
    for bx, by in batches(x, y, 30):
        ours.zero_grad()
        ours.step(lambda bx=bx, by=by: crit(a(bx), by))
        d = ours.diagnostics
        if d["searched"]:
            mine.append((d["step"], d["trials"], d["accepted"]))
        naive.zero_grad()
        naive.step(lambda bx=bx, by=by: crit(b(bx), by))
    assert len(mine) >= 10
    assert mine == naive.decisions, f"naive decisions differ ({case}): {mine} vs {naive.decisions}"
