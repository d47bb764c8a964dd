"""arena.score against hand-computed profiles and scores (arena/README.md §6)."""

from __future__ import annotations

import math

import pytest

from arena.score import (
    benchmark_score,
    coverage,
    group_trials,
    median,
    performance_profile,
    time_to_target,
    total_cost,
)

INF = math.inf
# c lacks w2 and w3 (a miss there); nobody is faster than 1 on w1
TIMES = {
    "a": {"w1": 1.0, "w2": 2.0, "w3": INF},
    "b": {"w1": 2.0, "w2": 1.0, "w3": 3.0},
    "c": {"w1": 5.0},
}


def test_profile_by_hand():
    # ratios: w1 a 1, b 2, c 5; w2 a 2, b 1, c inf (lacks it); w3 a inf, b 1, c inf
    prof = performance_profile(TIMES, [1.0, 2.0, 4.0, 5.0])
    assert prof["a"] == pytest.approx([1 / 3, 2 / 3, 2 / 3, 2 / 3])
    assert prof["b"] == pytest.approx([2 / 3, 1.0, 1.0, 1.0])
    assert prof["c"] == pytest.approx([0.0, 0.0, 0.0, 1 / 3])


def test_benchmark_score_by_hand_with_the_4x_cut_off():
    # B = sum_w max(0, 4 - r) / (3 * 3): a (3 + 2) / 9, b (2 + 3 + 3) / 9, c: r = 5 is past the 4x cut-off
    b = benchmark_score(TIMES, tau_max=4.0)
    assert b["a"] == pytest.approx(5 / 9)
    assert b["b"] == pytest.approx(8 / 9)
    assert b["c"] == 0.0
    # raising tau_max to 6 lets c's r = 5 count: (6 - 5) / (3 * 5)
    assert benchmark_score(TIMES, tau_max=6.0)["c"] == pytest.approx(1 / 15)


def test_score_against_a_fixed_reference():
    # r = t / t_a: w1 a 1, b 2, c 5; w2 a 1, b 0.5 (full credit); w3: a misses, b reaches it -> full credit
    b = benchmark_score(TIMES, tau_max=4.0, reference="a")
    assert b["a"] == pytest.approx(6 / 9)
    assert b["b"] == pytest.approx(8 / 9)
    assert b["c"] == 0.0


def test_score_is_the_exact_integral_of_the_profile():
    taus = [1.0 + 3.0 * i / 30000 for i in range(30001)]
    prof = performance_profile(TIMES, taus)
    for c, rho in prof.items():
        riemann = sum(rho[:-1]) * (taus[1] - taus[0]) / 3.0
        assert riemann == pytest.approx(benchmark_score(TIMES)[c], abs=1e-3)


def test_all_miss_and_coverage():
    times = {"x": {"w": INF}, "y": {"w": INF}}
    assert benchmark_score(times) == {"x": 0.0, "y": 0.0}
    assert coverage(TIMES) == pytest.approx({"a": 2 / 3, "b": 1.0, "c": 1 / 3})
    with pytest.raises(ValueError):
        benchmark_score(TIMES, tau_max=1.0)


def _s(study, trial, cpu, hit=False, t=INF, budget=10.0, charged=0.0):
    return {
        "contestant": "c",
        "workload": "w",
        "study": study,
        "trial": trial,
        "cpu": cpu,
        "hit": hit,
        "time_to_target": t,
        "budget": budget,
        "charged_once": charged,
    }


def test_time_to_target_and_total_cost_by_hand():
    trials = [
        _s(0, 0, 2.0),
        _s(0, 1, 1.5, True, 1.5),
        _s(0, 2, 0.5, True, 0.5),  # t 0.5, T 2 + 1.5 = 3.5
        _s(1, 0, 2.0),
        _s(1, 1, 2.0),
        _s(1, 2, 2.0),  # misses: t = T = inf
        _s(2, 1, 4.0),
        _s(2, 0, 1.0, True, 1.0),  # trial order, not list order: t 1.0, T 1.0
    ]
    studies = group_trials(trials)[("c", "w")]
    assert time_to_target(studies) == 1.0  # median of 0.5, inf, 1.0
    assert total_cost(studies) == 3.5  # median of 3.5, inf, 1.0


def test_hit_beyond_budget_is_a_miss_and_charges_once():
    studies = group_trials([_s(0, 0, 3.0, True, 3.0, budget=2.0), _s(0, 1, 1.0, True, 1.0, charged=5.0)])[("c", "w")]
    assert time_to_target(studies) == 1.0
    assert total_cost(studies) == 3.0 + 1.0 + 5.0
    assert time_to_target({}) == INF and total_cost({}) == INF


def test_median_with_infinities():
    assert median([1.0, INF]) == INF
    assert median([3.0, 1.0, 2.0, 4.0]) == 2.5
    assert median([]) == INF


def test_target_and_budget_rule_by_hand():
    from arena.targets import derive

    # five reruns: best metrics 0.90, 0.92, 0.94, 0.91, 0.93 -> target = median = 0.92
    curves = [
        [(1.0, 0.85), (2.0, 0.90)],
        [(1.0, 0.88), (3.0, 0.92)],  # reaches 0.92 at 3.0
        [(1.5, 0.92), (2.5, 0.94)],  # at 1.5
        [(1.0, 0.91)],  # never
        [(2.0, 0.93)],  # at 2.0
    ]
    reruns = [{"best_val": max(v for _, v in c), "curve": [{"cpu": t, "val": v} for t, v in c]} for c in curves]
    target, budget, times = derive(reruns, "max")
    assert target == pytest.approx(0.92)
    assert times == [INF, 3.0, 1.5, INF, 2.0]
    assert budget == pytest.approx(4 / 3 * 3.0)  # median of (1.5, 2.0, 3.0, inf, inf) = 3.0
