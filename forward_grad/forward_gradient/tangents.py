"""Tangent samplers for multi-tangent forward gradients (DESIGN.md §3.1; Flügel et al. 2410.17764, sec. 3, 4.3).

Symbols: n the dimension of the perturbed quantity, K the number of tangents, V the K x n tangent matrix (rows v_i),
theta the angle (degrees) of the `specific_angle_<theta>` sampler, L the maximal length of `varying_length_<L>`.

Every sampler draws from an explicit torch.Generator, so the global RNG is never touched. None orthogonalizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from common.cli import UsageError

__all__ = ["SamplerSpec", "parse_sampler", "sample_tangents", "SAMPLER_NAMES"]

SAMPLER_NAMES = ("normal", "rademacher", "standard_basis", "eye", "specific_angle_<theta>", "varying_length_<L>")
MAX_RESAMPLES = 10


@dataclass(frozen=True)
class SamplerSpec:
    """A parsed sampler name: kind in {normal, rademacher, standard_basis, specific_angle, varying_length}."""

    kind: str
    param: float | None = None

    @property
    def name(self) -> str:
        if self.kind == "specific_angle":
            return f"specific_angle_{self.param:g}"
        if self.kind == "varying_length":
            return f"varying_length_{self.param:g}"
        return self.kind


def parse_sampler(name: str) -> SamplerSpec:
    """Parse a sampler name of DESIGN.md §3.1; raises UsageError naming an unknown name or a bad parameter."""
    if name in ("normal", "rademacher", "standard_basis"):
        return SamplerSpec(name)
    if name == "eye":
        return SamplerSpec("standard_basis")
    for prefix in ("specific_angle_", "varying_length_"):
        if name.startswith(prefix):
            raw = name[len(prefix) :]
            try:
                value = float(raw)
            except ValueError:
                raise UsageError(f"tangent sampler {name!r}: parameter {raw!r} is not a number") from None
            if prefix == "specific_angle_" and not (0.0 < value <= 90.0):
                raise UsageError(f"tangent sampler {name!r}: angle theta must lie in (0, 90] degrees, got {value:g}")
            if prefix == "varying_length_" and not (value >= 1.0):
                raise UsageError(f"tangent sampler {name!r}: maximal length L must be >= 1, got {value:g}")
            return SamplerSpec(prefix[:-1], value)
    raise UsageError(f"unknown tangent sampler {name!r}; choose from {', '.join(SAMPLER_NAMES)}")


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)


def _angle_tangents(k, n, theta_deg, shape, generator, dtype, device):
    """K unit tangents, each v_i (i > 1) at angle theta to v_1 (DESIGN.md §3.1, paper sec. 4.3)."""
    v = _unit(torch.randn(*shape, k, n, generator=generator, dtype=dtype, device=device))
    v1 = v[..., :1, :]
    rest = v[..., 1:, :]
    ortho = _unit(rest - (rest * v1).sum(-1, keepdim=True) * v1)
    theta = math.radians(theta_deg)
    rotated = math.cos(theta) * v1 + math.sin(theta) * ortho
    return torch.cat([v1, rotated], dim=-2)


def _draw(spec: SamplerSpec, k, n, shape, generator, dtype, device) -> torch.Tensor:
    if spec.kind == "normal":
        return torch.randn(*shape, k, n, generator=generator, dtype=dtype, device=device)
    if spec.kind == "rademacher":
        bits = torch.randint(0, 2, (*shape, k, n), generator=generator, device=device)
        return (2 * bits - 1).to(dtype)
    if spec.kind == "standard_basis":
        eye = torch.eye(k, n, dtype=dtype, device=device)
        return eye.expand(*shape, k, n).clone()
    if spec.kind == "specific_angle":
        return _angle_tangents(k, n, spec.param, shape, generator, dtype, device)
    if spec.kind == "varying_length":
        count = math.prod(shape) if shape else 1
        out = torch.zeros(count, k, n, dtype=dtype, device=device)
        rows = torch.arange(k, device=device)
        for s in range(count):
            axes = torch.randperm(n, generator=generator, device=device)[:k]
            lengths = 1.0 + (spec.param - 1.0) * torch.rand(k, generator=generator, dtype=dtype, device=device)
            out[s, rows, axes] = lengths
        return out.reshape(*shape, k, n)
    raise UsageError(f"unknown sampler kind {spec.kind!r}")


def sample_tangents(
    sampler: str | SamplerSpec,
    k: int,
    n: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    normalize: bool = False,
    resample_rank_deficient: bool = False,
    shape: tuple[int, ...] = (),
) -> torch.Tensor:
    """Draw tangents V of shape (*shape, K, n) with the sampler of DESIGN.md §3.1.

    normalize divides each tangent by its norm; resample_rank_deficient redraws (at most 10 times) while
    rank(V) < min(K, n). K > n is valid for normal/rademacher/angle tangents (frog then returns the exact gradient);
    standard_basis and varying_length need K <= n distinct axes.
    """
    spec = parse_sampler(sampler) if isinstance(sampler, str) else sampler
    if int(k) != k or k <= 0:
        raise UsageError(f"number of tangents K must be a positive integer, got {k}")
    if int(n) != n or n <= 0:
        raise UsageError(f"dimension n must be a positive integer, got {n}")
    if spec.kind in ("standard_basis", "varying_length") and k > n:
        raise UsageError(f"tangent sampler {spec.name!r} needs K <= n, got K={k} > n={n}")
    if generator is None:
        generator = torch.Generator(device=device).manual_seed(0)
    v = _draw(spec, k, n, shape, generator, dtype, device)
    if resample_rank_deficient and spec.kind in ("normal", "rademacher"):
        flat = v.reshape(-1, k, n)
        for _ in range(MAX_RESAMPLES):
            low = torch.linalg.matrix_rank(flat.to(torch.float64)) < min(k, n)
            count = int(low.sum())
            if count == 0:
                break
            flat[low] = _draw(spec, k, n, (count,), generator, dtype, device)
        v = flat.reshape(v.shape)
    if normalize:
        v = _unit(v)
    return v
