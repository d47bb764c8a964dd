"""DESIGN.md §7.12: GP numerics against gpytorch, p_r against the full-covariance projection, clip."""

from __future__ import annotations

import warnings

import gpytorch
import pytest
import torch

from autowu.gp_test import GPConfig, GPTest, min_in_past_prob, posterior_parts
from autowu.reference import ExactGPModel
from autowu.synthetic import run_curve


def _data(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, generator=g, dtype=torch.float64).sort().values
    y = 2 + 0.3 * (3 * x - 2) ** 2 + 0.05 * torch.randn(n, generator=g, dtype=torch.float64)
    return x, y


def _gpytorch_posterior(x, y, z, c, os_, noise):
    lik = gpytorch.likelihoods.GaussianLikelihood(noise_constraint=gpytorch.constraints.GreaterThan(1e-4)).double()
    lik.noise = noise
    model = ExactGPModel(x, y, lik, 0.2).double()
    model.mean_module.constant.data.fill_(c)
    model.covar_module.outputscale = os_
    model.eval()
    lik.eval()
    with torch.no_grad(), gpytorch.settings.fast_computations(False, False, False):
        post = model(z)
        return post.mean, post.covariance_matrix


def test_posterior_matches_gpytorch():
    x, y = _data()
    z = torch.linspace(0, 1, 500, dtype=torch.float64)
    c, os_, noise = 2.4, 0.37, 3e-3
    mu_ref, cov_ref = _gpytorch_posterior(x, y, z, c, os_, noise)
    mu, diag, col = posterior_parts(x, y, z, c, os_, noise, 0.2)
    scale = os_  # Sigma = sigma_f^2 - |V|^2 cancels: rel 1e-8 is taken against the prior variance sigma_f^2
    assert torch.allclose(mu, mu_ref, rtol=1e-8, atol=0), "DESIGN.md §7.12: mu matches gpytorch (rel 1e-8)"
    assert torch.allclose(diag, cov_ref.diagonal(), rtol=1e-8, atol=1e-8 * scale), "DESIGN.md §7.12: diag (rel 1e-8)"
    assert torch.allclose(col, cov_ref[:, -1], rtol=1e-8, atol=1e-8 * scale), "DESIGN.md §7.12: column K (rel 1e-8)"


def test_probability_matches_projection_formula():
    x, y = _data(seed=1)
    z = torch.linspace(0, 1, 500, dtype=torch.float64)
    c, os_, noise = 2.4, 0.37, 3e-3
    mu, diag, col = posterior_parts(x, y, z, c, os_, noise, 0.2)
    # the full covariance, formed densely, tested through P = [I_499 | -1]
    kxx = os_ * torch.exp(-((x[:, None] - x[None]) ** 2) / 0.08) + noise * torch.eye(300, dtype=torch.float64)
    kxz = os_ * torch.exp(-((x[:, None] - z[None]) ** 2) / 0.08)
    kzz = os_ * torch.exp(-((z[:, None] - z[None]) ** 2) / 0.08)
    cov = kzz - kxz.T @ torch.linalg.solve(kxx, kxz)
    proj = torch.cat([torch.eye(499, dtype=torch.float64), -torch.ones(499, 1, dtype=torch.float64)], 1)
    d = proj @ mu
    var = torch.diagonal(proj @ cov @ proj.T) + 1e-4
    p_full = float(torch.special.ndtr(-d / var.sqrt()).max())
    p = min_in_past_prob(mu, diag, col, 1e-4)
    assert abs(p - p_full) <= 1e-10 * abs(p_full), f"DESIGN.md §7.12: p = {p} vs projection {p_full} (rel 1e-10)"


def test_few_valid_points_negative_and_failure_is_negative_vote():
    t = GPTest(GPConfig())
    y = torch.tensor([1.0, float("nan"), 2.0], dtype=torch.float64)
    out = t(y, torch.isfinite(y))
    assert not out.verdict and out.votes == 0, "DESIGN.md §3.2: fewer than 3 valid points give a negative verdict"


def test_fit_draw_happens_only_above_fit_points():
    t = GPTest(GPConfig())
    state = t.generator.get_state()
    y = torch.linspace(0, 1, 100, dtype=torch.float64)
    t(y, torch.ones(100, dtype=torch.bool))
    assert torch.equal(t.generator.get_state(), state), "DESIGN.md §3.2: no draw when n_valid <= fit_points"
    y = torch.linspace(0, 1, 101, dtype=torch.float64)
    t(y, torch.ones(101, dtype=torch.bool))
    assert not torch.equal(t.generator.get_state(), state), "DESIGN.md §3.2: the fit draws when n_valid > 100"


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flat_then_bowl_keeps_outputscale(seed):
    seen = []
    orig = GPTest._fit

    def spy(self, x, y):
        seen.append(self.outputscale)
        return orig(self, x, y)

    GPTest._fit = spy
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = run_curve("flat_bowl", 0.05, seed)
    finally:
        GPTest._fit = orig
    assert 900 < res.switch_step <= 1300, (
        f"DESIGN.md §7.12: flat-then-bowl switches in (900, 1300], got {res.switch_step}"
    )
    assert min(seen) >= 1e-6 * (1 - 1e-12), f"DESIGN.md §7.12: sigma_f^2 >= 1e-6 at every fit start, min {min(seen)}"
