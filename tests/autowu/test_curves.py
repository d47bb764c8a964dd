"""DESIGN.md §7.4, §7.7, §7.8, §7.17 on the synthetic bowl (S = 50, E = 60, T = 3000, W = 1500)."""

from __future__ import annotations

import io
import warnings

import pytest
import torch

from autowu.synthetic import CurveRun, run_curve

pytestmark = pytest.mark.slow


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


@pytest.mark.parametrize("seed", range(5))
def test_bowl_low_noise(seed):
    r = _quiet(run_curve, "bowl", 0.05, seed)
    assert r.reason == "test"
    assert 900 < r.switch_step <= 1300, (
        f"DESIGN.md §7.4: sigma 0.05 seed {seed} switch in (900, 1300], got {r.switch_step}"
    )
    assert 0.0067 <= r.switch_lr <= 0.015, f"DESIGN.md §7.4: eta_sw in [0.0067, 0.015], got {r.switch_lr}"
    assert r.switch_lr < r.peak_lr, "DESIGN.md §7.4: eta_sw below the peak"


@pytest.mark.parametrize("seed", range(5))
def test_bowl_high_noise(seed):
    r = _quiet(run_curve, "bowl", 0.3, seed)
    assert 900 < r.switch_step <= 1400, (
        f"DESIGN.md §7.4: sigma 0.3 seed {seed} switch in (900, 1400], got {r.switch_step}"
    )


def _roundtrip(run: CurveRun, gp_fit: str) -> CurveRun:
    buf = io.BytesIO()
    torch.save(run.state_dict(), buf)
    buf.seek(0)
    fresh = CurveRun("bowl", 0.05, 0, gp_fit=gp_fit)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    return fresh


@pytest.mark.parametrize("gp_fit", ["lbfgs", "adam"])
def test_resume_is_exact(gp_fit):
    full = _quiet(lambda: CurveRun("bowl", 0.05, 0, gp_fit=gp_fit).run_until())
    first_pos = next(d["step"] for d in full.scheduler.test_log if d["verdict"])
    assert first_pos < full.scheduler.switch_step
    # (a) 1025 with 25 values pending, (b) the first positive verdict, (c) 2000 mid-cosine: one chained resumed run
    run = CurveRun("bowl", 0.05, 0, gp_fit=gp_fit)
    checked = 0
    for stop in (1025, first_pos, 2000):
        _quiet(run.run_until, stop)
        if stop == 1025:
            assert run.state_dict()["scheduler"]["pending"].numel() == 25
        run = _roundtrip(run, gp_fit)
        checked += 1
    _quiet(run.run_until)
    assert checked == 3
    assert run.lrs == full.lrs, f"DESIGN.md §7.7 ({gp_fit}): resumed LR sequence differs"
    assert run.scheduler.switch_step == full.scheduler.switch_step
    assert run.scheduler.switch_lr == full.scheduler.switch_lr, "DESIGN.md §7.7: eta_sw identical (==)"


@pytest.mark.parametrize("curve", ["nan", "inf"])
def test_nonfinite_switches_at_once(curve):
    r = _quiet(run_curve, curve, 0.05, 0)
    assert r.switch_step == 1050 and r.reason == "nonfinite", (
        f"DESIGN.md §7.8: {curve} switches at 1050, got {r.switch_step}"
    )
    assert 0.0067 <= r.switch_lr <= 0.015, f"DESIGN.md §7.8: eta_sw in [0.0067, 0.015], got {r.switch_lr}"


def test_nonfinite_ignore_and_raise():
    r = _quiet(run_curve, "nan", 0.05, 0, on_nonfinite="ignore")
    assert r.switch_step != 1050, "DESIGN.md §7.8: 'ignore' does not switch at 1050"
    with pytest.raises(FloatingPointError, match="1045"):
        _quiet(run_curve, "nan", 0.05, 0, on_nonfinite="raise")


def test_jump_is_divergence():
    r = _quiet(run_curve, "jump", 0.05, 0)
    assert r.switch_step == 1100 and r.reason == "divergence", (
        f"DESIGN.md §7.8: jump switches at 1100, got {r.switch_step}"
    )
    r = _quiet(run_curve, "jump", 0.05, 0, divergence_factor=None)
    assert r.reason == "test", "DESIGN.md §7.8: without divergence_factor the test alone decides"


def test_all_nan_first_epoch():
    r = _quiet(run_curve, "nan_first_epoch", 0.05, 0)
    assert r.switch_step == 50 and r.reason == "nonfinite" and r.switch_lr == 1e-5, (
        "DESIGN.md §7.8: switch at 50 with eta_min"
    )
    r = _quiet(run_curve, "nan_first_epoch", 0.05, 0, on_nonfinite="ignore")
    assert r.switch_step is not None


@pytest.mark.parametrize("seed", range(3))
def test_reference_equivalence(seed):
    from autowu.reference import ReferenceGPTest

    ours = _quiet(run_curve, "bowl", 0.05, seed)
    ref = _quiet(run_curve, "bowl", 0.05, seed, test_factory=ReferenceGPTest)
    assert abs(ours.switch_step - ref.switch_step) <= 50, (
        f"DESIGN.md §7.17: |dswitch| <= 50 ({ours.switch_step} vs {ref.switch_step})"
    )
    rel = abs(ours.switch_lr - ref.switch_lr) / ref.switch_lr
    assert rel <= 0.10, f"DESIGN.md §7.17: |d eta_sw|/eta_ref <= 10 %, got {rel:.3f}"
