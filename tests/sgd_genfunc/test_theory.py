"""DESIGN.md §7.7-7.10 and 7.14: loss-sum identity, renewal, stability (R2), symbolic identities, phases, schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch
from sgd_helpers import all_batches, random_kernel, rel

from sgd_genfunc.problems import power_law_coefficients, power_law_spectrum
from sgd_genfunc.schedules import JacobiScheduleA, JacobiScheduleB, constant
from sgd_genfunc.theory import (
    asymptote_plus1,
    classify_phase,
    critical_alpha,
    full_step,
    gamma,
    is_stable,
    lambda_crit,
    loss_exponent,
    loss_sum,
    mode_matrix,
    propagators,
    renewal_trace,
    sd_run,
    u_tilde,
    v_tilde,
)
from sgd_genfunc.theory import symbolic as sym
from sgd_genfunc.theory.full import full_init
from sgd_genfunc.theory.sd import sd_init, sd_step
from sgd_genfunc.training import ResidualAdam, ResidualSGD, residual_gradient

CONFIGS_77 = [(0.5, 0.0, 1), (1.0, 0.5, 10), (0.8, -0.3, 4)]
TAUS_77 = [1.0, 0.0, -1.0]


def spectral_radius(lam, alpha, beta, gt) -> float:
    return float(torch.linalg.eigvals(mode_matrix(lam, alpha, beta, gt)).abs().max())


def grid_77(N=200, lambda_min=0.0):
    lam = power_law_spectrum(N, 1.5, lambda_min)
    c = power_law_coefficients(N, 1.0)
    rows = [(a, bt, gamma(N, b), tau) for a, bt, b in CONFIGS_77 for tau in TAUS_77]
    return lam, c, rows


def check_loss_sum(N, n_steps, lambda_min):
    lam, c, rows = grid_77(N, lambda_min)
    a, bt, g, tau = (torch.tensor(x, dtype=torch.float64) for x in zip(*rows))
    res = sd_run(lam, c, n_steps, a, bt, g, tau)
    total = res.loss.sum(-1)
    for i, row in enumerate(rows):
        expect = loss_sum(lam, c, *row)
        err = abs(float(total[i]) - expect) / expect
        assert err < 1e-10, f"DESIGN.md §7.7: loss-sum identity (E7), (alpha, beta, gamma, tau)={row}: rel {err:.2e}"
    return len(rows)


def test_loss_sum_identity_fast_variant():
    # derived variant: N = 50 lets every mode decay within 12000 steps (same identity, same tolerance)
    assert check_loss_sum(50, 12_000, 0.0) == 9


@pytest.mark.slow
def test_loss_sum_identity_spec_variant():
    assert check_loss_sum(200, 200_000, 0.0) == 9


def test_renewal_and_series_where_every_mode_map_is_stable():
    lam, c, rows = grid_77()
    checked = 0
    for alpha, beta, g, tau in rows:
        if spectral_radius(lam, alpha, beta, g * tau) >= 1:
            continue
        u, v = propagators(lam, c, alpha, beta, g, tau, n=400)
        S = renewal_trace(u[:201], v[:201])
        ref = sd_run(lam, c, 200, alpha, beta, g, tau).trace
        err = rel(S, ref)
        assert err < 1e-12, f"DESIGN.md §7.7: renewal (E5) vs sd_run S_t, {(alpha, beta, g, tau)}: rel {err:.2e}"
        for z in (0.5, 0.9):
            zs = z ** torch.arange(401, dtype=torch.float64)
            U_ser, V_ser = float((u * zs).sum()), float((v * zs).sum())
            U_gf = float(u_tilde(z, lam, alpha, beta, g, tau))
            V_gf = float(v_tilde(z, lam, c, alpha, beta, g, tau))
            assert abs(U_gf - U_ser) < 1e-10 * max(1, abs(U_ser)), f"DESIGN.md §7.7: U~({z}) vs series, {U_gf} {U_ser}"
            assert abs(V_gf - V_ser) < 1e-10 * max(1, abs(V_ser)), f"DESIGN.md §7.7: V~({z}) vs series, {V_gf} {V_ser}"
        checked += 1
    assert checked >= 3, f"DESIGN.md §7.7: too few stable configs checked ({checked})"


LAM_1000 = power_law_spectrum(1000, 1.5)
R2_GENERAL = [(10, 0.0, 1.9592), (10, 0.5, 2.4779), (10, 0.9, 0.8610), (100, 0.9, 3.5619)]


def test_critical_alpha_closed_form_b1():
    a_c = critical_alpha(LAM_1000, 0.0, 1.0, 1.0)
    expect = 2.0 / float(LAM_1000.sum())
    assert abs(a_c - expect) / expect < 1e-9, f"DESIGN.md §6 R2: alpha_c = 2/Tr K~ = {expect:.6f}, got {a_c:.9f}"
    assert abs(a_c - 0.784577) < 5e-7, f"DESIGN.md §6 R2: alpha_c = 0.784577, got {a_c:.7f}"


@pytest.mark.parametrize("b,beta,expect", R2_GENERAL)
def test_critical_alpha_general_values(b, beta, expect):
    a_c = critical_alpha(LAM_1000, beta, gamma(1000, b), 1.0)
    assert abs(a_c - expect) / expect < 1e-4, f"DESIGN.md §6 R2: alpha_c(b={b}, beta={beta}) = {expect}, got {a_c:.5f}"


def test_critical_alpha_gamma_zero_and_asymptotes():
    for beta in (-0.5, 0.0, 0.7):
        a_c = critical_alpha(LAM_1000, beta, 0.0, 1.0)
        assert abs(a_c - 2 * (1 + beta)) < 1e-12, f"DESIGN.md §7.8: gamma = 0 gives 2(1+beta)/lambda_max, beta={beta}"
    assert abs(lambda_crit(LAM_1000) - 2.1477) < 1e-4, "DESIGN.md §7.8: lambda_crit(k^-1.5, N=1000) = 2.1477"
    g = gamma(1000, 10)
    exact, asym = critical_alpha(LAM_1000, 0.99, g, 1.0), asymptote_plus1(0.99, g, LAM_1000)
    assert abs(asym - 0.09397) < 1e-5 and abs(exact - 0.09322) < 1e-5, f"DESIGN.md §6 R2: {asym:.5f} vs {exact:.5f}"
    assert abs(asym - exact) / exact < 0.01, "DESIGN.md §6 R2: beta -> 1 asymptote within 1% at beta = 0.99"
    betas = np.array([-1.0, 0.0, 1.0])
    assert list(critical_alpha(LAM_1000, betas, g, 1.0) == 0.0) == [True, False, True], "DESIGN.md §3.5: |beta|>=1 -> 0"


def test_is_stable_agrees_with_sd_run():
    lam = power_law_spectrum(200, 1.5)
    c = power_law_coefficients(200, 1.0)
    checked = 0
    for b, beta, tau in [(1, 0.0, 1.0), (4, 0.5, -1.0), (10, -0.3, 0.0), (2, 0.8, 1.0)]:
        g = gamma(200, b)
        a_c = critical_alpha(lam, beta, g, tau)
        for f in (0.7, 1.3):
            stable = is_stable(lam, f * a_c, beta, g, tau)
            L = sd_run(lam, c, 3000, f * a_c, beta, g, tau).loss
            converged = bool(torch.isfinite(L[-1]) and L[-1] < L[0])
            assert stable == (f < 1) == converged, (
                f"DESIGN.md §7.8: is_stable vs sd_run at {f} alpha_c, b={b}, beta={beta}"
            )
            checked += 1
    assert checked == 8


@pytest.mark.slow
def test_r2_sd_converges_below_and_diverges_above_alpha_c():
    rows = [(1, 0.0)] + [(b, beta) for b, beta, _ in R2_GENERAL]
    c = power_law_coefficients(1000, 1.0)
    alphas, betas, gammas = [], [], []
    for b, beta in rows:
        a_c = critical_alpha(LAM_1000, beta, gamma(1000, b), 1.0)
        for f in (0.97, 1.03):
            alphas.append(f * a_c)
            betas.append(beta)
            gammas.append(gamma(1000, b))
    res = sd_run(LAM_1000, c, 20_000, torch.tensor(alphas), torch.tensor(betas), torch.tensor(gammas), 1.0)
    ratio = (res.loss[:, -1] / res.loss[:, 0]).tolist()
    assert ratio[0] < 1, f"DESIGN.md §6 R2: b=1 L_T/L_0 < 1 at 0.97 alpha_c (pilot 0.0107), got {ratio[0]}"
    assert ratio[1] > 10, f"DESIGN.md §6 R2: b=1 L_T/L_0 > 10 at 1.03 alpha_c (pilot 61.7), got {ratio[1]}"
    for i, (b, beta) in enumerate(rows[1:], start=1):
        lo, hi = ratio[2 * i], ratio[2 * i + 1]
        assert lo < 1, f"DESIGN.md §6 R2: converges at 0.97 alpha_c (b={b}, beta={beta}), L_T/L_0 = {lo}"
        assert not math.isfinite(hi) or hi > 1, f"DESIGN.md §6 R2: diverges at 1.03 alpha_c (b={b}, beta={beta}), {hi}"


# --- symbolic (DESIGN.md §7.9) ---------------------------------------------------------------------------------------


def test_symbolic_denominator_numerators_and_factorizations():
    a, b, lam, g, t, z = sym.alpha, sym.beta, sym.lam, sym.gamma, sym.tau, sym.z
    base = 1 + b + b**2 - 2 * a * lam * (1 + b)
    e6 = 1 - z * (base + a**2 * lam**2 * (1 - g * t)) + b * z**2 * (base + a**2 * lam**2 * (1 + g * t)) - b**3 * z**3
    S = sym.mode_denominator_expr()
    assert sp.expand(S - e6) == 0, "DESIGN.md §7.9: S_lambda(z) equals (E6)"
    assert sp.simplify(sym.u_mode_expr() - (1 + b * z) / e6) == 0, "DESIGN.md §7.9: U numerator 1 + beta z"
    v_num = 1 - b * (1 + b) * z + b**3 * z**2 + 2 * a * b * lam * z
    assert sp.simplify(sym.v_mode_expr() - v_num / e6) == 0, "DESIGN.md §7.9: V numerator as (E6)"
    assert sp.expand(S.subs(lam, 0) - (1 - z) * (1 - b * z) * (1 - b**2 * z)) == 0, (
        "DESIGN.md §7.9: lambda=0 factorization"
    )
    D = 2 * (1 - b**2) + a * lam * (t * g * (1 + b) - (1 - b))
    assert sp.expand(S.subs(z, 1) - a * lam * D) == 0, "DESIGN.md §7.9: S_lambda(1) = alpha lambda D_lambda"
    x = sp.Symbol("x")
    assert g not in sp.expand(S.subs(t, x / g)).free_symbols, "DESIGN.md §7.9: gamma, tau enter only via gamma*tau"
    assert sp.expand(sym.at_z1()["D"] - D) == 0, "DESIGN.md §7.9: at_z1 D form"


def test_symbolic_z1_values_match_propagator_sums():
    rng = np.random.default_rng(0)
    U1 = sp.lambdify((sym.alpha, sym.beta, sym.lam, sym.gamma, sym.tau), sym.u_mode_expr().subs(sym.z, 1))
    V1 = sp.lambdify((sym.alpha, sym.beta, sym.lam, sym.gamma, sym.tau), sym.v_mode_expr().subs(sym.z, 1))
    checked = 0
    while checked < 5:
        alpha, beta, lam_v, g, tau = rng.uniform(0.1, 1.0), rng.uniform(-0.6, 0.6), rng.uniform(0.2, 1), 0.5, 1.0
        lam = torch.tensor([lam_v], dtype=torch.float64)
        if spectral_radius(lam, alpha, beta, g * tau) >= 0.97:
            continue
        A = mode_matrix(lam, alpha, beta, g * tau)[0]
        x, y = torch.ones(3, dtype=torch.float64), torch.tensor([1.0, 0, 0], dtype=torch.float64)
        su, sv = 0.0, 0.0
        for _ in range(3000):
            su, sv = su + float(x[0]), sv + float(y[0])
            x, y = A @ x, A @ y
        assert abs(U1(alpha, beta, lam_v, g, tau) - su) < 1e-10 * max(1, abs(su)), "DESIGN.md §7.9: U_k(1) = sum_m"
        assert abs(V1(alpha, beta, lam_v, g, tau) - sv) < 1e-10 * max(1, abs(sv)), "DESIGN.md §7.9: V_k(1) = sum_m"
        checked += 1


def test_symbolic_positivity_grid():
    res = sym.check_positivity(20)
    assert res.checked > 20**4 // 4, f"DESIGN.md §7.9: positivity grid checked only {res.checked} points"
    assert res.violations == 0 and res.min_S > 0, f"DESIGN.md §7.9 / E8: S > 0 and dU/dz >= 0 on the grid: {res}"
    assert any("rlqe" in s for s in sym.redlog_statements())


# --- phases (DESIGN.md §7.10) ---


def test_phase_classifier_and_exponents():
    assert classify_phase(0.9, 1) == classify_phase(1.0, 1) == "divergent", "DESIGN.md §7.10: nu <= 1 divergent"
    assert classify_phase(1.5, 1.9) == "signal", "DESIGN.md §7.10"
    assert classify_phase(1.5, 2.0) == "noise" and classify_phase(2, 5) == "noise", "DESIGN.md §7.10"
    for (nu, kappa), xi in {(1.5, 0.5): 1 / 3, (1.5, 3): 4 / 3, (2, 1): 0.5, (2, 5): 1.5}.items():
        assert loss_exponent(nu, kappa) == pytest.approx(xi, rel=1e-12), f"DESIGN.md §7.10: loss_exponent{(nu, kappa)}"
    assert loss_exponent(1.0, 1.0) == math.inf


# --- schedules and residual optimizers (DESIGN.md §7.14) ---


def test_jacobi_schedules():
    assert JacobiScheduleA(1.0, 1.0, 1.0)(1) == pytest.approx(1.25, rel=1e-15), "DESIGN.md §7.14"
    assert JacobiScheduleB(1.0, 1.0)(1) == pytest.approx(0.25, rel=1e-15), "DESIGN.md §7.14"
    assert JacobiScheduleB(1.0, 1.0)(10**6) > 0.999, "DESIGN.md §7.14"


def test_sd_run_with_callables_equals_hand_loop():
    lam = power_law_spectrum(50, 1.5)
    c = power_law_coefficients(50, 1.0)
    A, B = JacobiScheduleA(0.3), JacobiScheduleB()
    res = sd_run(lam, c, 40, A, B, 0.5, constant(-1.0)).loss
    st = sd_init(c)
    hand = [float(c.sum())]
    for n in range(1, 41):
        st = sd_step(st, lam, A(n), B(n), 0.5, -1.0)
        hand.append(float(st.c.sum()))
    assert rel(res, np.array(hand) / 100) < 1e-14, "DESIGN.md §7.14: sd_run with schedules equals a hand loop"


def test_residual_sgd_batch_average_equals_full_step():
    N, b, alpha = 6, 2, 0.7
    lam, U, K, d0 = random_kernel(N, seed=5)
    outs = []
    for B in all_batches(N, b):
        opt = ResidualSGD(alpha, 0.0)
        d = d0.unsqueeze(0).clone()
        g = residual_gradient(K, d, torch.tensor([B]))
        outs.append(opt.step(d, g, opt.init_state(d), 1)[0])
    D = torch.stack(outs)
    C_mc = D.T @ D / len(outs)
    st = full_step(full_init(lam, U, torch.outer(d0, d0)), lam, U, alpha, 0.0, gamma(N, b))
    C_full = U @ st.C @ U.T
    assert rel(C_mc, C_full) < 1e-12, "DESIGN.md §7.14: ResidualSGD averaged over all batches equals the full step"


def test_residual_adam_equals_hand_adam():
    rng = torch.Generator().manual_seed(0)
    d = torch.randn(3, 8, generator=rng, dtype=torch.float64)
    grads = [torch.randn(3, 8, generator=rng, dtype=torch.float64) for _ in range(5)]
    opt = ResidualAdam(0.1, 0.9, 0.99, 1e-8)
    st = opt.init_state(d)
    ours = d.clone()
    m = torch.zeros_like(d)
    v = torch.zeros_like(d)
    ref = d.clone()
    for n, g in enumerate(grads, start=1):
        ours = opt.step(ours, g, st, n)
        m = 0.9 * m + 0.1 * g
        v = 0.99 * v + 0.01 * g * g
        ref = ref - 0.1 * (m / (1 - 0.9**n)) / ((v / (1 - 0.99**n)).sqrt() + 1e-8)
    assert rel(ours, ref) < 1e-12, "DESIGN.md §7.14: ResidualAdam equals a hand-written Adam on g"


@pytest.mark.gpu
def test_cuda_theory_matches_cpu():
    lam, U, K, d0 = random_kernel(64, seed=2)
    c = (U.T @ d0) ** 2
    cpu = sd_run(lam, c, 200, torch.tensor([0.5, 1.0]), 0.3, 0.25, 1.0).loss
    gpu = sd_run(lam.cuda(), c.cuda(), 200, torch.tensor([0.5, 1.0]).cuda(), 0.3, 0.25, 1.0).loss.cpu()
    assert rel(gpu, cpu) < 1e-10, "DESIGN.md §7.18: SD on CUDA matches CPU to 1e-10 (float64)"
    from sgd_genfunc.theory import full_run

    f_cpu = full_run(lam, U, torch.outer(d0, d0), 100, 0.8, 0.3, 0.25).loss
    f_gpu = full_run(lam.cuda(), U.cuda(), torch.outer(d0, d0).cuda(), 100, 0.8, 0.3, 0.25).loss.cpu()
    assert rel(f_gpu, f_cpu) < 1e-10, "DESIGN.md §7.18: full dynamics on CUDA match CPU to 1e-10 (float64)"


def test_sd_cache_blocks_change_nothing(monkeypatch):
    """The CPU cache blocking of the static SD run (DESIGN.md §8, B2) gives bitwise the curves of one block, with
    divergence, tracking and momentum; a block of one config and a block of all configs agree."""
    import sgd_genfunc.theory.sd as sd

    lam, c = power_law_spectrum(50, 1.5), power_law_coefficients(50, 1.0)
    alphas = torch.tensor([0.2, 0.5, 3.0, 0.1, 6.0], dtype=torch.float64)
    betas = torch.tensor([0.0, 0.3, 0.0, -0.2, 0.5], dtype=torch.float64)
    results = []
    for block_bytes in (1, 2**40):
        monkeypatch.setattr(sd, "BLOCK_BYTES", block_bytes)
        results.append(sd.sd_run(lam, c, 300, alphas, betas, 0.5, 1.0, track_every=100))
    one, whole = results
    assert sd._block_rows(5, 50, torch.device("cpu")) == 5
    assert torch.equal(one.loss, whole.loss) and torch.equal(one.diverged_at, whole.diverged_at)
    assert torch.equal(one.tracked, whole.tracked)
    assert (one.diverged_at >= 0).tolist() == [False, False, True, False, True], "two configs diverge"
    single = sd.sd_run(lam, c, 300, 0.5, 0.3, 0.5, 1.0)
    assert torch.equal(single.loss, one.loss[1]), "a config's curve does not depend on its neighbours"


def test_loss_exponent_rejects_nonpositive_nu():
    for nu in (0.0, -1.0):
        with pytest.raises(ValueError, match=f"nu must be > 0, got {nu}"):
            loss_exponent(nu, 1.0)


def test_asymptotes_follow_the_e9_formulas():
    """The two asymptotes of (E9) written out independently, at arbitrary values (DESIGN.md §3.6)."""
    from sgd_genfunc.theory import noise_asymptote, signal_asymptote

    t = np.array([3.0, 50.0, 700.0])
    K, zeta, a_eff, u1 = 0.37, 0.8, 0.6, 0.25
    expect = K * math.gamma(zeta + 1) * (2 * a_eff * t) ** -zeta / (1 - u1)
    np.testing.assert_allclose(signal_asymptote(t, K, zeta, a_eff, u1), expect, rtol=1e-13)
    np.testing.assert_allclose(signal_asymptote(t, K, zeta, a_eff), expect * (1 - u1), rtol=1e-13)
    nu, g, v1, N, Lam = 1.7, 0.09, 2.3, 100, 1.3
    u_t = (g / nu) * math.gamma(2 - 1 / nu) * Lam ** (1 / nu) * a_eff**2 * (2 * a_eff * t) ** -(2 - 1 / nu)
    expect = u_t * v1 / (2 * N * (1 - u1) ** 2)
    np.testing.assert_allclose(noise_asymptote(t, nu, g, a_eff, v1, u1, N, Lam), expect, rtol=1e-13)
    np.testing.assert_allclose(noise_asymptote(t, nu, g, a_eff, v1, u1, N), expect / Lam ** (1 / nu), rtol=1e-13)
    assert noise_asymptote([3, 50], nu, g, a_eff, v1, u1, N, Lam).dtype == np.float64


def test_fit_slope_window_and_filters():
    """fit_slope fits exactly the finite positive points with t in [t_min, t_max] and t > 0 (DESIGN.md §3.6)."""
    from sgd_genfunc.theory import fit_slope

    rng = np.random.default_rng(3)
    t = np.arange(0, 21)
    L = rng.uniform(0.1, 0.9, size=t.shape)  # not a power law: any change of the window changes the slope
    ref = np.polyfit(np.log(t[5:11]), np.log(L[5:11]), 1)[0]
    assert fit_slope(t, L, 5, 10) == pytest.approx(ref, rel=1e-12, abs=1e-14)
    assert fit_slope(list(t), list(L), 0, 10) == pytest.approx(np.polyfit(np.log(t[1:11]), np.log(L[1:11]), 1)[0])
    bad = L.copy()
    bad[6], bad[7], bad[8] = np.inf, 0.0, np.nan
    keep = [5, 9, 10]
    ref = np.polyfit(np.log(t[keep]), np.log(L[keep]), 1)[0]
    assert fit_slope(t, bad, 5, 10) == pytest.approx(ref, rel=1e-12, abs=1e-14)
    L32 = torch.tensor(L, dtype=torch.float32)
    ref = np.polyfit(np.log(t[5:11]), np.log(L32.double().numpy()[5:11]), 1)[0]
    assert fit_slope(torch.tensor(t, dtype=torch.float64), L32, 5, 10) == pytest.approx(ref, rel=1e-12, abs=1e-14)
    assert fit_slope(t, L, 9, 10) == pytest.approx(np.log(L[10] / L[9]) / np.log(10 / 9), rel=1e-12), "2 points"
    with pytest.raises(ValueError, match=r"at least 2 points in \[10, 10\], got 1"):
        fit_slope(t, L, 10, 10)


# --- stability details (DESIGN.md §3.5), checked against values worked out by hand ---


def _u1_by_hand(lam, alpha, beta, gamma, tau):
    lam = np.asarray(lam, dtype=float)
    D = 2 * (1 - beta**2) + alpha * lam * (tau * gamma * (1 + beta) - (1 - beta))
    return math.inf if np.any(D <= 0) else gamma * alpha * (1 + beta) * float(np.sum(lam / D))


def _alpha_c_by_bisection(lam, beta, gamma, tau, hi):
    lo = 0.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _u1_by_hand(lam, mid, beta, gamma, tau) < 1 else (lo, mid)
    return 0.5 * (lo + hi)


def test_mode_alpha_bound_values():
    from sgd_genfunc.theory import mode_alpha_bound

    lam = [0.5, 0.2, 0.1]
    assert mode_alpha_bound(lam) == pytest.approx(4.0, rel=1e-15), "2(1+beta)/lambda_1 with the defaults"
    assert mode_alpha_bound(lam, tau=-1.0) == pytest.approx(2.0, rel=1e-15), "D_1 = 0 first (gamma defaults to 1)"
    assert mode_alpha_bound(lam, 0.3, 0.5, -2.0) == pytest.approx(2 * (1 - 0.09) / (0.5 * 2.0), rel=1e-14)
    assert mode_alpha_bound(lam, -0.4, 0.3, -3.0) == pytest.approx(2 * 0.84 / (0.5 * 1.94), rel=1e-14)
    assert mode_alpha_bound(lam, 0.3, 0.5, 1.0) == pytest.approx(2 * 1.3 / 0.5, rel=1e-15)
    for beta in (1.0, -1.0, 1.5):
        assert mode_alpha_bound(lam, beta) == 0.0


def test_critical_alpha_against_bisection():
    lam = power_law_spectrum(40, 1.3)
    ref = _alpha_c_by_bisection(lam.numpy(), 0.0, 1.0, 1.0, 2.0)
    assert critical_alpha(lam) == pytest.approx(ref, rel=1e-13), "defaults beta = 0, gamma = 1, tau = 1"
    assert critical_alpha(lam) == pytest.approx(2 / float(lam.sum()), rel=1e-13), "b = 1 closed form 2 / Tr K~"
    for beta, g, tau in ((0.5, 0.3, 1.0), (-0.3, 0.2, 2.0), (0.2, 0.1, -1.0)):
        hi = 2 * (1 + beta)
        slope = g * tau * (1 + beta) - (1 - beta)
        if slope < 0:
            hi = min(hi, 2 * (1 - beta**2) / -slope)
        ref = _alpha_c_by_bisection(lam.numpy(), beta, g, tau, hi)
        assert critical_alpha(lam, beta, g, tau) == pytest.approx(ref, rel=1e-12), (beta, g, tau)
    betas = np.array([[0.0, 0.5], [-0.3, 0.9]])
    out = critical_alpha(lam, betas, 0.3, 1.0)
    assert out.shape == (2, 2) and out.dtype == np.float64
    assert out[1, 0] == critical_alpha(lam, -0.3, 0.3, 1.0)
    with pytest.raises(ValueError, match=r"gamma must be >= 0, got -0.1"):
        critical_alpha(lam, 0.0, -0.1)
    with pytest.raises(ValueError, match=r"lam must be 1-D, got shape \(2, 2\)"):
        critical_alpha(np.eye(2))


def test_is_stable_edge_cases():
    from sgd_genfunc.theory import is_stable

    lam = [1.0, 0.5]
    a_c = critical_alpha(lam)
    assert is_stable(lam, 0.99 * a_c) and not is_stable(lam, 1.01 * a_c), "defaults beta = 0, gamma = tau = 1"
    assert not is_stable(lam, 0.0), "alpha = 0 does not converge"
    assert not is_stable(lam, 0.1, beta=1.0, gamma=1.0, tau=4.0), "|beta| = 1 is never stable"
    assert not is_stable([1.0], 1.9, beta=1.5, gamma=1.0, tau=10.0), "|beta| > 1 is never stable"
    assert not is_stable(lam, 2.0, 0.0, 0.01, 4.0), "alpha lambda_1 = 2(1+beta) is outside (i)"
    assert is_stable(lam, 2.0, 0.5, 0.01, 4.0), "alpha lambda_1 = 2 < 2(1+beta) = 3 with U~(1) = 0.06"
    assert not is_stable([1.0], 1.5, 0.0, 1.0, -1.0), "D_1 < 0 fails (ii)"


def test_lambda_crit_and_asymptote_details():
    from sgd_genfunc.theory import asymptote_minus1, asymptote_plus1, lambda_crit

    assert lambda_crit([1.0, 0.5]) == pytest.approx(math.sqrt(0.5), rel=1e-14), "1/(1+x) + 0.5/(0.5+x) = 1"
    assert lambda_crit(np.array([1.0, 0.5, 0.0])) == pytest.approx(math.sqrt(0.5), rel=1e-14), "zero modes ignored"
    for lam in ([1.0], [1.0, 0.0, 0.0]):
        with pytest.raises(ValueError, match=r"^lambda_crit needs at least two positive eigenvalues$"):
            lambda_crit(lam)
    assert asymptote_minus1(-0.5) == pytest.approx(1.0) and asymptote_minus1(-0.5, 2.0) == pytest.approx(0.5)
    np.testing.assert_allclose(asymptote_minus1([-0.5, 0.0]), [1.0, 2.0], rtol=1e-15)
    assert asymptote_plus1(0.9, 0.5, [1.0, 0.5]) == pytest.approx(0.2 / (0.5 * math.sqrt(0.5)), rel=1e-13)
    with pytest.raises(ValueError, match=r"gamma must be > 0 for the beta -> 1 asymptote, got 0"):
        asymptote_plus1(0.9, 0, [1.0, 0.5])


# --- generating-function details (DESIGN.md §3.4), against sd_run and hand formulas ---

GF_LAM = power_law_spectrum(30, 1.5)
GF_C = power_law_coefficients(30, 1.0)


def test_loss_genfunc_equals_the_loss_series():
    """L~(z) = sum_t L_t z^t with L_t from sd_run, for a config with every argument away from its default."""
    from sgd_genfunc.theory import loss_genfunc

    alpha, beta, g, tau = 0.6, 0.3, 0.4, 0.5
    assert spectral_radius(GF_LAM, alpha, beta, g * tau) < 1
    L = sd_run(GF_LAM, GF_C, 400, alpha, beta, g, tau).loss
    z = torch.tensor([0.5, 0.8], dtype=torch.float64)
    series = (L[None, :] * z[:, None] ** torch.arange(401, dtype=torch.float64)).sum(-1)
    got = loss_genfunc(z, GF_LAM, GF_C, alpha, beta, g, tau)
    assert got.shape == (2,)
    torch.testing.assert_close(got, series, rtol=1e-10, atol=0)


def test_genfunc_defaults_are_beta0_gamma1_tau1():
    from sgd_genfunc.theory import loss_genfunc, loss_sum, u_tilde_at_1, v_tilde_at_1

    lam, c, a = GF_LAM, GF_C, 0.3
    pairs = [
        (loss_genfunc(0.5, lam, c, a), loss_genfunc(0.5, lam, c, a, 0.0, 1.0, 1.0)),
        (u_tilde(0.5, lam, a), u_tilde(0.5, lam, a, 0.0, 1.0, 1.0)),
        (v_tilde(0.5, lam, c, a), v_tilde(0.5, lam, c, a, 0.0, 1.0, 1.0)),
        (u_tilde_at_1(lam, a), u_tilde_at_1(lam, a, 0.0, 1.0, 1.0)),
        (v_tilde_at_1(lam, c, a), v_tilde_at_1(lam, c, a, 0.0, 1.0, 1.0)),
        (loss_sum(lam, c, a), loss_sum(lam, c, a, 0.0, 1.0, 1.0)),
    ]
    for got, ref in pairs:
        assert float(got) == float(ref) and math.isfinite(float(ref))
    u, v = propagators(lam, c, a)
    ru, rv = propagators(lam, c, a, 0.0, 1.0, 1.0, 100)
    assert u.shape == (101,) and torch.equal(u, ru) and torch.equal(v, rv)
    assert float(loss_sum(lam, c, a)) == pytest.approx(float(sd_run(lam, c, 20000, a).loss.sum()), rel=1e-10)


def test_propagators_against_matrix_powers():
    """u_m, v_m of (E5) up to the last entry, from explicit powers of A_k."""
    alpha, beta, g, tau, n = 0.5, 0.4, 0.3, -1.0, 12
    u, v = propagators(GF_LAM, GF_C, alpha, beta, g, tau, n=n)
    A = mode_matrix(GF_LAM, alpha, beta, g * tau)
    ones, e_c = torch.ones(3, dtype=torch.float64), torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    for m in (1, n - 1, n):
        Am1 = torch.linalg.matrix_power(A, m - 1)
        u_ref = (g * alpha**2 * GF_LAM**2 * (Am1 @ ones)[:, 0]).sum()
        v_ref = (GF_C * (torch.linalg.matrix_power(A, m) @ e_c)[:, 0]).sum()
        assert float(u[m]) == pytest.approx(float(u_ref), rel=1e-12) and float(v[m]) == pytest.approx(float(v_ref))
    assert float(u[0]) == 0.0 and float(v[0]) == pytest.approx(1.0)


def test_mode_matrix_at_lambda_zero():
    A = mode_matrix(torch.tensor([0.0, 0.5], dtype=torch.float64), 0.8, 0.3, 0.2)
    assert A.shape == (2, 3, 3) and bool(torch.isfinite(A).all())
    torch.testing.assert_close(A[0], torch.tensor([[1, 0.6, 0.09], [0, 0.3, 0.09], [0, 0, 0.09]], dtype=torch.float64))


def test_z1_values_and_their_edge_cases():
    from sgd_genfunc.theory import u_tilde_at_1, v_tilde_at_1

    lam = torch.tensor([1.0, 0.4, 0.0], dtype=torch.float64)
    alpha, beta, g, tau = 0.7, 0.3, 0.5, 2.0
    gt = g * tau
    D = 2 * (1 - beta**2) + alpha * lam[:2] * (gt * (1 + beta) - (1 - beta))
    assert u_tilde_at_1(lam, alpha, beta, g, tau) == pytest.approx(float(g * alpha * (1 + beta) * (lam[:2] / D).sum()))
    c = torch.tensor([0.5, 0.25, 0.0], dtype=torch.float64)
    v_ref = (c[:2] * (2 * alpha * beta * lam[:2] + (1 - beta) * (1 - beta**2)) / (alpha * lam[:2] * D)).sum()
    assert v_tilde_at_1(lam, c, alpha, beta, g, tau) == pytest.approx(float(v_ref), rel=1e-13), "c = 0 mode ignored"
    assert v_tilde_at_1(lam, torch.tensor([0.5, 0.25, 0.5]), alpha, beta, g, tau) == math.inf, "lambda = 0, c > 0"
    assert v_tilde_at_1(lam, c, 0.0, beta, g, tau) == math.inf, "alpha = 0 never decays"
    # D_1 < 0 (gamma tau = -1, alpha lambda_1 = 1.5): both values are +inf
    assert u_tilde_at_1([1.0, 0.5], 1.5, 0.0, 1.0, -1.0) == math.inf
    assert v_tilde_at_1([1.0, 0.5], [0.5, 0.5], 1.5, 0.0, 1.0, -1.0) == math.inf


# --- SD run internals (DESIGN.md §3.3, §9): the scheduled path against the static one, divergence, progress ---

SD_LAM = power_law_spectrum(40, 1.5)
SD_C = power_law_coefficients(40, 1.0)
SD_GRID = [
    torch.tensor(x, dtype=torch.float64)
    for x in ([0.2, 0.5, 6.0, 0.3], [0.0, 0.3, 0.2, -0.4], [0.5, 0.2, 0.5, 0.9], [1.0, -1.0, 2.0, 0.5])
]


def _const(x):
    return lambda n: x


def test_sd_scheduled_path_matches_static_path():
    """Callables (sd_step, one step at a time) and constants (precomputed coefficients) are two independent codes
    for (E4): on a grid with momentum, gamma, tau all varying and one diverging config they agree."""
    a, _, g, tau = SD_GRID  # a callable makes the run scheduled; the tensors still span the config grid
    static = sd_run(SD_LAM, SD_C, 300, a, 0.3, g, tau, track_every=7)
    sched = sd_run(SD_LAM, SD_C, 300, a, _const(0.3), g, tau, track_every=7)
    assert static.diverged_at.tolist() == sched.diverged_at.tolist() and int(static.diverged_at[2]) > 0
    assert [int(d) for d in static.diverged_at if d >= 0] == [int(static.diverged_at[2])], "only config 2 diverges"
    torch.testing.assert_close(sched.loss, static.loss, rtol=1e-10, atol=0)
    torch.testing.assert_close(sched.tracked, static.tracked, rtol=1e-10, atol=0)
    assert sched.tracked.shape == (4, 300 // 7 + 1, 40)


@pytest.mark.parametrize("scheduled", [False, True])
def test_sd_divergence_marked_at_the_first_and_the_last_step(scheduled):
    wrap = _const if scheduled else (lambda x: x)
    first = sd_run(SD_LAM, SD_C, 5, wrap(1e16))
    assert int(first.diverged_at) == 1 and torch.isinf(first.loss[1:]).all()
    d = int(sd_run(SD_LAM, SD_C, 400, wrap(3.0)).diverged_at)
    assert d > 2
    last = sd_run(SD_LAM, SD_C, d, wrap(3.0))
    assert int(last.diverged_at) == d and torch.isinf(last.loss[-1]) and torch.isfinite(last.loss[:-1]).all()


@pytest.mark.parametrize("scheduled", [False, True])
@pytest.mark.parametrize("block_bytes", [1, 2**40])
def test_sd_progress_reports_every_step_once(monkeypatch, scheduled, block_bytes):
    import sgd_genfunc.theory.sd as sd

    monkeypatch.setattr(sd, "BLOCK_BYTES", block_bytes)
    beta = _const(0.3) if scheduled else 0.3
    for n_steps, alpha in ((300, SD_GRID[0]), (300, torch.full((4,), 50.0, dtype=torch.float64))):
        steps = []
        res = sd.sd_run(SD_LAM, SD_C, n_steps, alpha, beta, *SD_GRID[2:], on_steps=steps.append)
        assert sum(steps) == pytest.approx(n_steps) and min(steps) > 0, (scheduled, block_bytes, steps)
    assert (res.diverged_at > 0).all(), "the second grid diverges everywhere (early exit still reports the rest)"


def test_sd_block_rows():
    import sgd_genfunc.theory.sd as sd

    cpu = torch.device("cpu")
    assert sd._block_rows(1000, 1000, cpu) == sd.BLOCK_BYTES // (12 * 8 * 1000) == 16
    assert sd._block_rows(5, 10**7, cpu) == 1 and sd._block_rows(3, 1000, cpu) == 3
    assert sd._block_rows(1000, 1000, torch.device("meta")) == 1000, "one block off the CPU"


def test_sd_more_configs_than_steps_in_blocks(monkeypatch):
    import sgd_genfunc.theory.sd as sd

    alphas = torch.linspace(0.1, 0.6, 7, dtype=torch.float64)
    ref = sd.sd_run(SD_LAM, SD_C, 2, alphas, 0.2)
    monkeypatch.setattr(sd, "BLOCK_BYTES", 1)
    assert torch.equal(sd.sd_run(SD_LAM, SD_C, 2, alphas, 0.2).loss, ref.loss)


def test_phase_helpers_compute_in_float64():
    """Steps given in float32 (a torch run's step axis, say) are still fitted and evaluated in float64."""
    from sgd_genfunc.theory import fit_slope, noise_asymptote, signal_asymptote

    t64 = np.array([3.0, 50.0, 700.0, 9000.0])
    t32 = torch.tensor(t64, dtype=torch.float32)
    L = np.array([0.31, 0.07, 0.011, 0.0023])
    assert fit_slope(t32, L, 1, 1e4) == pytest.approx(np.polyfit(np.log(t64), np.log(L), 1)[0], rel=1e-13)
    np.testing.assert_allclose(signal_asymptote(t32, 0.37, 0.8, 0.6, 0.25), signal_asymptote(t64, 0.37, 0.8, 0.6, 0.25),
                               rtol=1e-14)  # fmt: skip
    np.testing.assert_allclose(noise_asymptote(t32, 1.7, 0.09, 0.6, 2.3, 0.4, 100), noise_asymptote(t64, 1.7, 0.09, 0.6,
                               2.3, 0.4, 100), rtol=1e-14)  # fmt: skip


def test_asymptotes_of_alpha_c_compute_in_float64():
    from sgd_genfunc.theory import asymptote_minus1

    b32 = np.array([-0.7, 0.3, 0.9], dtype=np.float32)
    b64 = b32.astype(np.float64)
    assert asymptote_minus1(b32, 0.3).dtype == np.float64
    np.testing.assert_allclose(asymptote_minus1(b32, 0.3), 2 * (1 + b64) / 0.3, rtol=1e-15)
    lam = [1.0, 0.5]
    np.testing.assert_allclose(asymptote_plus1(b32, 0.7, lam), 2 * (1 - b64) / (0.7 * math.sqrt(0.5)), rtol=1e-14)


def test_loss_sum_uses_tau_for_stability_and_alpha_zero_is_infinite():
    from sgd_genfunc.theory import loss_sum, v_tilde_at_1

    g = 0.5
    a_neg, a_pos = critical_alpha(GF_LAM, 0.0, g, -1.0), critical_alpha(GF_LAM, 0.0, g, 1.0)
    assert a_neg < a_pos
    alpha = 0.5 * (a_neg + a_pos)  # stable with tau = +1, unstable with tau = -1
    assert loss_sum(GF_LAM, GF_C, alpha, 0.0, g, -1.0) == math.inf
    assert math.isfinite(loss_sum(GF_LAM, GF_C, alpha, 0.0, g, 1.0))
    lam = torch.tensor([1.0, 0.4, 0.0], dtype=torch.float64)
    assert v_tilde_at_1(lam, torch.tensor([0.5, 0.0, 0.0], dtype=torch.float64), 0.0) == math.inf


def _hand_sd_trace(lam, c, n_steps, alpha, beta=0.0, g=1.0, tau=1.0):
    """S_t by a plain loop of sd_step, with the divergence rule of DESIGN.md §9 applied by hand."""
    state, S = sd_init(c), [float(c.sum())]
    for _ in range(n_steps):
        state = sd_step(state, lam, alpha, beta, g, tau)
        S.append(float(state.c.sum()))
    S = np.array(S)
    bad = ~np.isfinite(S) | (S > 1e30 * S[0])
    d = int(np.argmax(bad)) if bad.any() else -1
    return S, d


def test_sd_run_validation_defaults_and_shapes():
    lam, c = SD_LAM, SD_C
    with pytest.raises(ValueError, match="c has 39 modes but lam has 40"):
        sd_run(lam, c[:39], 5)
    with pytest.raises(ValueError, match="n_steps must be >= 0, got -1"):
        sd_run(lam, c, -1)
    with pytest.raises(ValueError, match="^alpha must be >= 0"):
        sd_run(lam, c, 5, -0.1)
    with pytest.raises(ValueError, match="^gamma must be >= 0"):
        sd_run(lam, c, 5, 0.1, 0.0, -0.5)
    assert sd_run(lam, c, 0).loss.shape == (1,)
    res = sd_run(lam, c, 7)
    assert torch.equal(res.loss, sd_run(lam, c, 7, 1.0, 0.0, 1.0, 1.0).loss) and res.tracked is None
    assert res.diverged_at.dtype == torch.int64 and int(res.diverged_at) == -1
    two = torch.tensor([0.1, 0.2], dtype=torch.float64)
    for i in range(1, 4):  # a grid spanned by beta, gamma or tau alone
        args = [0.3, 0.0, 0.5, 1.0]
        args[i] = two
        assert sd_run(lam, c, 6, *args).loss.shape == (2, 7), i
    assert sd_run(lam, torch.stack([c, 2 * c, 3 * c]), 6, 0.3).loss.shape == (3, 7), "a batch of initial c spans G"


@pytest.mark.parametrize("alpha", [2.2, 2.6])
def test_sd_divergence_step_against_a_hand_loop(alpha):
    S, d = _hand_sd_trace(SD_LAM, SD_C, 400, alpha)
    assert 1 < d < 400
    for a in (alpha, _const(alpha)):
        res = sd_run(SD_LAM, SD_C, 400, a, track_every=1)
        assert int(res.diverged_at) == d
        np.testing.assert_allclose(res.trace[:d].numpy(), S[:d], rtol=1e-10)
        assert torch.isinf(res.trace[d:]).all() and torch.isinf(res.tracked[d:]).all()
        assert torch.isfinite(res.tracked[:d]).all()
    scaled = sd_run(SD_LAM, 1e-3 * SD_C, 400, alpha)
    assert int(scaled.diverged_at) == d, "the threshold is relative to L_0 (the recursion is linear in c)"


def test_sd_one_config_left_alive():
    res = sd_run(SD_LAM, SD_C, 300, torch.tensor([0.3, 50.0], dtype=torch.float64), track_every=10)
    assert int(res.diverged_at[0]) == -1 and int(res.diverged_at[1]) > 0
    assert torch.isfinite(res.loss[0]).all() and torch.isfinite(res.tracked[0]).all()
    torch.testing.assert_close(res.loss[0], sd_run(SD_LAM, SD_C, 300, 0.3).loss, rtol=0, atol=0)
