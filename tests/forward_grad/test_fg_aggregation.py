"""DESIGN.md §7.1 (frog identities) and the aggregation part of 7.4."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from common.cli import UsageError
from forward_grad.forward_gradient import (
    ForwardGradient,
    aggregate,
    frog_directions,
    frog_expected_cos,
    frog_from_directions,
    frog_gram,
    frog_solve,
    sample_tangents,
    scaling_factor,
)
from forward_grad.testing import assert_is_projection, gen

F64 = torch.float64


def _frog_qr(V, g):
    Qt = frog_directions(V, warn=False)
    return frog_from_directions(Qt @ g, Qt)


@pytest.mark.parametrize("n,k", [(10, 1), (50, 3), (64, 16), (7, 6)])
def test_frog_is_orthogonal_projection(n, k):
    g = torch.randn(n, dtype=F64, generator=gen(1))
    V = sample_tangents("normal", k, n, generator=gen(2), dtype=F64)
    checked = 0
    for mode, g_hat in (("qr", _frog_qr(V, g)), ("solve", frog_solve(V @ g, V))):
        assert_is_projection(g_hat, g, V)
        again = frog_solve(V @ g_hat, V)  # idempotent: projecting the projection changes nothing
        assert torch.allclose(again, g_hat, rtol=1e-10, atol=1e-12), f"DESIGN.md §7.1: frog ({mode}) not idempotent"
        checked += 1
    assert checked == 2


def test_frog_invariances():
    n, k = 40, 5
    g = torch.randn(n, dtype=F64, generator=gen(3))
    V = sample_tangents("normal", k, n, generator=gen(4), dtype=F64)
    ref = _frog_qr(V, g)
    A = torch.randn(k, k, dtype=F64, generator=gen(5)) + 3 * torch.eye(k, dtype=F64)
    assert torch.linalg.cond(A) < 100
    scales = torch.rand(k, 1, dtype=F64, generator=gen(6)) * 5 + 0.1
    for name, W in (("V -> AV", A @ V), ("row scaling", scales * V)):
        out = _frog_qr(W, g)
        err = float((out - ref).norm() / ref.norm())
        assert err <= 1e-10, f"DESIGN.md §7.1: frog not invariant to {name} (rel err {err:.2e})"
    # the angle sampler's rotation keeps span(v_1, v_i) pairs but changes the span: frog of the rotated set equals the
    # projection onto the rotated span, computed independently by the Gram inverse
    Va = sample_tangents("specific_angle_30", k, n, generator=gen(7), dtype=F64)
    err = float((_frog_qr(Va, g) - frog_gram(Va @ g, Va)).norm() / g.norm())
    assert err <= 1e-10, f"DESIGN.md §7.1: frog on angle tangents != P_U g ({err:.2e})"


def test_frog_angle_rotation_invariance():
    """Frog depends only on span(V): the rotation v_i <- cos t v_1 + sin t unit(v_i - ...) keeps span(V) (§3.2)."""
    n, k = 30, 4
    g = torch.randn(n, dtype=F64, generator=gen(8))
    raw = torch.randn(k, n, dtype=F64, generator=gen(9))
    v1 = raw[0] / raw[0].norm()
    rest = raw[1:] - (raw[1:] @ v1)[:, None] * v1
    rest = rest / rest.norm(dim=1, keepdim=True)
    t = math.radians(25)
    rotated = torch.cat([v1[None], math.cos(t) * v1 + math.sin(t) * rest])
    a, b = _frog_qr(raw, g), _frog_qr(rotated, g)
    err = float((a - b).norm() / a.norm())
    assert err <= 1e-10, f"DESIGN.md §7.1: frog not invariant to the angle rotation ({err:.2e})"


@pytest.mark.parametrize("extra", [0, 5])
def test_frog_k_ge_n_is_exact(extra):
    n = 12
    g = torch.randn(n, dtype=F64, generator=gen(10))
    V = sample_tangents("normal", n + extra, n, generator=gen(11), dtype=F64)
    with pytest.warns(UserWarning, match="exact gradient"):
        Qt = frog_directions(V)
    assert Qt.shape[0] == n
    for mode, g_hat in (("qr", frog_from_directions(Qt @ g, Qt)), ("solve", frog_solve(V @ g, V))):
        assert torch.allclose(g_hat, g, rtol=1e-6, atol=0), f"DESIGN.md §7.1: K = n+{extra} frog ({mode}) != g"


def test_frog_degenerate_tangents_finite():
    n = 20
    g = torch.randn(n, dtype=F64, generator=gen(12))
    v = torch.randn(n, dtype=F64, generator=gen(13))
    w = torch.randn(n, dtype=F64, generator=gen(14))
    checked = 0
    for V in (torch.stack([v, v, w]), torch.stack([v, torch.zeros(n, dtype=F64), w])):
        for g_hat in (_frog_qr(V, g), frog_solve(V @ g, V)):
            assert torch.isfinite(g_hat).all(), "DESIGN.md §9: rank-deficient tangents produced NaN"
            assert float(g_hat.norm()) <= float(g.norm()) * (1 + 1e-10), "DESIGN.md §7.1: |g_hat| > |g|"
            again = frog_solve(V @ g_hat, V)
            assert torch.allclose(again, frog_solve(V @ g, V), atol=1e-10), "DESIGN.md §7.1: not idempotent"
            checked += 1
    assert checked == 4


def test_frog_forms_agree():
    n, k = 100, 8
    g = torch.randn(n, dtype=F64, generator=gen(15))
    V = sample_tangents("normal", k, n, generator=gen(16), dtype=F64)
    d = V @ g
    qr, solve, gram = _frog_qr(V, g), frog_solve(d, V), frog_gram(d, V)
    pinv = torch.linalg.pinv(V) @ d
    for name, other in (("solve", solve), ("gram", gram), ("pinv", pinv)):
        assert torch.allclose(qr, other, rtol=1e-8, atol=1e-10), f"DESIGN.md §7.1: qr and {name} disagree"


def test_frog_k1_is_gv_over_norm2():
    n = 30
    g = torch.randn(n, dtype=F64, generator=gen(17))
    v = torch.randn(1, n, dtype=F64, generator=gen(18))
    g_v = aggregate("mean", v @ g, v)
    assert float(g_v @ g) >= 0, "DESIGN.md §7.3: g_v is not a descent direction"
    frog = _frog_qr(v, g)
    assert torch.allclose(frog, g_v / (v @ v.T).squeeze(), rtol=1e-12, atol=1e-14), "DESIGN.md §7.3: frog != g_v/|v|^2"


def test_aggregations_on_hand_made_input():
    V = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]], dtype=F64)
    d = torch.tensor([[3.0, -1.0], [0.5, 4.0]], dtype=F64)  # B = 2 samples, K = 2
    mean = aggregate("mean", d, V)
    assert torch.allclose(mean, torch.tensor([[1.5, -1.0, 0.0], [0.25, 4.0, 0.0]], dtype=F64))
    assert torch.allclose(aggregate("sum", d, V), 2 * mean), "DESIGN.md §7.4: sum != K mean"
    assert torch.allclose(aggregate("mean_times_dim", d, V), 3 * mean), "DESIGN.md §7.4: mean_times_dim != n mean"
    # max: largest |d_i| per sample -> sample 0 picks tangent 0 (3 > 1), sample 1 picks tangent 1 (4 > 0.5)
    assert torch.allclose(aggregate("max", d, V), torch.tensor([[3.0, 0, 0], [0, 8.0, 0]], dtype=F64))
    # max_normalized: |d_i|/|v_i| = (3, 0.5) and (0.5, 2)
    assert torch.allclose(aggregate("max_normalized", d, V), torch.tensor([[3.0, 0, 0], [0, 8.0, 0]], dtype=F64))
    d2 = torch.tensor([[1.0, 2.1]], dtype=F64)  # scores 1.0 and 1.05: both within 0.1 of the best -> mean
    assert torch.allclose(aggregate("mean_of_top_k", d2, V), aggregate("mean", d2, V))


def test_scaling_correction_formulas():
    n = 64
    V1 = torch.randn(1, n, dtype=F64, generator=gen(19))
    f1 = scaling_factor("mean", n, V1)
    assert math.isclose(float(f1), 1 / (float(V1 @ V1.T) * math.sqrt(2 / (math.pi * n))), rel_tol=1e-12)
    V4 = torch.randn(4, n, dtype=F64, generator=gen(20))
    sq = float((V4 * V4).sum(1).mean())
    f4 = scaling_factor("mean", n, V4)
    assert math.isclose(float(f4), 1 / (sq * math.sqrt((n + 4) / 5) / n), rel_tol=1e-12), "DESIGN.md §3.2 mean K>1"
    assert math.isclose(scaling_factor("frog", n, V4), 1 / frog_expected_cos(n, 4), rel_tol=1e-12)
    est = ForwardGradient(4, "frog", scaling_correction=True, generator=gen(21))
    plain = ForwardGradient(4, "frog", generator=gen(21))
    x = torch.randn(n, dtype=F64, generator=gen(22))
    f = lambda z: (z * z).sum()  # noqa: E731
    ratio = est.estimate(f, x).norm() / plain.estimate(f, x).norm()
    assert math.isclose(float(ratio), 1 / frog_expected_cos(n, 4), rel_tol=1e-10), "DESIGN.md §3.2 frog scaling"


NAMES = ["mean", "sum", "mean_times_dim", "max", "max_normalized", "mean_of_top_k", "orthogonal_projection"]


@pytest.mark.parametrize("scaling", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_batched_tangent_sets_equal_per_sample_aggregation(name, scaling):
    """DESIGN.md §3.2 shapes: V (B, K, n) with d (B, K) aggregates each sample with its own tangents."""
    B, k, n = 3, 3, 5
    V = torch.randn(B, k, n, dtype=F64, generator=gen(30)) * torch.tensor([1.0, 2.0, 0.5], dtype=F64)[:, None]
    d = torch.randn(B, k, dtype=F64, generator=gen(31))
    got = aggregate(name, d, V, scaling_correction=scaling)
    want = torch.stack([aggregate(name, d[b], V[b], scaling_correction=scaling) for b in range(B)])
    assert got.shape == (B, n) and torch.allclose(got, want, rtol=1e-12, atol=1e-12)
    if name == "orthogonal_projection":
        for b in range(B):
            assert torch.allclose(frog_gram(d, V)[b], frog_gram(d[b], V[b]), rtol=1e-10)
            Qt = frog_directions(V, warn=False)
            assert torch.allclose(
                frog_from_directions(Qt[b] @ frog_solve(d, V)[b], Qt[b]), frog_solve(d[b], V[b]), rtol=1e-10
            )


def test_frog_aggregate_is_the_projection_and_scaling_multiplies():
    n, k = 12, 3
    g = torch.randn(n, dtype=F64, generator=gen(32))
    V = torch.randn(k, n, dtype=F64, generator=gen(33))
    frog = aggregate("frog", V @ g, V)
    assert torch.allclose(frog, _frog_qr(V, g), rtol=1e-10), "aggregate('frog') is P_U g"
    for name in NAMES:
        plain, scaled = aggregate(name, V @ g, V), aggregate(name, V @ g, V, scaling_correction=True)
        assert torch.allclose(scaled, plain * scaling_factor(name, n, V), rtol=1e-12)
    for name in ("sum", "max", "max_normalized", "mean_of_top_k", "mean_times_dim"):
        assert scaling_factor(name, n, V) == 1.0
    assert not torch.allclose(aggregate("mean", V @ g, V, scaling_correction=True), aggregate("mean", V @ g, V))


def test_max_normalized_and_top_k_window_edges():
    V = torch.tensor([[1.0, 0.0, 0.0], [0.0, 4.0, 0.0]], dtype=F64)
    d = torch.tensor([3.0, 8.0], dtype=F64)  # |d|: tangent 1 wins; |d|/|v| = (3, 2): tangent 0 wins
    assert torch.equal(aggregate("max", d, V), torch.tensor([0.0, 32.0, 0.0], dtype=F64))
    assert torch.equal(aggregate("max_normalized", d, V), torch.tensor([3.0, 0.0, 0.0], dtype=F64))
    W = torch.eye(3, dtype=F64)
    best = 1.125
    edge = torch.tensor([best, best - 0.1, 0.5], dtype=F64)  # the second score sits exactly on the window's edge
    assert torch.allclose(
        aggregate("mean_of_top_k", edge, W), torch.tensor([best / 2, (best - 0.1) / 2, 0.0], dtype=F64)
    )
    with pytest.raises(UsageError) as exc:
        aggregate("median", edge, W)
    assert "unknown aggregation 'median'; choose from mean, sum, mean_times_dim, max, max_normalized" in str(exc.value)


def test_frog_solve_takes_the_triangular_solve_and_falls_back_only_when_deficient(monkeypatch):
    """Full-rank V (K <= n, also K = n) never needs pinv; a rank-deficient V at any scale does (and stays bounded)."""
    g = torch.randn(6, dtype=F64, generator=gen(34))
    full = torch.randn(6, 6, dtype=F64, generator=gen(35))
    bad = torch.randn(4, 6, dtype=F64, generator=gen(36)) * 1e6
    bad[3] = bad[0] + bad[1]
    want_bad = frog_solve(bad @ g, bad)

    def no_pinv(*args, **kwargs):
        raise AssertionError("pinv fallback on a well-conditioned V")

    monkeypatch.setattr(torch.linalg, "pinv", no_pinv)
    for k in (2, 6):
        V = full[:k]
        assert torch.allclose(frog_solve(V @ g, V), _frog_qr(V, g), rtol=1e-9, atol=1e-12)
    monkeypatch.undo()
    assert torch.isfinite(want_bad).all() and float(want_bad.norm()) <= float(g.norm()) * (1 + 1e-6)
    assert torch.allclose(frog_solve(V @ g, V), _frog_qr(V, g), rtol=1e-9)


def test_k_ge_n_warns_and_k_lt_n_is_silent():
    with pytest.warns(UserWarning, match=r"K=4 >= n=4: frog uses n orthonormal directions"):
        frog_directions(torch.randn(4, 4, dtype=F64, generator=gen(37)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Qt = frog_directions(torch.randn(3, 4, dtype=F64, generator=gen(38)))
    assert Qt.shape == (3, 4) and torch.allclose(Qt @ Qt.T, torch.eye(3, dtype=F64), atol=1e-12)


def test_frog_solve_batched_paths(monkeypatch):
    """Per-sample rank tolerance (samples at very different scales), K > n through pinv per sample, and all-zero
    tangents (R = 0) give the projection, never NaN."""
    g = torch.randn(2, 5, dtype=F64, generator=gen(40))
    V = torch.randn(2, 3, 5, dtype=F64, generator=gen(41)) * torch.tensor([1e-10, 1e6], dtype=F64)[:, None, None]
    want = torch.stack([_frog_qr(V[b], g[b]) for b in range(2)])
    d = (V @ g.unsqueeze(-1)).squeeze(-1)

    def no_pinv(*args, **kwargs):
        raise AssertionError("pinv fallback on well-conditioned tangents")

    with monkeypatch.context() as m:
        m.setattr(torch.linalg, "pinv", no_pinv)
        assert torch.allclose(frog_solve(d, V), want, rtol=1e-8)
    wide = torch.randn(2, 6, 4, dtype=F64, generator=gen(42))  # K > n: the projection is the gradient itself
    g4 = g[:, :4]
    assert torch.allclose(frog_solve((wide @ g4.unsqueeze(-1)).squeeze(-1), wide), g4, rtol=1e-9)
    zero = frog_solve(torch.zeros(3, dtype=F64), torch.zeros(3, 5, dtype=F64))
    assert torch.equal(zero, torch.zeros(5, dtype=F64))


def test_rank_deficient_fallback_is_the_projection_at_any_scale():
    g = torch.randn(6, dtype=F64, generator=gen(43))
    for scale in (1e-6, 1.0, 1e6):
        base = torch.randn(3, 6, dtype=F64, generator=gen(44)) * scale
        V = torch.cat([base, (base[0] + base[1])[None]])  # 4 tangents spanning 3 dimensions
        assert torch.allclose(frog_solve(V @ g, V), _frog_qr(base, g), rtol=1e-6, atol=1e-9), scale


def test_max_normalized_is_not_top_k_and_batched_k_lt_n_is_silent():
    V = torch.tensor([[1.0, 0.0, 0.0], [0.0, 4.0, 0.0]], dtype=F64)
    d = torch.tensor([3.0, 11.8], dtype=F64)  # scores 3 and 2.95: top-k keeps both, max_normalized only the first
    assert torch.equal(aggregate("max_normalized", d, V), torch.tensor([3.0, 0.0, 0.0], dtype=F64))
    assert torch.allclose(aggregate("mean_of_top_k", d, V), torch.tensor([1.5, 23.6, 0.0], dtype=F64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frog_directions(torch.randn(2, 3, 5, dtype=F64, generator=gen(45)))
