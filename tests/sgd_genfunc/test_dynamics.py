"""DESIGN.md §7.1-7.6: batch identity, full dynamics (eigenbasis vs naive vs brute force), SD exactness, Monte Carlo."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
import torch
from sgd_helpers import all_batches, random_kernel, rel

from sgd_genfunc.problems import hadamard_basis, power_law_coefficients, power_law_spectrum
from sgd_genfunc.theory import (
    FullStepper,
    batch_second_moment,
    full_run,
    full_step,
    full_step_naive,
    gamma,
    sd_run,
    to_sample_basis,
)
from sgd_genfunc.theory.full import full_init
from sgd_genfunc.training import ResidualSGD, batch_streams, train_linearized


@pytest.fixture
def kernel64():
    return random_kernel(64, seed=1)


def test_gamma_values():
    assert gamma(1000, 1) == 1.0, "DESIGN.md §7.1: gamma(N, 1) = 1"
    assert gamma(1000, 1000) == 0.0, "DESIGN.md §7.1: gamma(N, N) = 0"
    assert gamma(1000, 10) == pytest.approx(990 / 9990, rel=1e-15), "DESIGN.md §7.1: gamma(1000, 10) = 990/9990"
    assert gamma(10, 4, replacement=True) == 0.25, "DESIGN.md §3.1: gamma = 1/b with replacement"


@pytest.mark.parametrize("bad", [(1, 1), (10, 0), (10, 11)])
def test_gamma_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="N must|batch size"):
        gamma(*bad)


def test_batch_second_moment_by_enumeration():
    rng = np.random.default_rng(0)
    checked = 0
    for N in range(2, 8):
        A = rng.standard_normal((N, N))
        C = torch.tensor(A @ A.T)
        for b in range(1, N + 1):
            acc = torch.zeros(N, N, dtype=torch.float64)
            batches = all_batches(N, b)
            for B in batches:
                S = torch.zeros(N, dtype=torch.float64)
                S[B] = 1.0
                acc += (N / b) ** 2 * (S[:, None] * C * S[None, :])
            err = rel(acc / len(batches), batch_second_moment(C, b))
            assert err < 1e-12, f"DESIGN.md §7.1: E_B[(N/b)^2 S_B C S_B] identity, N={N}, b={b}, rel err {err:.2e}"
            checked += 1
    assert checked == sum(range(2, 8))


def test_batch_second_moment_with_replacement():
    rng = np.random.default_rng(1)
    checked = 0
    for N in range(2, 6):
        A = rng.standard_normal((N, N))
        C = torch.tensor(A @ A.T)
        for b in range(1, 4):
            acc = torch.zeros(N, N, dtype=torch.float64)
            tuples = list(itertools.product(range(N), repeat=b))
            for tup in tuples:
                S = torch.bincount(torch.tensor(tup), minlength=N).double()
                acc += (N / b) ** 2 * (S[:, None] * C * S[None, :])
            err = rel(acc / len(tuples), batch_second_moment(C, b, replacement=True))
            assert err < 1e-12, f"DESIGN.md §7.1: with replacement gamma = 1/b, N={N}, b={b}, rel err {err:.2e}"
            checked += 1
    assert checked == 12


def brute_force_moments(K, d0, alpha, beta, b, n_steps):
    """Second moment of (d, v) averaged over all C(N, b) batches, step by step (DESIGN.md §7.2)."""
    N = K.shape[0]
    eye = torch.eye(N, dtype=torch.float64)
    maps = []
    for B in all_batches(N, b):
        S = torch.zeros(N, dtype=torch.float64)
        S[B] = 1.0
        G = (N / b) * K * S[None, :]
        maps.append(torch.cat([torch.cat([eye - alpha * G, beta * eye], 1), torch.cat([-alpha * G, beta * eye], 1)], 0))
    X = torch.zeros(2 * N, 2 * N, dtype=torch.float64)
    X[:N, :N] = torch.outer(d0, d0)
    for _ in range(n_steps):
        X = sum(M @ X @ M.T for M in maps) / len(maps)
    return X[:N, :N], X[:N, N:], X[N:, N:]


@pytest.mark.parametrize("N,b", [(5, 2), (6, 3)])
@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_full_matches_brute_force(N, b, beta):
    lam, U, K, d0 = random_kernel(N, seed=N)
    alpha = 0.5
    res = full_run(lam, U, torch.outer(d0, d0), 60, alpha, beta, gamma(N, b))
    st = to_sample_basis(res.state, U)
    C, J, P = st.C, st.J, st.P
    Cb, Jb, Pb = brute_force_moments(K, d0, alpha, beta, b, 60)
    for name, ours, ref in (("C", C, Cb), ("J", J, Jb), ("P", P, Pb)):
        err = float((ours - ref).norm() / Cb.norm())
        assert err < 1e-10, f"DESIGN.md §7.2: full dynamics {name} vs brute force, N={N}, b={b}, beta={beta}: {err:.2e}"


@pytest.mark.parametrize("alpha,beta,b", [(1.0, 0.0, 16), (0.5, 0.5, 16)])
def test_eigenbasis_matches_naive_and_stays_symmetric(kernel64, alpha, beta, b):
    lam, U, K, d0 = kernel64
    g = gamma(64, b)
    eig = full_run(lam, U, torch.outer(d0, d0), 300, alpha, beta, g, form="eig").loss
    naive = full_run(lam, U, torch.outer(d0, d0), 300, alpha, beta, g, form="naive").loss
    err = rel(eig, naive)
    assert err < 1e-12, f"DESIGN.md §7.3: eigenbasis vs naive loss rel diff {err:.2e} (< 1e-12)"
    state = full_init(lam, U, torch.outer(d0, d0))
    for _ in range(300):
        state = full_step(state, lam, U, alpha, beta, g)
        assert torch.equal(state.C, state.C.T) and torch.equal(state.P, state.P.T), (
            "DESIGN.md §7.3: C, P exactly symmetric"
        )
    C, J, P = (torch.outer(d0, d0), torch.zeros(64, 64, dtype=torch.float64), torch.zeros(64, 64, dtype=torch.float64))
    for _ in range(5):
        C, J, P = full_step_naive(C, J, P, K, alpha, beta, g)
        assert torch.equal(C, C.T) and torch.equal(P, P.T), "DESIGN.md §3.9: naive form symmetrized too"


def test_stepper_reuses_buffers_without_touching_its_input(kernel64):
    """DESIGN.md §8 B1: FullStepper (what full_run steps with) equals full_step bitwise and never writes its input."""
    lam, U, _, d0 = kernel64
    g = gamma(64, 8)
    stepper = FullStepper(lam, U)
    ours = theirs = full_init(lam, U, torch.outer(d0, d0))
    for n in range(6):
        before = [x.clone() for x in ours if x is not None]
        new = stepper.step(ours, 0.7, 0.4, g)
        assert all(torch.equal(a, b) for a, b in zip(before, [x for x in ours if x is not None])), f"step {n} wrote"
        theirs, ours = full_step(theirs, lam, U, 0.7, 0.4, g), new
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs)), f"step {n}: stepper != full_step"
        assert torch.equal(ours.Jt, ours.J.T), "J^T carried exactly"
    ptrs = {x.data_ptr() for x in ours}
    assert ptrs.isdisjoint(x.data_ptr() for x in stepper.step(ours, 0.7, 0.4, g)), "output aliases the input"


@pytest.mark.parametrize("alpha,beta,b", [(0.5, 0.0, 1), (1.0, 0.5, 4), (0.8, -0.3, 8), (1.5, 0.0, 16)])
def test_sd_plus1_exact_on_hadamard(alpha, beta, b):
    N = 64
    U = hadamard_basis(N)
    lam = power_law_spectrum(N, 1.5)
    c = power_law_coefficients(N, 1.0)  # c_k ~ k^-2
    g = gamma(N, b)
    full = full_run(lam, U, (U * c) @ U.T, 1000, alpha, beta, g).loss
    sd_p = sd_run(lam, c, 1000, alpha, beta, g, 1.0).loss
    sd_m = sd_run(lam, c, 1000, alpha, beta, g, -1.0).loss
    err = float(((full - sd_p).abs() / sd_p).max())
    assert err < 1e-10, f"DESIGN.md §7.4: SD tau=+1 exact on Walsh-Hadamard, max rel diff {err:.2e} (< 1e-10)"
    far = float(((full - sd_m).abs() / sd_m).max())
    assert far > 0.15, f"DESIGN.md §7.4: SD tau=-1 must differ by > 15%, got {far:.3f}"


@pytest.mark.slow
def test_sd_minus1_exact_for_online_gaussian_least_squares():
    p, b, alpha, beta, runs, T = 100, 4, 0.6, 0.3, 3000, 200
    lam = power_law_spectrum(p, 1.5)
    dw0 = torch.arange(1, p + 1, dtype=torch.float64) ** -0.5
    dw0 = dw0 / torch.sqrt((lam * dw0**2).sum())  # S_0 = 1
    g = torch.Generator().manual_seed(0)
    dw = dw0.expand(runs, p).clone()
    mom = torch.zeros_like(dw)
    S = torch.empty(runs, T + 1, dtype=torch.float64)
    S[:, 0] = (lam * dw**2).sum(1)
    sq = lam.sqrt()
    for t in range(1, T + 1):
        x = torch.randn(runs, b, p, generator=g, dtype=torch.float64) * sq
        grad = torch.einsum("rbi,rb->ri", x, torch.einsum("rbi,ri->rb", x, dw)) / b
        mom = beta * mom + grad
        dw = dw - alpha * mom
        S[:, t] = (lam * dw**2).sum(1)
    mean, se = S.mean(0), S.std(0) / runs**0.5
    c0 = lam * dw0**2
    z_minus = ((mean - sd_run(lam, c0, T, alpha, beta, 1.0 / b, -1.0).trace) / se)[1:].abs().max()
    z_plus = ((mean - sd_run(lam, c0, T, alpha, beta, 1.0 / b, 1.0).trace) / se)[1:].abs().max()
    assert z_minus < 4, f"DESIGN.md §7.5: SD tau=-1 vs online least squares max |z| {z_minus:.2f} (< 4; pilot 2.95)"
    assert z_plus > 10, f"DESIGN.md §7.5: SD tau=+1 must be rejected, max |z| {z_plus:.2f} (> 10; pilot 25)"


@pytest.mark.parametrize("alpha,beta,b", [(1.0, 0.0, 16), (0.5, 0.5, 16)])
def test_linearized_monte_carlo_matches_full(kernel64, alpha, beta, b):
    lam, U, K, d0 = kernel64
    runs, T = 1000, 100
    mc = train_linearized(ResidualSGD(alpha, beta), d0, K, T, b, runs, batch_streams(3, runs)).loss
    full = full_run(lam, U, torch.outer(d0, d0), T, alpha, beta, gamma(64, b)).loss
    z = ((mc.mean(0) - full) / (mc.std(0) / runs**0.5))[1:].abs().max()
    assert z < 4, f"DESIGN.md §7.6: linearized Monte Carlo vs full, max |z| {z:.2f} (< 4)"


def test_batch_second_moment_rejects_non_square():
    for bad in (torch.zeros(3, 4), torch.zeros(4), torch.zeros(2, 2, 2)):
        with pytest.raises(ValueError, match=rf"square matrix, got shape {re.escape(str(tuple(bad.shape)))}"):
            batch_second_moment(bad, 1)
