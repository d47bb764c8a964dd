"""DESIGN.md §7.12: GP numerics against gpytorch, p_r against the full-covariance projection, clip."""

from __future__ import annotations

import dataclasses
import math
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


def _history(n=240, seed=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.arange(n, dtype=torch.float64) / n
    return 2.0 + 0.4 * (x - 0.7) ** 2 / 0.1 + 0.05 * torch.randn(n, generator=g, dtype=torch.float64)


def test_neg_mll_matches_gpytorch():
    """The fit's objective is gpytorch's exact marginal log likelihood per point, negated (DESIGN.md §3.2)."""
    from autowu.gp_test import _neg_mll

    x, y = _data(n=120, seed=2)
    c, os_, noise = 2.3, 0.41, 2e-3
    lik = gpytorch.likelihoods.GaussianLikelihood(noise_constraint=gpytorch.constraints.GreaterThan(1e-4)).double()
    lik.noise = noise
    model = ExactGPModel(x, y, lik, 0.2).double()
    model.mean_module.constant.data.fill_(c)
    model.covar_module.outputscale = os_
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(lik, model)
    model.train()
    lik.train()
    with torch.no_grad(), gpytorch.settings.fast_computations(False, False, False):
        ref = -float(mll(model(x), y))
    ours = float(_neg_mll(x, y, torch.tensor(c), torch.tensor(os_), torch.tensor(noise), 0.2))
    assert abs(ours - ref) <= 1e-7 * abs(ref), (ours, ref)  # gpytorch adds a Cholesky jitter of order 1e-8


def test_initial_hyperparameters_and_clip_bounds():
    """sigma_f^2 starts at log 2, sigma_n^2 at 1e-3; the clip keeps [1e-6, 1e4] and [1e-8, 1e4] + floor."""
    import math

    from autowu.gp_test import inv_softplus

    t = GPTest(GPConfig())
    assert t.outputscale == pytest.approx(math.log(2.0), rel=1e-15) and t.noise == pytest.approx(1e-3, rel=1e-12)
    assert float(t.raw_c) == 0.0
    for raw_os, raw_noise, os_, nz in ((-60.0, -60.0, 1e-6, 1e-8 + 1e-4), (1e5, 1e5, 1e4, 1e4 + 1e-4)):
        t.raw_os.fill_(raw_os)
        t.raw_noise.fill_(raw_noise)
        t._clip()
        assert t.outputscale == pytest.approx(os_, rel=1e-9) and t.noise == pytest.approx(nz, rel=1e-9)
    t.raw_os.fill_(inv_softplus(0.5))
    t.raw_noise.fill_(inv_softplus(0.01))
    t._clip()  # inside the bounds: untouched
    assert t.outputscale == pytest.approx(0.5, rel=1e-12) and t.noise == pytest.approx(0.01 + 1e-4, rel=1e-12)


# Fitted (c, sigma_f^2, sigma_n^2) after a first and a second (warm-started) test on a fixed history, recorded from
# this implementation (its bowl switches agree with the reference procedure, DESIGN.md §7.17). A change of the fit's
# objective, optimiser settings, warm start or subsample draws moves them.
GOLDEN = {
    ("lbfgs", None): (
        (2.7369854392819692, 0.6134329261063359, 0.0030080569502854856),
        (2.5472624863693683, 0.6856610400377908, 0.06364536421000017),
    ),
    ("adam", 20): (
        (2.683513688964121, 0.5981157270485693, 0.001195511920760143),
        (2.7236085872739326, 0.7001010245040044, 0.0014660507907933028),
    ),
}


@pytest.mark.parametrize(("fit", "iters"), list(GOLDEN))
def test_fit_is_pinned(fit, iters):
    t = GPTest(GPConfig(gp_fit=fit, gp_fit_iters=iters))
    y = _history()
    first = t(y, torch.ones_like(y, dtype=torch.bool))
    y2 = torch.cat([y, _history(60, 4)])
    second = t(y2, torch.ones_like(y2, dtype=torch.bool))
    for out, expected in zip((first, second), GOLDEN[(fit, iters)]):
        assert (out.c, out.outputscale, out.noise) == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize(("fit", "iters"), [("lbfgs", None), ("adam", 5)])
def test_state_round_trip_gives_the_same_next_test(fit, iters):
    """GPTest.state_dict (weights_only) carries generator, hyperparameters and Adam moments (DESIGN.md §3.5)."""
    import io

    cfg = GPConfig(gp_fit=fit, gp_fit_iters=iters, fit_points=50, pred_points=120)
    y = _history(200)
    a = GPTest(cfg)
    a(y, torch.ones_like(y, dtype=torch.bool))
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = GPTest(cfg)
    b.load_state_dict(torch.load(buf, weights_only=True))
    y2 = torch.cat([y, _history(40, 5)])
    out_a, out_b = (t(y2, torch.ones_like(y2, dtype=torch.bool)) for t in (a, b))
    assert out_a[:-1] == out_b[:-1]  # everything but the seconds
    assert ("adam" in a.state_dict()) == (fit == "adam")


# ---- validation, draws, failure paths (mutation testing found these unpinned) ------------------------------------
@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"lengthscale": 0.0}, "lengthscale"),
        ({"confidence": 0.0}, "confidence"),
        ({"confidence": 1.0}, "confidence"),
        ({"n_preds": 0, "votes": 0}, "n_preds"),
        ({"fit_points": 0}, "fit_points"),
        ({"pred_points": 0}, "pred_points"),
        ({"votes": 0}, "votes"),
        ({"votes": 6}, "votes"),
        ({"grid_size": 1}, "grid_size"),
        ({"gp_fit": "sgd"}, "gp_fit"),
        ({"gp_fit_iters": 0}, "gp_fit_iters"),
    ],
)
def test_gpconfig_rejects_and_names(kw, name):
    with pytest.raises(ValueError, match=f"{name}.*got"):
        GPConfig(**kw)


def test_gpconfig_accepts_the_boundaries_and_normalises_types():
    cfg = GPConfig(
        lengthscale=1e-9, confidence=1e-9, n_preds=1, votes=1, fit_points=1, pred_points=1, grid_size=2, gp_fit_iters=1
    )
    assert (cfg.votes, cfg.grid_size, cfg.gp_fit_iters) == (1, 2, 1)
    assert GPConfig(gp_fit="adam").fit_iters == 100 and GPConfig().fit_iters == 5
    cfg = GPConfig(gp_fit_iters=3.0, votes=2.0, lengthscale=1, seed=True)
    assert type(cfg.gp_fit_iters) is int and type(cfg.votes) is int and type(cfg.lengthscale) is float
    assert type(cfg.seed) is int and cfg == GPConfig(gp_fit_iters=3, votes=2, lengthscale=1.0, seed=1)


def test_subsample_is_a_sorted_draw_without_replacement():
    from autowu.gp_test import subsample

    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    idx = subsample(50, 20, g1)
    ref = torch.multinomial(torch.ones(50, dtype=torch.float32), 20, replacement=False, generator=g2).sort().values
    assert torch.equal(idx, ref) and idx.unique().numel() == 20
    assert subsample(20, 20, g1) is None


@pytest.mark.parametrize("nv", [20, 21])
def test_predictions_use_the_drawn_subsets(nv):
    """One fit draw when n_valid > fit_points; prediction draws only when n_valid > pred_points; p_r on that subset."""
    from autowu.gp_test import subsample

    cfg = GPConfig(fit_points=10, pred_points=20)
    y = _history(nv)
    out = GPTest(cfg)(y, torch.ones(nv, dtype=torch.bool))
    g = torch.Generator().manual_seed(0)
    x = torch.arange(nv, dtype=torch.float64) / nv
    assert subsample(nv, 10, g) is not None  # the fit's draw
    grid = torch.linspace(0, 1, 500, dtype=torch.float64)
    expected_p, expected_z = [], []
    for _ in range(1 if nv <= 20 else 5):
        idx = subsample(nv, 20, g)
        xs, ys = (x, y) if idx is None else (x[idx], y[idx])
        mu, diag, col = posterior_parts(xs, ys, grid, out.c, out.outputscale, out.noise, 0.2)
        expected_p.append(min_in_past_prob(mu, diag, col, 1e-4))
        expected_z.append(float(grid[int(torch.argmin(mu))]))
    if nv <= 20:
        expected_p, expected_z = expected_p * 5, expected_z * 5
    assert out.probs == pytest.approx(tuple(expected_p), rel=1e-12) and out.z_star == tuple(expected_z)
    assert (out.n, out.n_valid, out.failures) == (nv, nv, 0)


def test_three_valid_points_run_the_test_two_do_not():
    t = GPTest(GPConfig())
    y = torch.tensor([2.0, float("nan"), 1.5, 1.2], dtype=torch.float64)
    out = t(y, torch.isfinite(y))
    assert len(out.probs) == 5 and (out.n, out.n_valid) == (4, 3)
    y = torch.tensor([2.0, float("nan"), 1.5, float("inf")], dtype=torch.float64)
    out = GPTest(GPConfig())(y, torch.isfinite(y))
    assert out.probs == () and out.z_star == () and out.verdict is False and out.votes == 0
    assert (out.n, out.n_valid, out.failures, out.c) == (4, 2, 0, 0.0)
    assert out.outputscale == pytest.approx(0.6931471805599453) and out.noise == pytest.approx(1e-3)
    assert 0.0 <= out.seconds < 60.0


def test_failed_posterior_is_a_negative_vote_with_a_warning(monkeypatch):
    import autowu.gp_test as gp

    seen = []

    def failing(*a, **k):
        seen.append(torch.get_num_threads())
        return None

    monkeypatch.setattr(gp, "posterior_parts", failing)
    y = _history(60)
    with pytest.warns(UserWarning, match="^AutoWU GP posterior: Cholesky failed after jitter; negative vote$"):
        out = GPTest(GPConfig())(y, torch.ones(60, dtype=torch.bool))
    assert seen == [1], "one thread inside the test, and the five coinciding predictions are computed once"
    assert out.failures == 5 and out.votes == 0 and out.verdict is False
    assert all(math.isnan(p) for p in out.probs) and all(math.isnan(z) for z in out.z_star) and len(out.probs) == 5


def test_cholesky_jitter_and_give_up():
    from autowu.gp_test import _cholesky

    v = torch.tensor([[1.0], [1.0], [2.0]], dtype=torch.float64)
    singular = v @ v.T  # rank 1: the plain factorisation fails, jitter 1e-10 * scale succeeds
    chol = _cholesky(singular, 10.0)
    assert chol is not None
    jittered = singular + 1e-9 * torch.eye(3, dtype=torch.float64)
    assert torch.allclose(chol @ chol.T, jittered, rtol=0, atol=1e-12)
    indefinite = torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))
    assert _cholesky(indefinite, 1.0) is None
    pd = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    assert torch.equal(_cholesky(pd, 1.0), torch.linalg.cholesky(pd))


def test_failed_posteriors_count_per_prediction(monkeypatch):
    """With n_valid > pred_points every prediction is drawn and computed: five failures, five NaN votes."""
    import autowu.gp_test as gp

    monkeypatch.setattr(gp, "posterior_parts", lambda *a, **k: None)
    y = _history(60)
    with pytest.warns(UserWarning):
        out = GPTest(GPConfig(fit_points=20, pred_points=30))(y, torch.ones(60, dtype=torch.bool))
    assert out.failures == 5 and len(out.probs) == 5 and out.votes == 0


def test_failed_fit_keeps_the_previous_hyperparameters(monkeypatch):
    import autowu.gp_test as gp

    def boom(*a, **k):
        raise FloatingPointError("GP fit: Cholesky failed")

    monkeypatch.setattr(gp, "_neg_mll", boom)
    t = GPTest(GPConfig())
    y = _history(80)
    with pytest.warns(UserWarning, match=r"^AutoWU GP fit failed \(GP fit: Cholesky failed\); keeping the previous"):
        out = t(y, torch.ones(80, dtype=torch.bool))
    assert out.outputscale == pytest.approx(0.6931471805599453) and out.noise == pytest.approx(1e-3)
    assert out.c == pytest.approx(float(y.mean()), rel=1e-15) and len(out.probs) == 5


def test_fit_without_a_draw_and_clip_only_in_lbfgs(monkeypatch):
    """n_valid <= fit_points fits on every point (no warning); the clip applies to the L-BFGS fit only."""
    y = _history(80)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = GPTest(GPConfig())(y, torch.ones(80, dtype=torch.bool))
    assert out.outputscale != pytest.approx(0.6931471805599453, rel=1e-6), "the fit moved sigma_f^2"
    assert 0.0 <= out.seconds < 60.0
    seen = []
    orig = GPTest._fit

    def spy(self, x, yy):
        seen.append(self.outputscale)
        return orig(self, x, yy)

    monkeypatch.setattr(GPTest, "_fit", spy)
    for fit in ("lbfgs", "adam"):
        t = GPTest(GPConfig(gp_fit=fit, gp_fit_iters=2))
        t.raw_os.fill_(-60.0)  # sigma_f^2 ~ 1e-26
        t(y, torch.ones(80, dtype=torch.bool))
    assert seen[0] == pytest.approx(1e-6, rel=1e-9) and seen[1] < 1e-20


def test_gp_state_keys():
    assert set(GPTest(GPConfig()).state_dict()) == {"config", "generator", "raw_c", "raw_os", "raw_noise"}
    assert GPTest(GPConfig()).state_dict()["config"] == dataclasses.asdict(GPConfig())


def test_flat_history_fit_keeps_the_outputscale_off_zero():
    """DESIGN.md §3.2: the strong-Wolfe search bounds L-BFGS's steps. On a flat history (2 + 1e-7 eps, 100 points)
    one fit leaves s_f^2 near 5e-6; unit steps without the search drive it to ~1e-62, where no later test fires."""
    g = torch.Generator().manual_seed(0)
    y = 2 + 1e-7 * torch.randn(100, generator=g, dtype=torch.float64)
    out = GPTest(GPConfig())(y, torch.ones(100, dtype=torch.bool))
    assert 1e-6 < out.outputscale < 1e-5, out.outputscale


def _gauss_nll(y, c, cov):
    """-log N(y; c, cov) / m from torch.distributions, independent of gp_test's Cholesky code."""
    mvn = torch.distributions.MultivariateNormal(torch.full_like(y, c), covariance_matrix=cov)
    return -float(mvn.log_prob(y)) / y.numel()


def test_neg_mll_jitters_a_singular_covariance():
    """Five equal inputs and zero noise: A = s_f^2 11^T is singular, the first jitter 1e-10 (s_f^2 + s_n^2) fixes it."""
    from autowu.gp_test import _neg_mll

    x = torch.zeros(5, dtype=torch.float64)
    y = torch.tensor([1.0, 1.2, 0.9, 1.1, 1.05], dtype=torch.float64)
    os_, nz = torch.tensor(1e6, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    got = float(_neg_mll(x, y, 1.0, os_, nz, 0.2))
    cov = 1e6 * torch.ones(5, 5, dtype=torch.float64) + 1e-4 * torch.eye(5, dtype=torch.float64)
    assert got == pytest.approx(_gauss_nll(y, 1.0, cov), rel=1e-9)
    with pytest.raises(FloatingPointError, match="^GP fit: Cholesky failed$"):
        _neg_mll(x, y, 1.0, os_, torch.tensor(-1.0, dtype=torch.float64), 0.2)


def test_posterior_parts_jitter_a_singular_covariance():
    """Four equal inputs, s_f^2 = 1, zero noise: the posterior of A = 11^T + d I with d = 1e-10 (s_f^2 + s_n^2), in
    closed form by Sherman-Morrison (A^-1 1 = 1 / (n + d)): mu_j = c + k_j 1^T r / (n + d),
    Sigma_jl = k(z_j, z_l) - k_j k_l n / (n + d), with k_j = k(z_j, 0)."""
    x = torch.zeros(4, dtype=torch.float64)
    y = torch.tensor([1.0, 1.2, 0.9, 1.1], dtype=torch.float64)
    z = torch.linspace(0, 1, 7, dtype=torch.float64)
    mu, diag, col = posterior_parts(x, y, z, 1.0, 1.0, 0.0, 0.2)
    d, n = 1e-10, 4
    k = torch.exp(-(z**2) / 0.08)
    kzz = torch.exp(-((z[:, None] - z[None, :]) ** 2) / 0.08)
    cov = kzz - k[:, None] * k[None, :] * n / (n + d)
    assert torch.allclose(mu, 1.0 + k * float((y - 1.0).sum()) / (n + d), rtol=1e-6, atol=0)  # cond(A) ~ 4e10
    assert torch.allclose(diag, torch.diagonal(cov), rtol=0, atol=1e-9)
    assert torch.allclose(col, cov[:, -1], rtol=0, atol=1e-9)


def test_posterior_jitter_scales_with_the_variances():
    """A = 1e6 11^T - I has eigenvalue -1: the largest jitter, 1e-6 (s_f^2 + s_n^2) = 0.999999, cannot repair it."""
    x = torch.zeros(4, dtype=torch.float64)
    y = torch.tensor([1.0, 1.2, 0.9, 1.1], dtype=torch.float64)
    assert posterior_parts(x, y, torch.linspace(0, 1, 5, dtype=torch.float64), 1.0, 1e6, -1.0, 0.2) is None
