"""The AutoWU decision logic where it is sharp (DESIGN.md §3.2): p strictly between the confidence and 1, checked
against gpytorch's full posterior covariance as an oracle; votes and patience exactly at their thresholds.

The GP fixtures of test_gp.py saturate p at 1.0, where Var(f_j - f_K) hardly matters; here the minimum of the curve
lies just before "now", so the winning j is close to K, Sigma_jK is large and p sits near 0.97-0.99.
"""

from __future__ import annotations

import math
import warnings

import gpytorch
import pytest
import torch

import autowu.gp_test as gp_test
from autowu import AutoWU
from autowu.gp_test import GPConfig, GPTest, min_in_past_prob, posterior_parts
from autowu.gp_test import TestOutcome as Outcome
from autowu.reference import ExactGPModel

GRID = torch.linspace(0.0, 1.0, 500, dtype=torch.float64)


def _recent_minimum(n=200, depth=0.05, noise=0.05, xmin=0.95, seed=0):
    """x_i = i/n and a shallow bowl whose minimum lies at xmin, just before the last point, plus Gaussian noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.arange(n, dtype=torch.float64) / n
    y = 2.0 + depth * (x - xmin) ** 2 / 0.1 + noise * torch.randn(n, generator=g, dtype=torch.float64)
    return x, y


def _oracle_p(x, y, c, outputscale, noise, lengthscale=0.2, var_floor=1e-4):
    """p from gpytorch's posterior (float64, full 500 x 500 covariance) tested through P = [I_{K} | -1]."""
    lik = gpytorch.likelihoods.GaussianLikelihood(noise_constraint=gpytorch.constraints.GreaterThan(1e-4)).double()
    lik.noise = noise
    model = ExactGPModel(x, y, lik, lengthscale).double()
    model.mean_module.constant.data.fill_(c)
    model.covar_module.outputscale = outputscale
    model.eval()
    lik.eval()
    with torch.no_grad(), gpytorch.settings.fast_computations(False, False, False):
        post = model(GRID)
        mu, cov = post.mean, post.covariance_matrix
    k = GRID.shape[0] - 1
    proj = torch.cat([torch.eye(k, dtype=torch.float64), -torch.ones(k, 1, dtype=torch.float64)], 1)
    var = torch.diagonal(proj @ cov @ proj.T) + var_floor
    return float(torch.special.ndtr(-(proj @ mu) / var.sqrt()).max())


@pytest.mark.parametrize(
    ("depth", "noise", "xmin", "os_"),
    [(0.05, 0.05, 0.95, 0.08), (0.1, 0.05, 0.95, 0.12), (0.05, 0.05, 0.97, 0.08), (0.02, 0.05, 0.95, 0.3)],
)
def test_p_between_confidence_and_one_matches_gpytorch(depth, noise, xmin, os_):
    """Closed-form p (mu, diag, column K only) equals the oracle where the variance term decides p."""
    x, y = _recent_minimum(depth=depth, noise=noise, xmin=xmin)
    c, nz = float(y.mean()), noise**2
    p_oracle = _oracle_p(x, y, c, os_, nz)
    assert 0.95 < p_oracle < 0.999, f"fixture must not saturate: p = {p_oracle}"
    mu, diag, col = posterior_parts(x, y, GRID, c, os_, nz, 0.2)
    p = min_in_past_prob(mu, diag, col, 1e-4)
    assert abs(p - p_oracle) <= 1e-8 * p_oracle, f"p = {p!r}, gpytorch oracle {p_oracle!r}"


def test_p_below_confidence_matches_gpytorch():
    x, y = _recent_minimum(depth=0.1, noise=0.05, xmin=0.97)
    c, os_, nz = float(y.mean()), 0.3, 0.05**2
    p_oracle = _oracle_p(x, y, c, os_, nz)
    assert 0.5 < p_oracle < 0.95, f"fixture must sit below the confidence: p = {p_oracle}"
    p = min_in_past_prob(*posterior_parts(x, y, GRID, c, os_, nz, 0.2), 1e-4)
    assert abs(p - p_oracle) <= 1e-8 * p_oracle


@pytest.mark.parametrize(("xmin", "depth"), [(0.95, 0.05), (0.97, 0.05), (0.95, 0.1)])
def test_gptest_probabilities_match_oracle_at_fitted_hyperparameters(xmin, depth):
    """End to end through GPTest: each p_r equals the oracle evaluated at the hyperparameters the test fitted."""
    x, y = _recent_minimum(depth=depth, xmin=xmin)
    out = GPTest(GPConfig())(y, torch.ones_like(y, dtype=torch.bool))
    p_oracle = _oracle_p(x, y, out.c, out.outputscale, out.noise)
    assert 0.95 < p_oracle < 0.9999, f"fixture must not saturate: p = {p_oracle}"
    assert len(out.probs) == 5 and all(abs(p - p_oracle) <= 1e-8 * p_oracle for p in out.probs), (
        out.probs,
        p_oracle,
    )
    assert out.votes == 5 and out.verdict


# ---- votes and confidence exactly at their thresholds ----------------------------------------------------------------
def _scripted_probs(monkeypatch, probs):
    """GPTest with min_in_past_prob returning `probs` in turn (n_valid > pred_points, so five distinct repeats)."""
    seq = iter(probs)
    monkeypatch.setattr(gp_test, "min_in_past_prob", lambda *a, **k: next(seq))
    y = 2.0 + torch.linspace(0, 1, 600, dtype=torch.float64) ** 2
    return GPTest(GPConfig())(y, torch.ones(600, dtype=torch.bool))


@pytest.mark.parametrize(
    ("probs", "votes", "verdict"),
    [
        ((0.96, 0.97, 0.951, 0.5, 0.1), 3, True),  # exactly `votes` = 3 positive repeats: positive verdict
        ((0.96, 0.97, 0.95, 0.5, 0.1), 2, False),  # p == confidence is not a vote (p_r > confidence)
        ((0.99, 0.99, 0.2, 0.2, 0.2), 2, False),  # one vote short
        ((0.99,) * 5, 5, True),
    ],
)
def test_vote_threshold(monkeypatch, probs, votes, verdict):
    out = _scripted_probs(monkeypatch, probs)
    assert out.probs == probs and out.votes == votes and out.verdict is verdict


@pytest.mark.parametrize(("needed", "verdict"), [(5, True), (4, True)])
def test_votes_equal_to_n_preds(needed, verdict):
    """n_valid <= pred_points: the five repeats coincide; votes = n_preds = 5 still passes `>= votes`."""
    x, y = _recent_minimum(depth=0.05, xmin=0.95)
    out = GPTest(GPConfig(votes=needed))(y, torch.ones_like(y, dtype=torch.bool))
    assert out.votes == 5 and out.verdict is verdict


# ---- patience in the scheduler -------------------------------------------------------------------------------------
class ScriptedTest:
    """A drop-in test object (test_factory) whose verdicts and minimisers come from a script."""

    def __init__(self, verdicts, z_star=0.5, n_preds=5):
        self.verdicts, self.z_star, self.n_preds, self.calls = list(verdicts), z_star, n_preds, 0

    def __call__(self, y, valid):
        v = self.verdicts[self.calls]
        self.calls += 1
        p = 0.99 if v else 0.5
        n = int(y.shape[0])
        return Outcome(
            (p,) * self.n_preds, (self.z_star,) * self.n_preds, 5 if v else 0, v, 0.0, 1.0, 1.0, n, n, 0, 0.0
        )

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, st):
        self.calls = st["calls"]


def _drive(verdicts, steps, patience=3, z_star=0.5):
    script = ScriptedTest(verdicts, z_star)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = AutoWU(opt, 10, 20, patience=patience, test_factory=lambda cfg: script)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(steps):
            sched.step(1.0)
    return sched


@pytest.mark.parametrize(
    ("verdicts", "switch"),
    [
        ([True, True, False, True, True, True, False, False, False], 60),  # the 3rd positive in a row at test 6
        ([False, True, True, True, False, False, False, False, False], 40),
        ([True, True, False, True, True, False, True, True, False], 100),  # never 3 in a row: the cap W = 100
    ],
)
def test_switch_needs_patience_positive_tests_in_a_row(verdicts, switch):
    sched = _drive(verdicts, 100)
    assert sched.switch_step == switch
    assert sched.switch_reason == ("test" if switch < 100 else "max_warmup")


def test_switch_lr_is_the_ramp_at_the_estimated_minimum():
    """eta_sw = eta_min (eta_now / eta_min)^{z*} with eta_now = lr_k at the switching test (DESIGN.md §3.2)."""
    sched = _drive([True] * 9, 30, z_star=0.25)
    now = sched.lr_at(30)
    assert sched.switch_step == 30 and sched.peak_lr == now
    assert sched.switch_lr == pytest.approx(1e-5 * (now / 1e-5) ** 0.25, rel=1e-12)


@pytest.mark.parametrize("patience", [1, 2, 4])
def test_patience_setting(patience):
    sched = _drive([True] * 9, 100, patience=patience)
    assert sched.switch_step == 10 * patience


# ---- the middle phase's plateau logic against torch's ReduceLROnPlateau -------------------------------------------
def _plateau_losses(epochs, s):
    """Per-step positive losses whose epoch means improve, stall, improve below the 1e-4 threshold, and stall."""
    means = []
    level = 1.0
    for e in range(epochs):
        phase = (e // 9) % 3
        if phase == 0:
            level *= 0.97  # clear improvement
        elif phase == 1:
            level *= 1 - 5e-5  # improvement below the relative threshold: a bad epoch
        means.append(level)  # phase 2: flat
    return [m + (0.01 if i % 2 else -0.01) for m in means for i in range(s)]


@pytest.mark.parametrize("factor", [0.5, 0.9])
def test_plateau_reductions_match_torch_reduce_lr_on_plateau(factor):
    """decay_phase_stat='loss': epoch-mean loss, mode min, rel threshold 1e-4, patience 5, factor f (DESIGN.md §3.3)."""
    s, e = 10, 100
    script = ScriptedTest([True] * 40)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = AutoWU(
        opt,
        s,
        e,
        immediate_cooldown=False,
        decay_phase_stat="loss",
        decay_phase_factor=factor,
        test_factory=lambda cfg: script,
    )
    for _ in range(30):  # three positive tests: switch at step 30
        sched.step(1.0)
    assert sched.switch_step == 30 and sched.phase == "decay"
    middle_epochs = (800 - 30) // s  # t_c = 0.8 T = 800
    losses = _plateau_losses(middle_epochs, s)
    ref_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=sched.switch_lr)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref_opt, mode="min", factor=factor, patience=5, threshold=1e-4)
    reductions = 0
    for epoch in range(middle_epochs):
        chunk = losses[epoch * s : (epoch + 1) * s]
        for v in chunk:
            sched.step(v)
        ref.step(sum(chunk) / s)
        if epoch == middle_epochs - 1:
            assert sched.phase == "final", "the cooldown starts at t_c = 800"
            break
        assert sched.get_last_lr()[0] == pytest.approx(ref_opt.param_groups[0]["lr"], rel=1e-12), f"epoch {epoch}"
        reductions = round(math.log(ref_opt.param_groups[0]["lr"] / sched.switch_lr) / math.log(factor))
    assert reductions >= 2, "the fixture must trigger reductions"


# ---- the checkpoint's config block and the fallback at the warmup cap ------------------------------------------------
def test_state_dict_config_block_is_pinned():
    """The config a checkpoint carries (DESIGN.md §3.5): names and values a saved run is compared against on load."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    assert AutoWU(opt, 50, 60).state_dict()["config"] == {
        "steps_per_epoch": 50,
        "total_epochs": 60,
        "total_steps": 3000,
        "warmup_steps": 1500,
        "min_lr": 1e-05,
        "max_lr": 1.0,
        "ramp": 1.0 / 1e-05,
        "warmup_type": "exp",
        "warmup_unit": "step",
        "immediate_cooldown": True,
        "decay_phase_stat": None,
        "decay_phase_factor": 1.0,
        "cooldown_fraction": 0.2,
        "cooldown_type": "cosine",
        "test_interval": 50,
        "patience": 3,
        "on_nonfinite": "switch",
        "divergence_factor": 2.0,
        "fallback_lr": "ramp",
        "num_groups": 1,
        "gp_lengthscale": 0.2,
        "gp_noise_floor": 0.0001,
        "gp_var_floor": 0.0001,
        "gp_fit_points": 100,
        "gp_pred_points": 500,
        "gp_n_preds": 5,
        "gp_grid_size": 500,
        "gp_confidence": 0.95,
        "gp_votes": 3,
        "gp_gp_fit": "lbfgs",
        "gp_gp_fit_iters": None,
        "gp_seed": 0,
    }


@pytest.mark.parametrize(("fallback", "z_star"), [("ramp", 0.25), ("argmin", 0.25), ("argmin", float("nan"))])
def test_fallback_at_the_cap(fallback, z_star):
    """No switch by W: eta_sw = lr_W ('ramp'), or the last test's estimate ('argmin', when finite); one warning."""
    script = ScriptedTest([False] * 20, z_star)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = AutoWU(opt, 10, 20, fallback_lr=fallback, test_factory=lambda cfg: script)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for _ in range(100):
            sched.step(1.0)
    lr_w = sched.lr_at(100)
    last_test_lr = sched.lr_at(90)
    estimate = 1e-5 * (last_test_lr / 1e-5) ** z_star
    expected = estimate if fallback == "argmin" and z_star == z_star else lr_w
    assert sched.switch_step == 100 and sched.switch_reason == "max_warmup" and sched.peak_lr == lr_w
    assert sched.switch_lr == pytest.approx(expected, rel=1e-12)
    msgs = [str(w.message) for w in rec if issubclass(w.category, UserWarning)]
    assert msgs == [
        f"AutoWU: no switch by the warmup cap W=100 (step 100); decaying from lr={expected:.6g} ({fallback})"
    ]
