"""DESIGN.md §7.2 and 7.3: Monte Carlo checks of the closed forms (tolerance 4 sample std / sqrt(S))."""

from __future__ import annotations

import math

import pytest
import torch

from forward_grad.forward_gradient import frog_expected_cos, frog_expected_cos2, mean_expected_sq_norm_ratio
from forward_grad.forward_gradient.approximation import approximation_samples, true_gradient
from forward_grad.forward_gradient.theory import sphere_expected_final, sphere_optimal_lr
from forward_grad.testing import gen, mc_tol

F64 = torch.float64
CELLS = [(1024, 1), (1024, 2), (1024, 4), (1024, 16), (64, 16), (16, 4)]


def test_closed_forms_match_spec_numbers():
    expected = {(1024, 1): 0.0249, (1024, 2): 0.0392, (1024, 4): 0.0588, (1024, 16): 0.1231, (64, 16): 0.4942}
    expected[(16, 4)] = 0.4774
    for (n, k), value in expected.items():
        assert abs(frog_expected_cos(n, k) - value) < 5e-5, f"DESIGN.md §6 E1: E[cos] frog n={n} K={k} != {value}"
    assert frog_expected_cos(16, 16) == 1.0 and frog_expected_cos(16, 40) == 1.0
    assert math.isclose(frog_expected_cos(1024, 1), math.sqrt(2 / (math.pi * 1024)), rel_tol=2e-3), "DESIGN.md §3.2 K=1"
    assert math.isfinite(frog_expected_cos(2**16, 3)), "issue: finite to n = 2^16"
    assert mean_expected_sq_norm_ratio(1024, 1) == 1026 and abs(mean_expected_sq_norm_ratio(1024, 16) - 65.06) < 0.01
    lrs = [sphere_optimal_lr(1024, k, "mean") for k in (1, 2, 4, 16)]
    for lr, ref in zip(lrs, (4.87e-4, 9.74e-4, 1.94e-3, 7.68e-3)):
        assert abs(lr / 2 / ref * 2 - 1) < 5e-3 or abs(lr - ref) / ref < 5e-3, f"DESIGN.md §6 E4: {lr} != {ref}"
    assert abs(sphere_optimal_lr(64, 1, "mean") - 7.58e-3) < 1e-5, "DESIGN.md §7.12: 0.5K/(n+K+1) at n=64"
    finals = {("frog", 2): 145.0, ("frog", 4): 20.4, ("frog", 16): 1.48e-4}
    finals.update({("mean", 1): 386, ("mean", 2): 145.8, ("mean", 4): 20.8, ("mean", 16): 1.92e-4})
    for (agg, k), value in finals.items():
        got = sphere_expected_final(1024, k, sphere_optimal_lr(1024, k, agg), 1000, agg)
        assert abs(got / value - 1) < 0.01, f"DESIGN.md §6 E2: sphere {agg} K={k}: {got} != {value}"


@pytest.mark.parametrize("n,k", CELLS, ids=lambda v: str(v))
def test_frog_cos_moments(n, k):
    s = approximation_samples(n, k, "frog", 2000, generator=gen(n + k))  # float32: a Monte Carlo check
    cos = s["cos"]
    exp1, exp2 = frog_expected_cos(n, k), frog_expected_cos2(n, k)
    assert abs(float(cos.mean()) - exp1) <= mc_tol(cos), f"DESIGN.md §7.2: E[cos] {float(cos.mean()):.4f} vs {exp1:.4f}"
    c2 = cos**2
    assert abs(float(c2.mean()) - exp2) <= mc_tol(c2), f"DESIGN.md §7.2: E[cos^2] {float(c2.mean()):.4f} vs {exp2:.4f}"
    assert torch.allclose(cos, s["norm_ratio"], rtol=1e-5), "DESIGN.md §7.1: cos != |g_hat|/|g|"


@pytest.mark.parametrize("n,k", CELLS, ids=lambda v: str(v))
def test_mean_unbiased_and_second_moment(n, k):
    g = true_gradient("random", n, F64, gen(1))
    S = 2000
    total, norms, rng = torch.zeros(n, dtype=F64), [], gen(2 * n + k)
    for _ in range(S // 250):
        V = torch.randn(250, k, n, dtype=F64, generator=rng)
        est = ((V @ g).unsqueeze(-1) * V).mean(1)  # (250, n) samples of g_bar
        total += est.sum(0)
        norms.append(est.norm(dim=1))
    bias = float((total / S - g).norm() / g.norm())
    assert bias <= 4 * math.sqrt((n + k + 1) / (k * S)), f"DESIGN.md §7.2: |mean g_bar - g|/|g| = {bias:.4f}"
    ratio = (torch.cat(norms) / g.norm()) ** 2
    expected = mean_expected_sq_norm_ratio(n, k)
    assert abs(float(ratio.mean()) - expected) <= mc_tol(ratio), f"DESIGN.md §7.2: E|g_bar|^2/|g|^2 vs {expected}"


def test_frog_beats_mean_and_k1_descent():
    checked = 0
    for n in (16, 64, 256):
        for k in (1, 2, 4, 16, 64):
            frog = approximation_samples(n, k, "frog", 300, generator=gen(n * k))["cos"]
            mean = approximation_samples(n, k, "mean", 300, generator=gen(n * k))["cos"]
            tol = 4 * math.sqrt(float(frog.var() + mean.var()) / 300)
            assert float(frog.mean()) >= float(mean.mean()) - tol, f"DESIGN.md §7.3: frog < mean at n={n} K={k}"
            checked += 1
    assert checked == 15
    k1 = approximation_samples(50, 1, "mean", 500, generator=gen(3))["cos"]
    assert float(k1.min()) >= 0, "DESIGN.md §7.3: g_v is not a descent direction for some sample"


def test_n_equals_k_16():
    frog = approximation_samples(16, 16, "frog", 2000, dtype=F64, generator=gen(4))["cos"]
    mean = approximation_samples(16, 16, "mean", 2000, dtype=F64, generator=gen(4))["cos"]
    assert abs(float(frog.mean()) - 1.0) < 1e-12, "DESIGN.md §7.3: n = K = 16 frog cos != 1"
    assert abs(float(mean.mean()) - 0.71) <= 0.02, (
        f"DESIGN.md §7.3: n = K = 16 mean cos {float(mean.mean()):.3f} != 0.71"
    )


def test_true_gradient_kind_irrelevant_and_standard_basis():
    n, k = 64, 4
    a = approximation_samples(n, k, "mean", 2000, g=true_gradient("ones", n), generator=gen(5))["cos"]
    b = approximation_samples(n, k, "mean", 2000, g=true_gradient("random", n, generator=gen(6)), generator=gen(7))
    tol = 4 * math.sqrt(float(a.var() + b["cos"].var()) / 2000)
    assert abs(float(a.mean()) - float(b["cos"].mean())) <= tol, "DESIGN.md §7.3: ones vs random E[cos] differ"
    for agg in ("mean", "frog"):
        cos = approximation_samples(n, k, agg, 3, sampler="standard_basis", dtype=F64)["cos"]
        assert torch.allclose(cos, torch.full_like(cos, math.sqrt(k / n)), rtol=1e-12), f"DESIGN.md §7.3: eye {agg}"
