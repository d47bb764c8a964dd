"""DESIGN.md §7.1, §7.2, §7.3, §7.5, §7.6: construction, ramp, test timing, fallback, decay closed forms."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from autowu_helpers import assert_rel, drive, make_sched
from torch.optim.lr_scheduler import LRScheduler

from autowu import AutoWU
from autowu.schedules import BaselineFactor, baseline_lr, cooldown_lr, warmup_lr
from autowu.synthetic import run_curve

GAMMA = 10 ** (5 / 1500)


@pytest.fixture(scope="module")
def flat_run():
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        res = run_curve("flat", 0.05, 0)
    return res, [w for w in rec if issubclass(w.category, UserWarning)]


def test_construction_sets_min_lr_everywhere():
    p1, p2 = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([{"params": [p1]}, {"params": [p2]}], lr=0.3)
    _, s = make_sched(opt)
    assert isinstance(s, LRScheduler)
    assert s.last_epoch == 0, "DESIGN.md §7.1: last_epoch == 0 after construction"
    assert s.get_last_lr() == [1e-5, 1e-5], "DESIGN.md §7.1: get_last_lr() == [1e-5]*G"
    assert [g["lr"] for g in opt.param_groups] == [1e-5, 1e-5], "DESIGN.md §7.1: every group's lr = 1e-5"
    assert s.phase == "warmup" and s.switch_step is None


def test_group_ratio_warning_and_preserve():
    p1, p2 = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([{"params": [p1], "lr": 0.1}, {"params": [p2], "lr": 0.01}], lr=0.1)
    with pytest.warns(UserWarning, match="one LR"):
        AutoWU(opt, 50, 60)
    opt = torch.optim.SGD([{"params": [p1], "lr": 0.1}, {"params": [p2], "lr": 0.01}], lr=0.1)
    s = AutoWU(opt, 50, 60, preserve_group_ratios=True)
    lrs = s.get_last_lr()
    assert_rel(lrs[1] / lrs[0], 0.1, 1e-12, "DESIGN.md §7.1: preserve_group_ratios keeps 1:0.1")


def test_ramp_ratio_and_exact_closed_form(flat_run):
    res, _ = flat_run
    lrs = res.lrs
    for u in (1, 777, 1499):
        expected = 1e-5 * (1.0 / 1e-5) ** ((u - 1) / 1500)
        assert lrs[u - 1] == expected, f"DESIGN.md §7.2: lr_{u} must equal the closed form exactly"
    checked = 0
    for u in range(1, 1500):
        assert_rel(lrs[u] / lrs[u - 1], GAMMA, 1e-12, f"DESIGN.md §7.2: lr_{u + 1}/lr_{u} = 10^(5/1500)")
        checked += 1
    assert checked == 1499


def test_epoch_factor():
    for e, factor in ((60, 1.4678), (120, 1.2115)):
        _, s = make_sched(e=e)
        assert abs(s.lr_at(51) / s.lr_at(1) - factor) < 5e-5, f"DESIGN.md §7.2: epoch factor at E={e} is {factor}"


def test_linear_and_epoch_variants():
    _, s = make_sched(warmup_type="linear")
    lrs = drive(s, [2.0] * 40)
    for u in (1, 2, 17, 40):
        assert_rel(lrs[u - 1], 1e-5 + (1.0 - 1e-5) * (u - 1) / 1500, 1e-12, "DESIGN.md §7.2: linear warmup formula")
    _, s = make_sched(warmup_unit="epoch")
    lrs = drive(s, [2.0] * 120)
    for u in (1, 50, 51, 100, 101, 120):
        expected = 1e-5 * (1e5) ** (((u - 1) // 50) / 30)
        assert_rel(lrs[u - 1], expected, 1e-12, f"DESIGN.md §7.2: epoch staircase at u={u}")


def test_tests_run_at_interval_ends(flat_run):
    res, _ = flat_run
    assert [d["step"] for d in res.test_log] == list(range(50, 1500, 50)), (
        "DESIGN.md §7.3: tests at 50, 100, ... < 1500"
    )


def test_earliest_switch_is_three_epochs():
    _, s = make_sched()
    drive(s, [2.0 + u / 1000 for u in range(1, 400)])  # rising from the start: every test is positive
    assert s.switch_step == 150, "DESIGN.md §7.3: the earliest switch is step 3S = 150"
    assert len(s.test_log) == 3, "DESIGN.md §7.3: no test after the switch"
    assert s.switch_reason == "test"


@pytest.mark.parametrize("curve", ["flat", pytest.param("decreasing", marks=pytest.mark.slow)])
def test_flat_and_decreasing_fall_back(curve, flat_run):
    if curve == "flat":
        res, warns = flat_run
    else:
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            res = run_curve(curve, 0.05, 0)
        warns = [w for w in rec if issubclass(w.category, UserWarning)]
    assert res.switch_step == 1500, f"DESIGN.md §7.5: {curve} falls back at W = 1500, got {res.switch_step}"
    assert res.reason == "max_warmup"
    assert_rel(res.switch_lr, 10 ** (-5 / 1500), 1e-9, "DESIGN.md §7.5: fallback eta_sw = lr_W")
    assert abs(res.switch_lr - 0.99235) < 5e-6, "DESIGN.md §7.5: eta_sw = 0.99235"
    fallback = [w for w in warns if "warmup cap" in str(w.message)]
    assert len(fallback) == 1 and "0.99235" in str(fallback[0].message), "DESIGN.md §7.5: one UserWarning naming the LR"


def _switched(**kw):
    """A run whose test fires at step 150 (rising loss), then the rest of T = 3000 with constant loss."""
    _, s = make_sched(**kw)
    lrs = drive(s, [2.0 + u / 1000 for u in range(1, 151)] + [2.0] * 2850)
    assert s.switch_step == 150
    return s, lrs


def test_cosine_decay_closed_form():
    s, lrs = _switched()
    t, eta, total = 150, s.switch_lr, 3000
    assert lrs[-1] == 0.0 or abs(lrs[-1]) < 1e-300, "DESIGN.md §7.6: lr_T == 0"
    assert s.get_last_lr()[0] == 0.0
    for u in range(151, 3001, 37):
        assert_rel(
            lrs[u - 1], eta * 0.5 * (1 + math.cos(math.pi * (u - t) / (total - t))), 1e-12, f"DESIGN.md §7.6 u={u}"
        )


@pytest.mark.parametrize("f", [1.0, 0.9])
def test_constant_then_cosine(f):
    s, lrs = _switched(immediate_cooldown=False, decay_phase_factor=f)
    eta = s.switch_lr
    for u in range(151, 2401):
        m = 1 + (u - 1 - 150) // 50
        assert_rel(lrs[u - 1], eta * f**m, 1e-12, f"DESIGN.md §7.6: middle phase eta_sw*{f}^m at u={u}")
    eta_c = lrs[2399]
    for u in range(2401, 3001, 29):
        assert_rel(
            lrs[u - 1], eta_c * 0.5 * (1 + math.cos(math.pi * (u - 2400) / 600)), 1e-12, "DESIGN.md §7.6: cooldown"
        )
    assert lrs[-1] == 0.0, "DESIGN.md §7.6: lr_T == 0"


def test_half_cosine_and_past_end():
    s, lrs = _switched(cooldown_type="half_cosine")
    eta0 = s.switch_lr
    first = eta0 * (0.5 + 0.5 * math.cos(0.5 * math.pi * (1 + 1 / (3000 - 150))))
    assert_rel(lrs[150], first, 1e-12, "DESIGN.md §7.6: first half-cosine LR")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        extra = drive(s, [2.0] * 5)
    assert extra[1:] == [0.0] * 4 or all(v < 1e-15 for v in extra[1:]), "DESIGN.md §7.6: steps past T keep lr_T"
    assert len([w for w in rec if "past total_steps" in str(w.message)]) == 1, "DESIGN.md §7.6: warn once past T"


def test_closed_form_helpers():
    assert warmup_lr(1, 1e-5, 1.0, 1500) == 1e-5
    assert cooldown_lr(3000, 150, 0.01, 3000) == 0.0
    assert baseline_lr(1, 0.1, 0.0, 960) == 0.1
    assert baseline_lr(48, 0.1, 0.05, 960) == 0.1
    f = BaselineFactor(0.05, 960)
    assert f(0) == 1 / 48 and f(959) < 1e-4


@pytest.mark.slow
def test_argmin_fallback_on_decreasing():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = run_curve("decreasing", 0.05, 0, fallback_lr="argmin")
    assert res.switch_step == 1500 and res.reason == "max_warmup"
    assert 0.2 * 0.99235 <= res.switch_lr <= 0.99235, (
        f"DESIGN.md §7.5: argmin eta_sw in [0.2, 1]*0.99235, got {res.switch_lr}"
    )


def test_zero_warmup_decays_from_max_at_once():
    _, s = make_sched(max_warmup_fraction=0.0)
    assert s.phase == "final" and s.switch_step == 0 and s.switch_lr == 1.0, (
        "DESIGN.md §3.1: f_w = 0 decays from eta_max"
    )
    assert_rel(s.get_last_lr()[0], 0.5 * (1 + math.cos(math.pi / 3000)), 1e-12, "DESIGN.md §3.1: lr_1 with f_w = 0")


def test_no_step_order_warning_without_optimizer_step():
    _, s = make_sched()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for _ in range(5):
            s.step(2.0)  # as after a GradScaler-skipped optimizer.step()
    assert not rec, f"DESIGN.md §9: AutoWU must not warn about step order, got {[str(w.message) for w in rec]}"
