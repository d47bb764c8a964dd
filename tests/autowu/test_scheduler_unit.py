"""The scheduler's own logic (DESIGN.md §3.1, §3.3-§3.5) with a stand-in for the GP test: exact values, tiny runs.

Every run here has S = 4 steps per epoch and E = 10 epochs (T = 40, W = 20: tests at steps 4, 8, 12, 16, the cap at 20)
and a `FakeGP` test object whose verdict and minimiser are exact functions of the history it receives, so each
expected LR, switch step and log entry is computed by hand from the closed forms of DESIGN.md §3.1. The GP test itself
is checked in test_gp.py and test_decision.py; AutoWU with the real test in the loop in test_schedule.py,
test_contract.py and test_curves.py.
"""

from __future__ import annotations

import io
import math
import re
import warnings

import numpy as np
import pytest
import torch

import autowu.scheduler as scheduler_module
from autowu import REASONS, AutoWU
from autowu.gp_test import TestOutcome as Outcome

S, E, T, W = 4, 10, 40, 20
MIN, MAX = 1e-5, 1.0


def ramp(u, w=W):
    """lr_u of the exponential warmup (DESIGN.md §3.1), written out independently of autowu.schedules."""
    return MIN * (MAX / MIN) ** ((u - 1) / w)


def cosine(u, t0, eta0, total=T):
    return eta0 * 0.5 * (1.0 + math.cos(math.pi * (min(u, total) - t0) / (total - t0)))


class FakeGP:
    """A test object for `test_factory`: p, z* and the verdict follow from the valid history alone.

    z* = x_j = j/n at the smallest valid value (index j of the full history); the verdict is positive when that
    minimum lies at least `lag` valid points before the last one. `noise` reports the number of calls, a piece of
    state that a resume must carry (state_dict / load_state_dict). `fail` raises instead, for error paths.
    """

    def __init__(self, cfg, lag=4, fail=None):
        self.cfg, self.lag, self.fail, self.calls, self.seen = cfg, lag, fail, 0, []

    def __call__(self, y, valid):
        if self.fail is not None:
            raise self.fail
        self.calls += 1
        self.seen.append((y.clone(), valid.clone()))
        n, nv = int(y.numel()), int(valid.sum())
        if nv < 3:
            return Outcome((), (), 0, False, 0.0, 1.0, float(self.calls), n, nv, 0, 0.0)
        idx = torch.nonzero(valid)[:, 0]
        j = int(torch.argmin(y[valid]))
        verdict = j <= nv - 1 - self.lag
        k = self.cfg.n_preds
        p = 0.99 if verdict else 0.5
        z = float(idx[j]) / n
        c = float(y[valid].mean())
        return Outcome((p,) * k, (z,) * k, k if verdict else 0, verdict, c, 1.0, float(self.calls), n, nv, 0, 0.0)

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, st):
        self.calls = int(st["calls"])


class Scripted:
    """A test object returning the given outcomes in turn."""

    def __init__(self, outcomes):
        self.outcomes, self.calls = list(outcomes), 0

    def __call__(self, y, valid):
        self.calls += 1
        return self.outcomes[self.calls - 1]

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, st):
        self.calls = st["calls"]


def outcome(verdict, z, n=4, nv=4):
    return Outcome((0.99 if verdict else 0.5,) * 5, (z,) * 5, 5 * verdict, verdict, 0.0, 1.0, 1.0, n, nv, 0, 0.0)


def build(s=S, e=E, opt=None, test=None, **kw):
    """(scheduler, its test object); a FakeGP unless `test` is a factory."""
    if opt is None:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    made = {}

    def factory(cfg):
        made["gp"] = test(cfg) if test is not None else FakeGP(cfg)
        return made["gp"]

    sched = AutoWU(opt, s, e, test_factory=factory, **kw)
    return sched, made["gp"]


def drive(sched, losses):
    """Step with each loss; the LR used by every update (group 0)."""
    lrs = []
    for loss in losses:
        lrs.append(float(sched.optimizer.param_groups[0]["lr"]))
        sched.step(loss)
    return lrs


def falling(n, start=10.0):
    """A loss that falls at every step: the minimum is always the last point, every verdict negative."""
    return [start - 0.1 * u for u in range(1, n + 1)]


def vee(n, bottom=2):
    """1 + |u - bottom| / 64: the minimum at update `bottom`, rising too slowly to count as divergence."""
    return [1.0 + abs(u - bottom) / 64 for u in range(1, n + 1)]


def quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def same(a, b, path="state"):
    """Deep equality of two state_dicts: tensors equal in dtype and values, floats equal or both NaN."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{path}: keys {list(a)} vs {list(b)}"
        for k in a:
            same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{path}: length"
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]")
    elif torch.is_tensor(a):
        assert a.dtype == b.dtype and torch.equal(a, b), f"{path}: {a} vs {b}"
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), path
    else:
        assert a == b, f"{path}: {a!r} vs {b!r}"


# ---- construction ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "4", None])
def test_lengths_must_be_ints_of_at_least_one(bad):
    with pytest.raises(ValueError, match=re.escape(f"steps_per_epoch must be an int >= 1; got {bad!r}")):
        build(s=bad)
    with pytest.raises(ValueError, match=re.escape(f"total_epochs must be an int >= 1; got {bad!r}")):
        build(e=bad)


def test_lengths_accept_numpy_ints_and_one():
    sched, _ = build(s=np.int64(4), e=np.int32(10))
    assert (sched.steps_per_epoch, sched.total_epochs, sched.total_steps, sched.warmup) == (4, 10, 40, 20)
    assert type(sched.steps_per_epoch) is int and type(sched.total_steps) is int
    sched, _ = build(s=1, e=1)
    assert sched.total_steps == 1 and sched.warmup == 0


@pytest.mark.parametrize(
    ("fw", "s", "e", "warmup", "epochs"),
    [(0.5, 4, 10, 20, 5), (0.29, 1, 100, 29, 29), (0.05, 4, 10, 2, 1), (0.15, 4, 10, 6, 1), (1.0, 4, 10, 40, 10)],
)
def test_warmup_cap_and_staircase_epochs(fw, s, e, warmup, epochs):
    """W = floor(f_w T) and the staircase's floor(f_w E) epochs (at least 1); 0.29 * 100 = 28.999999999999996 -> 29."""
    sched, _ = build(s=s, e=e, max_warmup_fraction=fw, warmup_unit="epoch")
    assert sched.warmup == warmup
    assert sched.lr_at(s) == MIN and sched.lr_at(s + 1) == MIN * (MAX / MIN) ** (1 / epochs)


def test_test_interval_defaults_to_steps_per_epoch():
    assert build()[0].test_interval == 4
    assert build(test_interval=3)[0].test_interval == 3


def test_fresh_state():
    """Every field of a fresh scheduler's state_dict (DESIGN.md §3.5), LRs of every group at eta_min."""
    p1, p2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p1]}, {"params": [p2]}], lr=0.3)
    sched, gp = build(opt=opt)
    assert [g["lr"] for g in opt.param_groups] == [MIN, MIN]
    assert [g["initial_lr"] for g in opt.param_groups] == [0.3] * 2
    assert sched.get_last_lr() == [MIN, MIN] and sched.get_lr() == [MIN, MIN]
    assert sched.last_epoch == 0 and sched._step_count == 1
    assert (sched.phase, sched.switch_step, sched.switch_lr, sched.peak_lr, sched.switch_reason) == (
        "warmup",
        None,
        None,
        None,
        None,
    )
    assert sched.test_log == [] and sched.history.dtype == torch.float64 and sched.history.numel() == 0
    st = sched.state_dict()
    assert st.pop("config")["num_groups"] == 2
    same(
        st,
        {
            "last_epoch": 0,
            "step_count": 1,
            "last_lr": [MIN, MIN],
            "cur_lr": MIN,
            "phase": "warmup",
            "anchors": {
                "t_sw": None,
                "eta_sw": None,
                "t_c": None,
                "eta_c": None,
                "t_0": None,
                "eta_0": None,
                "reason": None,
                "peak": None,
            },
            "history": torch.zeros(0, dtype=torch.float64),
            "pending": torch.zeros(0, dtype=torch.float64),
            "pending_dtype": "",
            "ref_median": None,
            "verdicts": [],
            "test_log": [],
            "last_good_lr": None,
            "last_estimate": None,
            "warned_past_end": False,
            "plateau": {"best": math.inf, "bad_epochs": 0, "reductions": 0},
            "ratios": [1.0, 1.0],
            "gp": {"calls": 0},
        },
    )
    assert build(immediate_cooldown=False)[0].state_dict()["anchors"]["t_c"] == 32, "t_c = ceil(0.8 T)"
    assert build(immediate_cooldown=False, cooldown_fraction=0.25)[0].state_dict()["anchors"]["t_c"] == 30


def test_group_lrs_warning_names_the_groups():
    p1, p2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p1], "lr": 0.1}, {"params": [p2], "lr": 0.01}])
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        build(opt=opt)
    assert [str(w.message) for w in rec] == [
        "AutoWU gives all 2 param groups one LR (initial LRs [0.1, 0.01] differ); "
        "pass preserve_group_ratios=True to keep their ratios"
    ]
    assert rec[0].category is UserWarning
    opt = torch.optim.SGD([{"params": [p1], "lr": 0.1}, {"params": [p2], "lr": 0.1}])
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        sched, _ = build(opt=opt)
    assert not rec and sched.get_last_lr() == [MIN, MIN]


def test_preserve_group_ratios_reads_initial_lr():
    p1, p2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p1], "lr": 0.5}, {"params": [p2], "lr": 0.5}])
    opt.param_groups[0]["initial_lr"], opt.param_groups[1]["initial_lr"] = 0.2, 0.05  # an earlier scheduler's
    sched, _ = build(opt=opt, preserve_group_ratios=True)
    assert sched.state_dict()["ratios"] == [1.0, 0.25]
    drive(sched, falling(3))
    assert sched.get_last_lr() == [ramp(4), ramp(4) * 0.25] == sched.get_lr()
    assert [g["lr"] for g in opt.param_groups] == [ramp(4), ramp(4) * 0.25]


@pytest.mark.parametrize("lr0", [0.0, -0.1])
def test_preserve_group_ratios_needs_a_positive_first_lr(lr0):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    opt.param_groups[0]["lr"] = lr0
    with pytest.raises(ValueError, match=re.escape(f"preserve_group_ratios needs a positive lr in group 0; got {lr0}")):
        build(opt=opt, preserve_group_ratios=True)


def test_zero_warmup_decays_from_max_lr():
    sched, _ = build(max_warmup_fraction=0.0)
    assert (sched.phase, sched.switch_step, sched.switch_lr, sched.peak_lr, sched.switch_reason) == (
        "final",
        0,
        MAX,
        MAX,
        "max_warmup",
    )
    assert sched.get_last_lr() == [cosine(1, 0, MAX)]
    sched, _ = build(max_warmup_fraction=0.0, immediate_cooldown=False, decay_phase_factor=0.5)
    assert sched.phase == "decay" and sched.get_last_lr() == [0.5]
    lrs = drive(sched, [1.0] * 40)
    assert lrs[:8] == [0.5] * 4 + [0.25] * 4


# ---- the ramp and the test schedule --------------------------------------------------------------------------------
def test_exponential_ramp_is_the_closed_form():
    sched, _ = build()
    lrs = drive(sched, falling(19))
    assert lrs == [ramp(u) for u in range(1, 20)]
    assert sched.get_last_lr() == [ramp(20)] and sched.last_epoch == 19 and sched._step_count == 20
    assert [sched.lr_at(u) for u in (1, 10, 20)] == [ramp(1), ramp(10), ramp(20)]


def test_linear_and_epoch_ramps():
    lrs = drive(build(warmup_type="linear")[0], falling(19))
    assert lrs == [MIN + (MAX - MIN) * (u - 1) / 20 for u in range(1, 20)]
    lrs = drive(build(warmup_unit="epoch")[0], falling(19))
    assert lrs == [MIN * (MAX / MIN) ** (((u - 1) // 4) / 5) for u in range(1, 20)]
    lrs = drive(build(warmup_unit="epoch", max_warmup_fraction=0.3)[0], falling(11))  # floor(0.3 * 10) = 3 epochs
    assert lrs == [MIN * (MAX / MIN) ** (((u - 1) // 4) / 3) for u in range(1, 12)]


def test_tests_log_and_history_on_a_falling_loss():
    sched, gp = build()
    losses = falling(19)
    drive(sched, losses)
    assert sched.history.tolist() == losses[:16] and sched.history.dtype == torch.float64
    sched.history.fill_(0.0)
    assert sched.history.tolist() == losses[:16], "history is a copy"
    assert gp.calls == 4 and [int(y.numel()) for y, _ in gp.seen] == [4, 8, 12, 16]
    log = sched.test_log
    assert [d["step"] for d in log] == [4, 8, 12, 16]
    k = 8
    est = MIN * (ramp(k) / MIN) ** ((k - 1) / k)
    expected = {"step": k, "n": k, "n_valid": k}
    expected.update({f"p_{r}": 0.5 for r in range(1, 6)})
    expected.update(
        votes=0,
        verdict=False,
        eta_estimate=pytest.approx(est, rel=1e-12),
        lr=ramp(k),
        c=pytest.approx(float(np.mean(losses[:k])), rel=1e-12),
        outputscale=1.0,
        noise=2.0,
        seconds=0.0,
        bad="",
    )
    assert log[1] == expected and list(log[1]) == list(expected)
    log[1]["step"] = -1
    assert sched.test_log[1]["step"] == 8, "test_log returns copies"
    st = sched.state_dict()
    assert st["verdicts"] == [False, False, False] and st["last_good_lr"] == ramp(16)
    assert st["last_estimate"] == pytest.approx(MIN * (ramp(16) / MIN) ** (15 / 16), rel=1e-12)
    assert st["ref_median"] == float(torch.tensor(losses[:4], dtype=torch.float64).median())
    assert st["pending"].tolist() == losses[16:19] and st["pending_dtype"] == "float64"
    sched, _ = build()
    drive(sched, falling(8))
    st = sched.state_dict()
    assert st["pending"].numel() == 0 and st["pending_dtype"] == "", "right after a test"


def test_missing_probabilities_are_logged_as_nan():
    sched, _ = build(on_nonfinite="ignore")
    drive(sched, [math.nan] * 3 + [1.0])
    (entry,) = sched.test_log
    assert all(math.isnan(entry[f"p_{r}"]) for r in range(1, 6)) and list(entry)[3:8] == [f"p_{r}" for r in range(1, 6)]
    assert math.isnan(entry["eta_estimate"]) and entry["n_valid"] == 1 and entry["verdict"] is False


def test_switch_by_the_test_and_the_cosine_after_it():
    """vee(2): negative at 4, positive at 8, 12, 16: the third positive test in a row switches at 16."""
    sched, gp = build()
    lrs = drive(sched, vee(40))
    z = 1 / 16
    eta = MIN * (ramp(16) / MIN) ** z
    assert [d["verdict"] for d in sched.test_log] == [False, True, True, True]
    assert (sched.switch_step, sched.switch_reason, sched.phase) == (16, "test", "final")
    assert sched.switch_lr == pytest.approx(eta, rel=1e-12) and sched.peak_lr == ramp(16)
    assert lrs[:16] == [ramp(u) for u in range(1, 17)] and sched.lr_at(16) == ramp(16)
    assert lrs[16:] == pytest.approx([cosine(u, 16, sched.switch_lr) for u in range(17, 41)], rel=1e-12, abs=0)
    assert lrs[17] == cosine(18, 16, sched.switch_lr)
    assert sched.get_last_lr() == [0.0] and gp.calls == 4, "no test after the switch"
    anchors = sched.state_dict()["anchors"]
    assert anchors == {
        "t_sw": 16,
        "eta_sw": sched.switch_lr,
        "t_c": None,
        "eta_c": None,
        "t_0": 16,
        "eta_0": sched.switch_lr,
        "reason": "test",
        "peak": ramp(16),
    }


def test_half_cosine_after_the_switch():
    sched, _ = build(cooldown_type="half_cosine")
    lrs = drive(sched, vee(40))
    eta = sched.switch_lr
    expected = [eta * (0.5 + 0.5 * math.cos(0.5 * math.pi * (1 + (u - 16) / 24))) for u in range(17, 41)]
    assert lrs[16:] == pytest.approx(expected, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize(("patience", "switch"), [(1, 8), (2, 12), (3, 16), (4, 20)])
def test_patience(patience, switch):
    sched, _ = quiet(build, patience=patience)
    quiet(drive, sched, vee(24))
    assert sched.switch_step == switch
    assert sched.switch_reason == ("test" if switch < 20 else "max_warmup")
    assert sched.state_dict()["verdicts"] == [False, True, True, True][-patience:][: min(patience, switch // 4)]


def test_verdicts_must_be_in_a_row():
    script = [outcome(v, 0.5) for v in (True, True, False, True, True)]
    sched, _ = quiet(build, test=lambda cfg: Scripted(script))
    quiet(drive, sched, [1.0] * 20)
    assert sched.switch_reason == "max_warmup" and sched.switch_step == 20


def test_estimate_skips_non_finite_minimisers():
    out = Outcome((0.99,) * 5, (0.5, math.nan, 0.25, 0.5, math.nan), 5, True, 0.0, 1.0, 1.0, 4, 4, 0, 0.0)
    sched, _ = build(patience=1, test=lambda cfg: Scripted([out]))
    drive(sched, [1.0] * 4)
    expected = (2 * MIN * (ramp(4) / MIN) ** 0.5 + MIN * (ramp(4) / MIN) ** 0.25) / 3
    assert sched.switch_step == 4 and sched.switch_lr == pytest.approx(expected, rel=1e-12)
    lin, _ = build(patience=1, warmup_type="linear", test=lambda cfg: Scripted([out]))
    drive(lin, [1.0] * 4)
    now = MIN + (MAX - MIN) * 3 / 20
    assert lin.switch_lr == pytest.approx((2 * (MIN + (now - MIN) * 0.5) + MIN + (now - MIN) * 0.25) / 3, rel=1e-12)


def test_constant_then_cosine():
    sched, _ = build(immediate_cooldown=False, decay_phase_factor=0.5)
    lrs = drive(sched, vee(40))
    eta = sched.switch_lr
    assert sched.switch_step == 16 and eta == pytest.approx(MIN * (ramp(16) / MIN) ** (1 / 16), rel=1e-12)
    assert lrs[16:32] == [eta * 0.5 ** (1 + (u - 17) // 4) for u in range(17, 33)]
    eta_c = lrs[31]
    assert lrs[32:] == pytest.approx([cosine(u, 32, eta_c) for u in range(33, 41)], rel=1e-12, abs=1e-300)
    a = sched.state_dict()["anchors"]
    assert (a["t_c"], a["eta_c"], a["t_0"], a["eta_0"], a["t_sw"], a["reason"]) == (32, eta_c, 32, eta_c, 16, "test")
    assert sched.phase == "final" and sched.lr_at(32) == eta_c and sched.lr_at(16) == ramp(16)


def test_middle_phase_until_the_cooldown():
    sched, _ = build(immediate_cooldown=False)
    drive(sched, vee(31))
    assert sched.phase == "decay" and sched.state_dict()["anchors"]["t_0"] is None
    sched.step(1.0)
    assert sched.phase == "final" and sched.state_dict()["anchors"]["t_0"] == 32


def test_cooldown_time_inside_the_warmup():
    """c = 0.6: t_c = 16 <= W = 20, so the cosine starts at 16 from lr_16 before the test at 16 runs."""
    sched, gp = build(immediate_cooldown=False, cooldown_fraction=0.6)
    lrs = drive(sched, falling(40))
    assert (sched.switch_step, sched.switch_reason, sched.phase) == (16, "cooldown_time", "final")
    assert sched.switch_lr == ramp(16) == sched.peak_lr and gp.calls == 3
    a = sched.state_dict()["anchors"]
    assert (a["t_c"], a["eta_c"], a["t_0"], a["eta_0"]) == (16, ramp(16), 16, ramp(16))
    assert lrs[16:] == pytest.approx([cosine(u, 16, ramp(16)) for u in range(17, 41)], rel=1e-12, abs=1e-300)


@pytest.mark.parametrize(("fallback", "z"), [("ramp", 0.5), ("argmin", 0.5), ("argmin", math.nan)])
def test_fallback_at_the_cap(fallback, z):
    script = [outcome(False, z)] * 4
    sched, _ = build(fallback_lr=fallback, test=lambda cfg: Scripted(script))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        drive(sched, [1.0] * 20)
    est = MIN * (ramp(16) / MIN) ** z
    eta = est if fallback == "argmin" and z == z else ramp(20)
    assert (sched.switch_step, sched.switch_reason, sched.peak_lr) == (20, "max_warmup", ramp(20))
    assert sched.switch_lr == pytest.approx(eta, rel=1e-12)
    assert [str(w.message) for w in rec] == [
        f"AutoWU: no switch by the warmup cap W=20 (step 20); decaying from lr={eta:.6g} ({fallback})"
    ]
    assert rec[0].category is UserWarning


def test_steps_past_the_end_keep_the_last_lr_and_warn_once():
    sched, _ = quiet(build)
    quiet(drive, sched, vee(40))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        lrs = drive(sched, [1.0] * 3)
    assert lrs == [0.0] * 3 and sched.get_last_lr() == [0.0]
    assert [str(w.message) for w in rec] == ["AutoWU stepped past total_steps=40; keeping lr_T = 0"]
    assert rec[0].category is UserWarning
    sched, _ = quiet(build, immediate_cooldown=False, cooldown_fraction=0.0)  # t_c = T: lr_T is the middle LR
    quiet(drive, sched, vee(40))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        drive(sched, [1.0])
    assert [str(w.message) for w in rec] == [
        f"AutoWU stepped past total_steps=40; keeping lr_T = {sched.lr_at(40):.6g}"
    ]
    assert sched.lr_at(40) > 0


# ---- losses -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("loss", "error", "message"),
    [
        (True, TypeError, "AutoWU.step expects a real scalar loss; got a bool"),
        (np.bool_(False), TypeError, "AutoWU.step expects a real scalar loss; got a bool"),
        (torch.tensor(True), TypeError, "AutoWU.step expects a real scalar loss; got a tensor of dtype torch.bool"),
        (
            torch.tensor(1 + 2j),
            TypeError,
            "AutoWU.step expects a real scalar loss; got a tensor of dtype torch.complex64",
        ),
        (
            torch.zeros(2),
            ValueError,
            "AutoWU.step expects a scalar loss (0-d or 1-element tensor); got shape (2,)",
        ),
        (torch.zeros(0), ValueError, "AutoWU.step expects a scalar loss (0-d or 1-element tensor); got shape (0,)"),
        (np.array(True), TypeError, "AutoWU.step expects a real scalar loss; got an array of dtype bool"),
        (np.array(1 + 1j), TypeError, "AutoWU.step expects a real scalar loss; got an array of dtype complex128"),
        (np.zeros(2), ValueError, "AutoWU.step expects a scalar loss; got shape (2,)"),
        ("1.0", TypeError, "AutoWU.step expects a real scalar loss (float or tensor); got str"),
        ([1.0], TypeError, "AutoWU.step expects a real scalar loss (float or tensor); got list"),
        (1 + 2j, TypeError, "AutoWU.step expects a real scalar loss (float or tensor); got complex"),
    ],
)
def test_bad_losses_are_rejected_with_a_message(loss, error, message):
    sched, _ = build()
    sched.step(1.0)
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        sched.step(loss)
    assert sched.last_epoch == 1 and sched.state_dict()["pending"].tolist() == [1.0]


def test_missing_loss_and_epoch_argument():
    sched, _ = build()
    with pytest.raises(TypeError, match="^AutoWU.step\\(loss\\) needs the loss of the update just taken$"):
        sched.step()
    with pytest.raises(TypeError, match="^AutoWU.step takes the loss only; epoch is not supported$"):
        sched.step(1.0, 3)
    assert sched.last_epoch == 0


@pytest.mark.parametrize(
    ("make", "dtype"),
    [
        (lambda v: v, "float64"),
        (lambda v: int(round(v)), "float64"),
        (np.float32, "float64"),
        (np.int64, "float64"),
        (lambda v: np.array([v]), "float64"),
        (lambda v: np.array([[v]], dtype=np.float32), "float64"),
        (lambda v: np.array(int(v), dtype=np.uint8), "float64"),
        (lambda v: torch.tensor(v, dtype=torch.float64), "float64"),
        (lambda v: torch.tensor([v], dtype=torch.float32), "float32"),
        (lambda v: torch.tensor([[v]], dtype=torch.float16), "float32"),
        (lambda v: torch.tensor(v, dtype=torch.bfloat16), "float32"),
        (lambda v: torch.tensor(int(v)), "float32"),
    ],
)
def test_accepted_losses_enter_the_history(make, dtype):
    """Values 1, 2, 3, ... are exact in every dtype: the history holds them, the pending buffer its dtype."""
    sched, gp = build()
    for u in range(1, 7):
        sched.step(make(float(u)))
    assert sched.history.tolist() == [1.0, 2.0, 3.0, 4.0] and gp.seen[0][0].dtype == torch.float64
    st = sched.state_dict()
    assert st["pending"].tolist() == [5.0, 6.0] and st["pending"].dtype == torch.float64
    assert st["pending_dtype"] == dtype


def test_loss_tensor_keeps_its_graph_untouched():
    w = torch.tensor(2.0, requires_grad=True)
    sched, _ = build()
    for _ in range(4):
        sched.step(w * 1.5)
    assert sched.history.tolist() == [3.0] * 4 and not sched.history.requires_grad


def test_buffer_device_follows_the_device_argument():
    sched, _ = build(device="meta")
    sched.step(1.0)
    assert sched._buf.device.type == "meta" and sched._buf.numel() == 4
    sched, _ = build(test_interval=6)
    sched.step(torch.tensor(1.0))
    assert sched._buf.device.type == "cpu" and sched._buf.numel() == 6


def test_test_interval_longer_than_an_epoch():
    sched, gp = quiet(build, test_interval=6)
    quiet(drive, sched, falling(20))
    assert [d["step"] for d in sched.test_log] == [6, 12, 18] and sched.history.tolist() == falling(18)


# ---- non-finite and divergent losses ---------------------------------------------------------------------------------
def test_nan_switches_at_the_test_from_the_last_good_lr():
    """NaN at step 10: the test at 12 switches (reason nonfinite) from min(estimate, lr_8) = lr_8."""
    losses = falling(12)
    losses[9] = math.nan
    sched, gp = build()
    drive(sched, losses)
    assert (sched.switch_step, sched.switch_reason, sched.phase) == (12, "nonfinite", "final")
    assert sched.switch_lr == ramp(8) and sched.peak_lr == ramp(12)
    y, valid = gp.seen[-1]
    assert valid.tolist() == [True] * 9 + [False] + [True] * 2
    assert sched.test_log[-1]["bad"] == "nonfinite" and sched.test_log[-1]["n_valid"] == 11
    assert sched.state_dict()["verdicts"] == [False, False], "a bad interval gives no verdict"


def test_nan_switch_keeps_a_lower_estimate():
    """The minimum at step 2, so the estimate (z* = 1/16) lies far below lr_12, the last good interval's LR."""
    losses = vee(16)
    losses[13] = math.inf
    sched, _ = build(patience=9)
    drive(sched, losses)
    assert (sched.switch_step, sched.switch_reason) == (16, "nonfinite")
    assert sched.switch_lr == pytest.approx(MIN * (ramp(16) / MIN) ** (1 / 16), rel=1e-12)
    assert sched.state_dict()["last_good_lr"] == ramp(12)


def test_nan_in_the_first_interval_switches_from_min_lr():
    sched, _ = build()
    drive(sched, [1.0, math.nan, 1.0, 1.0])
    assert (sched.switch_step, sched.switch_reason, sched.switch_lr) == (4, "nonfinite", MIN)
    assert sched.state_dict()["ref_median"] == 1.0


@pytest.mark.parametrize(("n_valid", "z", "expected"), [(2, 0.25, MIN), (3, math.nan, MIN), (3, 0.25, "estimate")])
def test_bad_interval_eta_needs_three_valid_points_and_a_finite_estimate(n_valid, z, expected):
    """A good test at 4, then a bad interval at 8: eta_sw = min(estimate, lr_4) with an estimate below lr_4."""
    out = Outcome((0.5,) * 5, (z,) * 5, 0, False, 0.0, 1.0, 1.0, 8, n_valid, 0, 0.0)
    sched, _ = build(test=lambda cfg: Scripted([outcome(False, 0.5), out]))
    drive(sched, [1.0] * 4 + [1.0, 1.0, math.nan, 1.0])
    eta = MIN * (ramp(8) / MIN) ** z if expected == "estimate" else MIN
    assert eta < ramp(4)
    assert sched.switch_step == 8 and sched.switch_lr == pytest.approx(eta, rel=1e-12)


def test_first_bad_interval_uses_min_lr_as_the_last_good_lr():
    out = Outcome((0.5,) * 5, (1.0,) * 5, 0, False, 0.0, 1.0, 1.0, 4, 3, 0, 0.0)
    sched, _ = build(test=lambda cfg: Scripted([out]))
    drive(sched, [1.0, 1.0, math.nan, 1.0])
    assert sched.switch_lr == MIN, "min(estimate lr_4, eta_min) with no good interval before"


DIVERGE = [2.0, 2.1, 1.9, 2.2]  # torch's median (the lower middle value) is 2.0: the threshold is 4.0


@pytest.mark.parametrize("factor", [2.0, 3.0])
def test_divergence_switches_at_the_first_value_above_the_threshold(factor):
    second = [3.0, 4.0 * factor / 2, 6.0 * factor / 2, 7.0 * factor / 2]  # median 2 factor (= threshold): not bad
    third = [2.0 * factor, 5.0 * factor / 2, 6.0 * factor / 2, 7.0 * factor / 2]  # median above; first above at 10
    sched, gp = build(divergence_factor=factor, patience=9)
    drive(sched, DIVERGE + second + third)
    assert [d["bad"] for d in sched.test_log] == ["", "", "divergence"]
    assert (sched.switch_step, sched.switch_reason) == (12, "divergence")
    thr = factor * 2.0
    assert gp.seen[-1][1].tolist() == [v <= thr for v in DIVERGE + second + third], "values above it are not valid"
    assert gp.seen[1][1].tolist() == [True] * 6 + [False] * 2, "a value equal to the threshold is valid"
    est = MIN * (ramp(12) / MIN) ** (2 / 12)  # the smallest valid value, 1.9, is at index 2 of 12
    assert est < ramp(8) and sched.switch_lr == pytest.approx(est, rel=1e-12), "min(estimate, lr_8)"


def test_divergence_off_and_in_other_modes():
    losses = DIVERGE + [2.0, 2.0, 2.0, 9.0] + [4.0, 9.0, 9.0, 9.0]  # 4.0 is the threshold itself
    sched, gp = build(divergence_factor=None, patience=9)
    quiet(drive, sched, losses)
    assert sched.switch_reason != "divergence" and all(v.all() for _, v in gp.seen)
    sched, gp = build(on_nonfinite="raise", patience=9)
    drive(sched, losses[:8])
    assert gp.seen[-1][1].all(), "only the 'switch' mode masks values above the threshold"
    with pytest.raises(FloatingPointError, match="^AutoWU: divergent loss at step 10$"):
        drive(sched, losses[8:])
    sched, gp = build(on_nonfinite="ignore", patience=9)
    quiet(drive, sched, losses + [math.nan] * 4)
    assert sched.switch_reason != "divergence" and sched.state_dict()["ref_median"] is None
    assert gp.seen[-1][1].tolist() == [True] * 12 + [False] * 4


def test_raise_names_the_first_bad_step_nonfinite_first():
    sched, _ = build(on_nonfinite="raise")
    with pytest.raises(FloatingPointError, match="^AutoWU: non-finite loss at step 7$"):
        drive(sched, DIVERGE + [9.0, 9.0, math.nan, 9.0])
    sched, _ = build(on_nonfinite="raise")
    with pytest.raises(FloatingPointError, match="^AutoWU: non-finite loss at step 1$"):
        drive(sched, [math.nan, 1.0, 1.0, 1.0])


def test_ignore_drops_non_finite_values():
    sched, gp = build(on_nonfinite="ignore")
    losses = falling(8)
    losses[1] = math.nan
    drive(sched, losses)
    assert sched.switch_step is None and gp.seen[-1][1].tolist() == [True, False] + [True] * 6
    assert sched.test_log[0]["n_valid"] == 3 and sched.test_log[0]["bad"] == ""


# ---- after the switch --------------------------------------------------------------------------------------------
def _raising_after_switch(nan_at, **kw):
    sched, _ = build(on_nonfinite="raise", **kw)
    losses = vee(40)
    losses[nan_at - 1] = math.nan
    with pytest.raises(FloatingPointError, match=f"^AutoWU: non-finite loss at step {nan_at}$"):
        drive(sched, losses)
    return sched


def test_raise_mode_checks_every_interval_after_the_switch():
    sched = _raising_after_switch(22)
    assert sched.switch_step == 16 and sched.last_epoch == 24, "checked at 20 and 24: raised at 24"
    sched = _raising_after_switch(20)
    assert sched.last_epoch == 20


def test_raise_mode_cadence_restarts_at_the_cooldown():
    """test_interval 3: switch at 12; checks at 15 ... 30, the two values 31-32 are dropped at t_c = 32, next at 35."""
    sched = _raising_after_switch(33, immediate_cooldown=False, test_interval=3)
    assert sched.switch_step == 12 and sched.last_epoch == 35


def test_losses_after_the_switch_are_ignored_by_default():
    sched, gp = build()
    losses = vee(40)
    losses[30] = math.nan
    drive(sched, losses)
    assert sched.switch_step == 16 and gp.calls == 4 and sched.state_dict()["pending"].numel() == 0


def _plateau_run(epoch_means, factor=0.5, **kw):
    """Switch at 16 (vee), then one epoch per mean (values mean +- 0.25), constant-then-cosine with the plateau."""
    sched, _ = build(e=40, immediate_cooldown=False, decay_phase_stat="loss", decay_phase_factor=factor, **kw)
    for loss in vee(16):
        if sched.phase == "warmup":
            sched.step(loss)
    assert sched.phase == "decay" and sched.switch_step == (16 if "test_interval" not in kw else 10)
    eta, out = sched.switch_lr, []
    for m in epoch_means:
        drive(sched, [m + 0.25, m - 0.25, m - 0.25, m + 0.25])
        out.append(round(math.log(sched.get_last_lr()[0] / eta) / math.log(factor)))
    return sched, out


def test_plateau_reduces_after_six_bad_epochs():
    sched, red = _plateau_run([1.0] + [1.0] * 6 + [0.5] + [0.5] * 7)
    assert red == [0] * 6 + [1] * 7 + [2] * 2
    assert sched.state_dict()["plateau"] == {"best": 0.5, "bad_epochs": 1, "reductions": 2}


def test_plateau_relative_threshold_for_positive_and_negative_losses():
    _, red = _plateau_run([1.0] + [1.0 - 0.9e-4] * 6)  # a gain below 1e-4 relative to the best
    assert red == [0] * 6 + [1]
    _, red = _plateau_run([1.0] + [1.0 - 1.1e-4 * (i + 1) ** 2 for i in range(6)])
    assert red == [0] * 7
    _, red = _plateau_run([-1.0] + [-1.0 - 0.9e-4] * 6)  # negative: a gain below 1e-4 |best|
    assert red == [0] * 6 + [1]
    _, red = _plateau_run([-1.0] + [-1.0 - 1.1e-4 * (i + 1) ** 2 for i in range(6)])
    assert red == [0] * 7


def test_plateau_skips_epochs_without_finite_losses():
    sched, _ = build(e=40, immediate_cooldown=False, decay_phase_stat="loss", decay_phase_factor=0.5)
    drive(sched, vee(16))
    eta = sched.switch_lr
    drive(sched, [1.0] * 4 + [1.0] * 20 + [math.nan] * 4)  # best, 5 bad epochs, an all-NaN epoch (not counted)
    assert sched.get_last_lr()[0] == eta
    drive(sched, [1.0, math.nan, 1.0, 1.0])  # the 6th bad epoch: mean of the finite values
    assert sched.get_last_lr()[0] == eta * 0.5
    assert sched.state_dict()["plateau"] == {"best": 1.0, "bad_epochs": 0, "reductions": 1}


def test_plateau_with_a_test_interval_shorter_than_an_epoch():
    sched, red = _plateau_run([1.0] + [1.0] * 5 + [2.0], test_interval=2)
    assert red == [0] * 6 + [1]
    sched, red = _plateau_run([1.0, 1.0, 1.0, 0.5], test_interval=2)
    assert sched.state_dict()["plateau"]["best"] == 0.5


def test_plateau_stops_at_the_cooldown():
    """E = 10: t_c = 32; epochs end at 20, 24, 28, 32; after t_c no loss is recorded."""
    sched, _ = build(immediate_cooldown=False, decay_phase_stat="loss", decay_phase_factor=0.5)
    drive(sched, vee(16) + [1.0] * 16)
    assert sched.phase == "final" and sched.state_dict()["plateau"] == {"best": 1.0, "bad_epochs": 3, "reductions": 0}
    drive(sched, [5.0] * 8)
    assert sched.state_dict()["plateau"]["bad_epochs"] == 3 and sched.state_dict()["pending"].numel() == 0


# ---- state_dict round trips ------------------------------------------------------------------------------------------
MODES = {
    "cosine": {},
    "const_cos": {"immediate_cooldown": False, "decay_phase_factor": 0.5},
    "plateau": {"immediate_cooldown": False, "decay_phase_stat": "loss", "decay_phase_factor": 0.5},
    "half_cosine": {"cooldown_type": "half_cosine"},
    "linear_epoch": {"warmup_type": "linear", "warmup_unit": "epoch"},
    "raise": {"on_nonfinite": "raise", "test_interval": 3},
    "argmin": {"fallback_lr": "argmin", "patience": 9},
}


def _save_load(sched, opt_groups=1, **kw):
    buf = io.BytesIO()
    torch.save(sched.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))]} for _ in range(opt_groups)], lr=0.1)
    fresh, gp = build(opt=opt, **kw)
    quiet(fresh.step, 7.0)  # a used scheduler: its buffer and counters must not leak into the loaded state
    fresh.load_state_dict(state)
    return fresh, gp, state


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("stop", [2, 8, 15, 17, 26, 33, 41])
def test_resume_is_exact(mode, stop):
    kw = MODES[mode]
    losses = vee(43)
    losses[35] = 1e6
    full, _ = build(**kw)
    full_lrs = quiet(drive, full, losses)
    first, _ = build(**kw)
    lrs = quiet(drive, first, losses[:stop])
    resumed, gp, state = _save_load(first, **kw)
    same(resumed.state_dict(), state)
    assert resumed.get_last_lr() == first.get_last_lr() and resumed._step_count == first._step_count
    assert gp.calls == first.state_dict()["gp"]["calls"]
    lrs += quiet(drive, resumed, losses[stop:])
    assert lrs == full_lrs
    end, ref = resumed.state_dict(), full.state_dict()
    same(end, ref)


def test_resume_keeps_the_past_end_warning_state():
    sched, _ = quiet(build)
    quiet(drive, sched, vee(41))
    resumed, _, _ = _save_load(sched)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        drive(resumed, [1.0])
    assert not rec


def test_resume_restores_group_ratios_and_pending_values():
    p1, p2 = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p1], "lr": 1.0}, {"params": [p2], "lr": 0.1}])
    sched, _ = build(opt=opt, preserve_group_ratios=True)
    drive(sched, [torch.tensor(v, dtype=torch.float16) for v in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)])
    resumed, _, state = _save_load(sched, opt_groups=2)
    assert state["pending"].tolist() == [5.0, 6.0] and state["pending_dtype"] == "float32"
    assert resumed.get_last_lr() == [ramp(7), ramp(7) * 0.1]
    assert resumed.state_dict()["pending_dtype"] == "float32", "kept until the next step"
    drive(resumed, [7.0, 8.0])
    assert resumed.history.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]


def test_config_mismatch_lists_the_fields():
    sched, _ = build()
    other, _ = build(s=5)
    with pytest.raises(ValueError) as err:
        other.load_state_dict(sched.state_dict())
    assert str(err.value) == (
        "AutoWU.load_state_dict: config mismatch in steps_per_epoch (saved 4, here 5), "
        "test_interval (saved 4, here 5), total_steps (saved 40, here 50), warmup_steps (saved 20, here 25)"
    )
    one = re.escape("config mismatch in decay_phase_factor (saved 1.0, here 0.5)") + "$"
    with pytest.raises(ValueError, match=one):
        build(decay_phase_factor=0.5)[0].load_state_dict(sched.state_dict())
    with pytest.raises(ValueError, match=re.escape("num_groups (saved None, here 1)")):
        other.load_state_dict({})
    for key, value in [("gp_confidence", 0.9), ("ramp", 1e4), ("fallback_lr", "argmin"), ("on_nonfinite", "raise")]:
        st = sched.state_dict()
        st["config"][key] = value
        with pytest.raises(ValueError, match=f"mismatch in {key} "):
            build()[0].load_state_dict(st)


# ---- distributed protocol (a fake torch.distributed) -------------------------------------------------------------
class FakeDist:
    """Two ranks seen from one of them: all_reduce adds the other rank's values, broadcast delivers rank 0's message."""

    class ReduceOp:
        SUM = "sum"

    def __init__(self, rank=0, world=2, backend="gloo", peer_offset=1.0, messages=None):
        self.rank, self.world, self.backend, self.peer_offset = rank, world, backend, peer_offset
        self.messages = list(messages or [])
        self.reduced, self.sent = [], []

    def is_available(self):
        return True

    def is_initialized(self):
        return True

    def get_rank(self, group=None):
        self.last_group = group
        return self.rank

    def get_world_size(self, group=None):
        assert group is self.expected_group
        return self.world

    def get_backend(self, group=None):
        assert group is self.expected_group
        return self.backend

    def get_global_rank(self, group, rank):
        assert group is self.expected_group and rank == 0
        return 7

    def all_reduce(self, t, op=None, group=None):
        assert op == "sum" and group is self.expected_group
        self.reduced.append(t.dtype)
        t.add_(t + self.peer_offset)  # the other rank's values are ours + offset

    def broadcast(self, t, src=None, group=None):
        assert group is self.expected_group
        self.sent.append((t.clone(), src))
        if self.rank != 0:
            t.copy_(torch.tensor(self.messages.pop(0), dtype=torch.float64))


@pytest.fixture
def fake_dist(monkeypatch):
    def install(group=None, **kw):
        fake = FakeDist(**kw)
        fake.expected_group = group
        monkeypatch.setattr(scheduler_module, "dist", fake)
        return fake

    return install


def test_rank0_reduces_once_per_test_and_broadcasts_the_outcome(fake_dist):
    dist = fake_dist()
    sched, gp = build(reduce_loss=True)
    losses = [torch.tensor(v, dtype=torch.float32) for v in vee(20)]
    drive(sched, losses)
    assert dist.reduced == [torch.float64] * 4, "one all-reduce per test, in float64"
    assert sched.history.tolist() == [v + 0.5 for v in vee(16)], "the rank mean"
    msgs = [(m.tolist(), src) for m, src in dist.sent]
    assert [m[0] for m, _ in msgs] == [0.0, 0.0, 0.0, 1.0] and {src for _, src in msgs} == {0}
    assert all(m.dtype == torch.float64 and m.device.type == "cpu" for m, _ in dist.sent)
    assert msgs[-1][0] == [1.0, sched.switch_lr, float(REASONS.index("test"))]
    assert sched.switch_step == 16 and gp.calls == 4


def test_reduction_over_a_process_group(fake_dist):
    group = object()
    dist = fake_dist(group=group)  # FakeDist checks that every call names this group
    sched, _ = build(process_group=group, reduce_loss=True)
    drive(sched, vee(8))
    assert len(dist.reduced) == 2 and sched.history.tolist() == [v + 0.5 for v in vee(8)]


def test_no_reduction_without_reduce_loss_and_group_source_rank(fake_dist):
    group = object()
    dist = fake_dist(group=group)
    sched, _ = build(process_group=group)
    drive(sched, vee(8))
    assert dist.reduced == [] and sched.history.tolist() == vee(8)
    assert [src for _, src in dist.sent] == [7, 7], "the group's rank 0 as a global rank"
    assert dist.last_group is group


def test_other_ranks_apply_rank0s_decision(fake_dist):
    dist = fake_dist(rank=1, messages=[[0, 0, 0], [0, 0, 0], [1, 0.00123, REASONS.index("divergence")]])
    sched, gp = build(reduce_loss=True)
    drive(sched, falling(12))
    assert gp.calls == 0, "only rank 0 runs the test"
    assert (sched.switch_step, sched.switch_lr, sched.switch_reason, sched.peak_lr) == (
        12,
        0.00123,
        "divergence",
        ramp(12),
    )
    assert [m.tolist() for m, _ in dist.sent] == [[0.0, 0.0, 0.0]] * 3


def test_an_error_on_rank0_raises_on_every_rank(fake_dist):
    dist = fake_dist()
    sched, _ = build(test=lambda cfg: FakeGP(cfg, fail=ValueError("boom")))
    with pytest.raises(RuntimeError, match=re.escape("AutoWU: the test on rank 0 failed (ValueError('boom'))")) as err:
        drive(sched, [1.0] * 4)
    assert isinstance(err.value.__cause__, ValueError) and dist.sent[0][0].tolist() == [2.0, 0.0, 0.0]
    fake_dist(rank=1, messages=[[2, 0, 0]])
    sched, _ = build()
    with pytest.raises(RuntimeError, match="^AutoWU: the test on rank 0 failed$") as err:
        drive(sched, [1.0] * 4)
    assert err.value.__cause__ is None


def test_raise_mode_after_the_switch_is_collective(fake_dist):
    """Every rank flushes each interval after the switch, so rank 1 joins exactly one broadcast per interval."""
    dist = fake_dist(rank=1, messages=[[0, 0, 0]] * 3 + [[1, 0.001, 0]] + [[0, 0, 0]] * 5)
    sched, _ = build(on_nonfinite="raise", reduce_loss=True)
    drive(sched, [1.0] * 36)
    assert sched.switch_step == 16 and len(dist.sent) == 4 + 5 and len(dist.reduced) == 4 + 5
    dist = fake_dist()
    sched, _ = build(on_nonfinite="raise")
    losses = vee(40)
    losses[21] = math.nan
    with pytest.raises(RuntimeError, match=re.escape("FloatingPointError('AutoWU: non-finite loss at step 22')")):
        drive(sched, losses)
    assert sched.last_epoch == 24


def test_plateau_decisions_are_collective(fake_dist):
    reduce, go = [3, 0, 0], [0, 0, 0]
    dist = fake_dist(rank=1, messages=[go] * 3 + [[1, 0.01, 0]] + [reduce, go, reduce])
    sched, _ = build(immediate_cooldown=False, decay_phase_stat="loss", decay_phase_factor=0.5, reduce_loss=True)
    drive(sched, [1.0] * 28)
    assert sched.switch_step == 16 and sched.get_last_lr()[0] == 0.01 * 0.25
    assert len(dist.sent) == 7 and len(dist.reduced) == 7
    dist = fake_dist()
    sched, _ = build(immediate_cooldown=False, decay_phase_stat="loss", reduce_loss=True)
    drive(sched, vee(20))
    assert sched.state_dict()["plateau"]["best"] == pytest.approx(np.mean(vee(20)[16:]) + 0.5)


def test_message_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    assert scheduler_module._message_device("nccl") == torch.device("cuda", 3)
    assert scheduler_module._message_device("gloo") == torch.device("cpu")
    assert scheduler_module._message_device("mpi") == torch.device("cpu")


# ---- more exact cases -------------------------------------------------------------------------------------------
def test_grouped_settings_reach_the_scheduler():
    from autowu import DecayConfig, GPConfig, PolicyConfig, RampConfig

    sched, gp = build(
        ramp=RampConfig(min_lr=1e-4, max_warmup_fraction=0.25),
        decay=DecayConfig(immediate_cooldown=False, cooldown_fraction=0.5),
        gp=GPConfig(votes=2, n_preds=4),
        policy=PolicyConfig(patience=2, test_interval=5),
    )
    assert (sched.min_lr, sched.warmup, sched.immediate_cooldown, sched.cooldown_fraction) == (1e-4, 10, False, 0.5)
    assert (gp.cfg.votes, gp.cfg.n_preds, sched.patience, sched.test_interval) == (2, 4, 2, 5)
    assert sched.state_dict()["anchors"]["t_c"] == 20 and sched.get_last_lr() == [1e-4]


def test_tensor_lrs_are_filled_in_place():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([p], lr=torch.tensor(0.01, dtype=torch.float64))
    lr = opt.param_groups[0]["lr"]
    sched, _ = build(opt=opt)
    assert opt.param_groups[0]["lr"] is lr and float(lr) == MIN
    drive(sched, falling(5))
    assert opt.param_groups[0]["lr"] is lr and float(lr) == ramp(6) and sched.get_last_lr() == [ramp(6)]


def test_plateau_epochs_count_from_the_switch():
    """test_interval 3, patience 2: the switch at 9, so epochs of the middle phase end at 13, 17, 21, ..."""
    sched, _ = build(e=40, immediate_cooldown=False, decay_phase_stat="loss", test_interval=3, patience=2)
    drive(sched, vee(9))
    assert sched.switch_step == 9 and sched.phase == "decay"
    drive(sched, [1.0, 2.0, 3.0, 4.0, 8.0, 8.0])
    assert sched.state_dict()["plateau"] == {"best": 2.5, "bad_epochs": 0, "reductions": 0}
    assert sched.state_dict()["pending"].tolist() == [8.0, 8.0]


def test_middle_phase_without_the_plateau_records_nothing_but_raise_checks():
    sched, _ = build(immediate_cooldown=False, decay_phase_factor=0.5)
    drive(sched, vee(31))
    assert sched.state_dict()["plateau"] == {"best": math.inf, "bad_epochs": 0, "reductions": 0}
    assert sched.state_dict()["pending"].numel() == 0
    sched, _ = build(immediate_cooldown=False, on_nonfinite="raise")
    losses = vee(40)
    losses[21] = math.nan
    with pytest.raises(FloatingPointError, match="^AutoWU: non-finite loss at step 22$"):
        drive(sched, losses)
    assert sched.phase == "decay" and sched.last_epoch == 24


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_plateau_threshold_is_strict(sign):
    """An epoch mean exactly at best (1 -+ 1e-4) is not an improvement (constant epochs: exact means)."""
    level = sign * (1.0 - 1e-4) if sign > 0 else -1.0 * (1.0 + 1e-4)
    sched, _ = build(e=40, immediate_cooldown=False, decay_phase_stat="loss", decay_phase_factor=0.5)
    drive(sched, vee(16))
    drive(sched, [sign] * 4 + [level] * 24)
    assert sched.state_dict()["plateau"] == {"best": sign, "bad_epochs": 0, "reductions": 1}


def test_plateau_flat_below_one_is_not_an_improvement():
    sched, _ = build(e=40, immediate_cooldown=False, decay_phase_stat="loss", decay_phase_factor=0.5)
    drive(sched, vee(16))
    drive(sched, [0.5] * 28)
    assert sched.state_dict()["plateau"] == {"best": 0.5, "bad_epochs": 0, "reductions": 1}


def test_minus_inf_is_not_a_valid_value():
    sched, gp = build()
    losses = falling(8)
    losses[5] = -math.inf
    drive(sched, losses)
    assert gp.seen[-1][1].tolist() == [True] * 5 + [False, True, True]
    assert (sched.switch_step, sched.switch_reason) == (8, "nonfinite")


def test_integer_arrays_are_accepted():
    sched, _ = build()
    for v in (np.array(3), np.array([4], dtype=np.int16), np.array([[5]], dtype=np.uint32)):
        sched.step(v)
    assert sched.state_dict()["pending"].tolist() == [3.0, 4.0, 5.0]


def test_buffer_device_of_tensor_losses():
    sched, _ = build(device="meta")
    sched.step(torch.tensor(1.0))
    assert sched._buf.device.type == "meta"
    sched, _ = build()
    sched.step(torch.tensor(1.0, device="meta"))
    assert sched._buf.device.type == "meta"


def test_load_converts_saved_values_to_float64():
    sched, _ = build()
    drive(sched, falling(6))
    st = sched.state_dict()
    st["history"], st["pending"] = st["history"].float(), st["pending"].float()
    fresh, _ = build()
    fresh.load_state_dict(st)
    assert fresh.history.dtype == torch.float64 and fresh.state_dict()["pending"].dtype == torch.float64
    assert fresh._pending_restore.dtype == torch.float64


class _Stop(Exception):
    pass


def test_nccl_messages_live_on_the_cuda_device(fake_dist, monkeypatch):
    """With nccl the message is built on _message_device('nccl') (here a stand-in device, meta)."""
    dist = fake_dist(backend="nccl")
    asked = []

    def device(backend):
        asked.append(backend)
        return torch.device("meta")

    def stop(t, src=None, group=None):
        dist.sent.append((t, src))
        raise _Stop

    monkeypatch.setattr(scheduler_module, "_message_device", device)
    monkeypatch.setattr(dist, "broadcast", stop)
    sched, _ = build()
    with pytest.raises(_Stop):
        drive(sched, [1.0] * 4)
    assert asked == ["nccl"] and dist.sent[0][0].device.type == "meta" and dist.sent[0][0].dtype == torch.float64


def test_rank0_messages_for_every_decision(fake_dist):
    """The broadcast carries [action, eta_sw, reason]: [0, 0, 0] to go on, [3, 0, 0] for a plateau reduction."""
    dist = fake_dist()
    sched, _ = build(e=40, immediate_cooldown=False, decay_phase_stat="loss", on_nonfinite="raise")
    drive(sched, vee(16) + [1.0] * 28)
    msgs = [m.tolist() for m, _ in dist.sent]
    assert msgs[:3] == [[0.0, 0.0, 0.0]] * 3 and msgs[3] == [1.0, sched.switch_lr, 0.0]
    assert msgs[4:] == [[0.0, 0.0, 0.0]] * 6 + [[3.0, 0.0, 0.0]]
    dist = fake_dist()
    sched, _ = build(on_nonfinite="raise")
    drive(sched, vee(24))
    assert [m.tolist() for m, _ in dist.sent][4:] == [[0.0, 0.0, 0.0]] * 2
    dist = fake_dist()
    sched, _ = build(e=40, immediate_cooldown=False, decay_phase_stat="loss")
    drive(sched, vee(16) + [math.nan] * 4)
    assert [m.tolist() for m, _ in dist.sent][4:] == [[0.0, 0.0, 0.0]]


@pytest.mark.gpu
def test_cuda_losses_give_the_cpu_schedule():
    """A loss buffer on the GPU (device='cuda'): history on the host in float64, the same LRs as with CPU losses."""
    losses = vee(40)
    losses[21] = 1e6
    cpu, _ = build(on_nonfinite="raise")
    lrs_cpu = drive(cpu, losses)
    gpu, _ = build(on_nonfinite="raise", device="cuda")
    lrs_gpu = drive(gpu, [torch.tensor(v, device="cuda") for v in losses[:18]])
    assert gpu._buf.device.type == "cuda" and gpu.state_dict()["pending"].device.type == "cpu"
    lrs_gpu += drive(gpu, [torch.tensor(v, device="cuda") for v in losses[18:]])
    assert lrs_gpu == lrs_cpu and gpu.history.device.type == "cpu" and gpu.history.dtype == torch.float64
    assert gpu.history.tolist() == cpu.history.float().double().tolist()
