"""Spec 7.9 (sphere at derived LRs, 5 seeds) and 7.18 [slow]: E1 reduced, E1 angles, E3 frog invariance."""

from __future__ import annotations

import pytest

from forward_grad.reproduce import e1_angles, e1_grid, e2_sphere, e3_custom


@pytest.mark.slow
def test_e1_reduced_acceptance():
    chk = e1_grid(ns=(16, 64, 256, 1024), ks=(1, 2, 4, 16, 64, 256), samples=500)
    assert len(chk.figures) == 24
    assert not chk.failures, f"spec 6 E1 rules missed: {chk.failures}"


@pytest.mark.slow
def test_e1_angles_acceptance():
    chk = e1_angles(samples=4000)
    assert not chk.failures, f"spec 6 E1 angle rules missed: {chk.failures}"


@pytest.mark.slow
def test_e2_sphere_at_derived_lrs_five_seeds():
    chk = e2_sphere(seeds=(0, 1, 2, 3, 4))
    assert len(chk.figures) == 8
    assert not chk.failures, f"spec 6 E2 / 7.9 sphere rules missed (±15% K<=4, x/÷3 K=16): {chk.failures}"


@pytest.mark.slow
def test_e3_frog_invariant_to_tangent_angle():
    """E3's frog rule (rtol 1e-6, same seed, float64); the LR is fixed at 0.01 since no searched table exists."""
    chk = e3_custom(0.01, seeds=(0,), ks=(16,), max_steps=200, include_mean=False)
    assert len(chk.figures[16]["frog"]) == 6
    assert not chk.failures, f"spec 6 E3: {chk.failures}"
