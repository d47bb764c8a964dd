"""DESIGN.md §7.4: tangent samplers."""

from __future__ import annotations

import math

import pytest
import torch

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
