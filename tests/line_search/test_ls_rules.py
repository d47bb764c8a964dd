"""The scalar Armijo rules of line_search/sls/armijo.py (DESIGN.md §3.1, (A2), (A4), (A5), (A9)), exact values."""

from __future__ import annotations

import math

import pytest

from line_search.sls.armijo import (
    armijo_test,
    candidate_step_size,
    search_interval,
    should_search,
    smoothed_slope,
    speedup_emas,
    trial_step_size,
)


@pytest.mark.parametrize(
    "args,expected",
    [
        ((0.5, 2.0, 0.7, 1e-3, None, 0), 0.5),  # keep eta_{k-1}
        ((0.5, 2.0, 0.7, 1e-3, None, 1), 1.0),  # grow
        ((0.5, 2.0, 0.7, 1e-3, None, 2), 0.7),  # reset to eta_0
        ((0.5, 2.0, 0.7, 1e-3, 0.8, 1), 0.8),  # clipped at eta_max
        ((0.5, 2.0, 0.7, 1e-3, 1.0, 1), 1.0),  # eta_max reached exactly
        ((1e-4, 1.5, 0.7, 1e-3, None, 1), 1e-3),  # floored at eta_min
        ((1e-4, 1.5, 0.7, 1e-3, 1e-2, 0), 1e-3),
    ],
)
def test_candidate_step_size(args, expected):
    assert candidate_step_size(*args) == expected


def test_candidate_step_size_grows_by_default_and_rejects_unknown_reset():
    assert candidate_step_size(0.5, 2.0, 0.7, 1e-3, None) == 1.0
    with pytest.raises(ValueError, match="reset_option"):
        candidate_step_size(0.5, 2.0, 0.7, 1e-3, None, 3)


@pytest.mark.parametrize("j,expected", [(0, 1.0), (1, 0.5), (3, 0.125), (20, 1e-3)])
def test_trial_step_size(j, expected):
    assert trial_step_size(1.0, 0.5, j, 1e-3) == expected


def test_smoothed_slope():
    assert smoothed_slope(2.0, 4.0, 0.25) == 3.5
    assert smoothed_slope(2.0, 4.0, 0.0) == 4.0


def test_armijo_accepts_on_the_boundary_and_rejects_below():
    res = armijo_test(1.0, 0.5, eta=1.0, s=1.0, h_prev=0.0, c=0.5, beta_s=0.0)
    assert res.accepted and res.h == 0.5 and res.delta == 0.5
    res = armijo_test(1.0, 0.625, eta=1.0, s=1.0, h_prev=0.0, c=0.5, beta_s=0.0)
    assert not res.accepted and res.delta == 0.375 and res.h == 0.375
    assert not armijo_test(1.0, 0.5, eta=2.0, s=1.0, h_prev=0.0, c=0.5, beta_s=0.0).accepted
    assert not armijo_test(1.0, 0.5, eta=1.0, s=2.0, h_prev=0.0, c=0.5, beta_s=0.0).accepted
    assert not armijo_test(1.0, 0.5, eta=1.0, s=1.0, h_prev=0.0, c=0.75, beta_s=0.0).accepted


def test_armijo_smoothed_decrease():
    res = armijo_test(1.0, 0.75, eta=1.0, s=1.0, h_prev=1.0, c=0.5, beta_s=0.5)
    assert res.accepted and res.h == 0.625 and res.delta == 0.25
    res = armijo_test(1.0, 0.75, eta=1.0, s=1.0, h_prev=0.5, c=0.5, beta_s=0.5)
    assert not res.accepted and res.h == 0.375


def test_armijo_ties_and_non_finite():
    assert armijo_test(1.0, 1.0, eta=1.0, s=1.0, h_prev=0.0, c=0.5, beta_s=0.0).accepted  # ties accepted by default
    assert not armijo_test(1.0, 1.0, eta=1.0, s=1.0, h_prev=0.0, c=0.5, beta_s=0.0, accept_ties=False).accepted
    res = armijo_test(1.0, math.nan, eta=1e-3, s=1.0, h_prev=0.25, c=0.5, beta_s=0.0)
    assert res.accepted is False and res.h == 0.25 and math.isnan(res.delta)
    res = armijo_test(1.0, math.inf, eta=1e-3, s=1.0, h_prev=0.25, c=0.5, beta_s=0.0)
    assert res.accepted is False and res.h == 0.25 and res.delta == -math.inf
    res = armijo_test(math.inf, 1.0, eta=1e-3, s=1.0, h_prev=0.25, c=0.5, beta_s=0.0)
    assert res.accepted is False and res.h == 0.25 and res.delta == math.inf


def test_speedup_emas():
    fast, slow = speedup_emas(2.0, 4.0, 3.0)
    assert fast == pytest.approx(2.1, abs=1e-15) and slow == pytest.approx(3.99, abs=1e-15)


def test_search_interval():
    assert search_interval(2.2, 2.0) == pytest.approx(1.0 / (0.1 + 1e-8), rel=1e-9)
    assert search_interval(2.0, 2.2) == pytest.approx(1.0 / (0.1 + 1e-8), rel=1e-9)  # r < 1 is inverted
    assert search_interval(3.0, 1.0) == pytest.approx(1.0 / (2.0 + 1e-8), rel=1e-15)
    assert search_interval(1.0, 1.0) == 10.0  # capped
    assert search_interval(1.0, 1.0, cap=5.0) == 5.0


def test_should_search():
    assert should_search(10, 0, 10.0)  # the first 10 steps always search
    assert not should_search(11, 9, 10.0)
    assert should_search(11, 10, 10.0)
    assert should_search(11, 3, 2.5)
    assert not should_search(5, 0, 10.0, warmup=3)
    assert should_search(3, 0, 10.0, warmup=3)
