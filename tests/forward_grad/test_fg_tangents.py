"""DESIGN.md §7.4: tangent samplers."""

from __future__ import annotations

import math

import pytest
import torch

from common.cli import UsageError
from forward_grad.forward_gradient import parse_sampler, sample_tangents
from forward_grad.testing import gen


def test_normal_moments():
    V = sample_tangents("normal", 64, 500, generator=gen(0), dtype=torch.float64)
    S = V.numel()
    assert abs(float(V.mean())) <= 4 / math.sqrt(S), "DESIGN.md §7.4: normal mean"
    assert abs(float(V.var()) - 1) <= 4 * math.sqrt(2 / S), "DESIGN.md §7.4: normal variance"


def test_rademacher_and_standard_basis():
    V = sample_tangents("rademacher", 8, 100, generator=gen(1))
    assert set(V.unique().tolist()) == {-1.0, 1.0}, "DESIGN.md §7.4: rademacher not +-1"
    for name in ("standard_basis", "eye"):
        E = sample_tangents(name, 3, 5)
        assert torch.equal(E, torch.eye(5)[:3]), "DESIGN.md §7.4: standard_basis rows != e_1..e_K"
    with pytest.raises(ValueError, match="K <= n"):
        sample_tangents("standard_basis", 6, 5)


@pytest.mark.parametrize("theta", [15.0, 45.0, 90.0])
def test_angle_sampler(theta):
    V = sample_tangents(f"specific_angle_{theta:g}", 6, 40, generator=gen(2), dtype=torch.float64)
    assert torch.allclose(V.norm(dim=1), torch.ones(6, dtype=torch.float64), atol=1e-12), "DESIGN.md §7.4: unit norms"
    angles = torch.rad2deg(torch.acos((V[1:] @ V[0]).clamp(-1, 1)))
    assert torch.allclose(angles, torch.full_like(angles, theta), atol=1e-6), (
        f"DESIGN.md §7.4: angles {angles.tolist()}"
    )


@pytest.mark.parametrize(
    "bad", ["specific_angle_0", "specific_angle_91", "specific_angle_x", "gauss", "varying_length_0.5"]
)
def test_bad_sampler_names(bad):
    with pytest.raises(ValueError):
        parse_sampler(bad)


def test_bad_k_and_n():
    for k, n in ((0, 4), (-1, 4), (2, 0)):
        with pytest.raises(ValueError):
            sample_tangents("normal", k, n)


def test_varying_length():
    V = sample_tangents("varying_length_3", 5, 20, generator=gen(3), shape=(4,))
    nonzero = (V != 0).sum(-1)
    assert (nonzero == 1).all(), "DESIGN.md §7.4: varying_length rows are not axis vectors"
    axes = V.abs().argmax(-1)
    assert all(len(set(row.tolist())) == 5 for row in axes), "DESIGN.md §7.4: axes not distinct"
    norms = V.norm(dim=-1)
    assert float(norms.min()) >= 1 and float(norms.max()) <= 3, "DESIGN.md §7.4: lengths outside [1, L]"


def test_resampling_reaches_full_rank():
    V = sample_tangents("rademacher", 6, 4, generator=gen(4), resample_rank_deficient=True, shape=(200,))
    ranks = torch.linalg.matrix_rank(V.double())
    assert (ranks == 4).all(), "DESIGN.md §7.4: resampling did not reach full rank"
    low = sample_tangents("rademacher", 6, 4, generator=gen(4), shape=(200,))
    assert (torch.linalg.matrix_rank(low.double()) < 4).any(), "the no-resampling control never hits rank deficiency"


SAMPLERS = ["normal", "rademacher", "standard_basis", "specific_angle_30", "varying_length_3"]


@pytest.mark.parametrize("name", SAMPLERS)
def test_samplers_use_only_the_given_generator_and_dtype(name):
    """Reproducible from the run's generator alone (the global RNG is never touched), successive draws differ,
    no generator means a fixed seed 0, and the requested dtype comes back."""
    global_state = torch.get_rng_state()
    a = sample_tangents(name, 3, 7, generator=gen(11), dtype=torch.float64)
    b = sample_tangents(name, 3, 7, generator=gen(11), dtype=torch.float64)
    assert torch.equal(a, b) and a.dtype == torch.float64 and a.shape == (3, 7)
    assert torch.equal(torch.get_rng_state(), global_state), "a sampler consumed the global RNG"
    assert torch.equal(
        sample_tangents(name, 3, 7, dtype=torch.float64),
        sample_tangents(name, 3, 7, generator=gen(0), dtype=torch.float64),
    )
    g = gen(11)
    first, second = (sample_tangents(name, 3, 7, generator=g, dtype=torch.float64) for _ in range(2))
    assert torch.equal(first, a)
    assert torch.equal(first, second) == (name == "standard_basis"), "the passed generator must advance"
    assert torch.equal(sample_tangents(name, 3, 7, generator=gen(12), dtype=torch.float64), a) == (
        name == "standard_basis"
    )


@pytest.mark.parametrize("name", SAMPLERS)
def test_batched_draws_are_independent_samples_with_the_sampler_properties(name):
    """shape=(B,) gives B tangent sets of shape (K, n), each with the sampler's properties, not copies of one."""
    k, n, theta = 3, 9, 30.0
    V = sample_tangents(name, k, n, generator=gen(5), dtype=torch.float64, shape=(4,))
    assert V.shape == (4, k, n)
    if name == "standard_basis":
        assert torch.equal(V, torch.eye(k, n, dtype=torch.float64).expand(4, k, n))
        return
    assert not torch.equal(V[0], V[1])
    if name == "specific_angle_30":
        assert torch.allclose(V.norm(dim=-1), torch.ones(4, k, dtype=torch.float64), atol=1e-12)
        cos = (V[:, 1:, :] * V[:, :1, :]).sum(-1)
        assert torch.allclose(cos, torch.full_like(cos, math.cos(math.radians(theta))), atol=1e-10)
    if name == "varying_length_3":
        assert ((V != 0).sum(-1) == 1).all() and all(len(set(r.tolist())) == k for r in V.abs().argmax(-1))


def test_unbatched_varying_length_and_its_length_range():
    V = sample_tangents("varying_length_3", 400, 1000, generator=gen(6), dtype=torch.float64)
    norms = V.norm(dim=-1)
    assert V.shape == (400, 1000) and ((V != 0).sum(-1) == 1).all()
    assert float(norms.min()) >= 1.0 and float(norms.max()) <= 3.0
    assert float(norms.min()) < 1.05 and float(norms.max()) > 2.95, "lengths must fill U[1, L]"
    assert torch.equal(sample_tangents("varying_length_1", 4, 4, generator=gen(6)).norm(dim=-1), torch.ones(4))
    assert sample_tangents("varying_length_2", 4, 4, generator=gen(6)).shape == (4, 4), "K = n distinct axes"
    with pytest.raises(ValueError, match=r"needs K <= n, got K=5 > n=4"):
        sample_tangents("varying_length_2", 5, 4)


def test_boundaries_and_messages():
    """The valid edges (theta just above 0, L = 1, n = 1) pass; every rejection names what is wrong."""
    assert parse_sampler("specific_angle_0.5").param == 0.5 and parse_sampler("varying_length_1").param == 1.0
    assert sample_tangents("normal", 2, 1, generator=gen(0)).shape == (2, 1)
    for bad, words in [
        ("specific_angle_x", "parameter 'x' is not a number"),
        ("specific_angle_0", "angle theta must lie in (0, 90] degrees, got 0"),
        ("varying_length_0.5", "maximal length L must be >= 1, got 0.5"),
        ("gauss", "unknown tangent sampler 'gauss'; choose from normal, rademacher, standard_basis"),
    ]:
        with pytest.raises(UsageError) as exc:
            parse_sampler(bad)
        assert words in str(exc.value)
    with pytest.raises(UsageError, match="number of tangents K must be a positive integer, got 0"):
        sample_tangents("normal", 0, 4)
    with pytest.raises(UsageError, match="dimension n must be a positive integer, got 0"):
        sample_tangents("normal", 2, 0)


def test_normalize_and_resampling_of_a_single_deficient_draw():
    V = sample_tangents("rademacher", 3, 16, generator=gen(7), normalize=True, dtype=torch.float64, shape=(2,))
    assert torch.allclose(V.norm(dim=-1), torch.ones(2, 3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(V.abs(), torch.full_like(V, 0.25))
    for seed in range(40):  # one 2x2 rademacher draw is singular half the time: each such draw must be redrawn
        W = sample_tangents("rademacher", 2, 2, generator=gen(seed), resample_rank_deficient=True, shape=(1,))
        assert int(torch.linalg.matrix_rank(W[0].double())) == 2


def test_angle_sampler_follows_its_definition():
    """DESIGN.md §3.1: v_1 kept; v_i <- cos t v_1 + sin t unit(v_i - (v_i.v_1)v_1), all from the generator."""
    k, n, theta = 4, 10, 40.0
    V = sample_tangents(f"specific_angle_{theta:g}", k, n, generator=gen(8), dtype=torch.float64)
    raw = torch.randn(k, n, generator=gen(8), dtype=torch.float64)
    raw = raw / raw.norm(dim=1, keepdim=True)
    v1, rest = raw[0], raw[1:]
    ortho = rest - (rest @ v1)[:, None] * v1
    ortho = ortho / ortho.norm(dim=1, keepdim=True)
    t = math.radians(theta)
    assert torch.allclose(V, torch.cat([v1[None], math.cos(t) * v1 + math.sin(t) * ortho]), atol=1e-12)


def test_resampling_uses_only_the_run_generator():
    global_state = torch.get_rng_state()
    draws = [
        sample_tangents("rademacher", 2, 2, generator=gen(9), resample_rank_deficient=True, shape=(50,))
        for _ in range(2)
    ]
    assert torch.equal(*draws) and (torch.linalg.matrix_rank(draws[0].double()) == 2).all()
    assert torch.equal(torch.get_rng_state(), global_state), "resampling consumed the global RNG"


@pytest.mark.gpu
@pytest.mark.parametrize("name", SAMPLERS)
def test_samplers_draw_on_the_requested_device(name):
    """Tangents are created on the estimator's device (no host copy); the resampled ones too."""
    V = sample_tangents(name, 3, 7, generator=torch.Generator(device="cuda").manual_seed(1), device="cuda",
                        resample_rank_deficient=True, shape=(2,))  # fmt: skip
    assert V.device.type == "cuda"
    assert sample_tangents(name, 3, 7, device="cuda").device.type == "cuda"
