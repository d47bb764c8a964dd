"""Armijo invariants, quadratics, accounting, failure and non-finite handling (DESIGN.md §7 items 4-7, 10, 11)."""

from __future__ import annotations

import math

import pytest
import torch
from ls_recipes import IDS, RECIPES, batches, mlp, train
from torch import nn

from line_search.sls import SLS


def _flat(model):
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("r", RECIPES, ids=IDS)
def test_armijo_inequality_on_every_accepted_step(r, digits):
    """DESIGN.md §7.4: beta_s = 0, float64: f(w0 - eta*d) <= f(w0) - c*eta*phi + 1e-12 on every accepted step."""
    x, y = digits
    x = x.double()
    model = mlp(dtype=torch.float64)
    opt = r.cls(model.parameters(), beta_s=0.0, step_direction="trial")
    crit = nn.CrossEntropyLoss()
    checked = 0
    for bx, by in batches(x, y, 40):
        f0 = opt.step(lambda bx=bx, by=by: crit(model(bx), by)).item()
        opt.zero_grad()
        d = opt.diagnostics
        if d["searched"] and d["accepted"]:
            with torch.no_grad():
                f1 = crit(model(bx), by).item()
            bound = f0 - opt.c * d["eta"] * d["slope"] + 1e-12
            assert f1 <= bound, f"{r.name} step {d['step']}: f(w0-eta d)={f1!r} > {bound!r} (eta={d['eta']})"
            checked += 1
    assert checked >= 30, f"only {checked} accepted steps checked"


@pytest.mark.parametrize("r", RECIPES, ids=IDS)
def test_smoothed_criterion_holds(r, digits):
    """DESIGN.md §7.4: with smoothing (beta_s = 0.9), h_k >= c*eta*s_k at every accepted step."""
    x, y = digits
    model = mlp(dtype=torch.float64)
    opt = r.cls(model.parameters(), beta_s=0.9)
    crit = nn.CrossEntropyLoss()
    checked = 0
    for bx, by in batches(x.double(), y, 40):
        opt.zero_grad()
        opt.step(lambda bx=bx, by=by: crit(model(bx), by))
        d = opt.diagnostics
        if d["searched"] and d["accepted"]:
            assert d["h"] >= opt.c * d["eta"] * d["s"], f"{r.name} step {d['step']}: h={d['h']} < c eta s"
            checked += 1
    assert checked >= 20


def _quadratic_run(diag_l: torch.Tensor, c: float, max_steps: int, tol: float = 0.0):
    xk = torch.ones_like(diag_l, requires_grad=True)
    opt = SLS([xk], c=c)
    fs, etas, accepted = [], [], []
    for _ in range(max_steps):
        if tol and xk.detach().abs().max() < tol:
            break
        opt.zero_grad()
        fs.append(opt.step(lambda: 0.5 * (diag_l * xk * xk).sum()).item())
        etas.append(opt.eta)
        accepted.append(opt.diagnostics["searched"] and opt.diagnostics["accepted"])
    return opt, fs, etas, accepted


@pytest.mark.parametrize("L", [0.5, 4.0, 100.0])
@pytest.mark.parametrize("c", [0.1, 0.5])
def test_1d_quadratic_step_bounds(L, c):
    """DESIGN.md §7.5: f = L/2 x^2: accepted eta <= 2(1-c)/L (1+1e-12); eta_k >= min(grow^k, 0.9*2(1-c)/L)(1-1e-12)."""
    opt, fs, etas, accepted = _quadratic_run(torch.tensor([L], dtype=torch.float64), c, 200, tol=1e-6)
    upper = 2 * (1 - c) / L
    n_acc = 0
    for k, (eta, acc) in enumerate(zip(etas, accepted), start=1):
        if acc:
            assert eta <= upper * (1 + 1e-12), f"DESIGN.md §7.5 L={L} c={c} step {k}: eta {eta} > 2(1-c)/L = {upper}"
            n_acc += 1
        lower = min(opt.grow**k, 0.9 * upper)
        assert eta >= lower * (1 - 1e-12), f"DESIGN.md §7.5 L={L} c={c} step {k}: eta {eta} < {lower}"
    assert n_acc >= 1 and len(etas) >= 1


def test_diagonal_quadratic_monotone():
    """DESIGN.md §7.6: eigenvalues linspace(1, 100, 50), SLS c = 0.5, 300 steps: f non-increasing, min eta >= 0.009."""
    lam = torch.linspace(1, 100, 50, dtype=torch.float64)
    _, fs, etas, _ = _quadratic_run(lam, 0.5, 300)
    assert len(fs) == 300
    for k in range(1, len(fs)):
        assert fs[k] <= fs[k - 1], f"DESIGN.md §7.6: f rose at step {k + 1}: {fs[k - 1]} -> {fs[k]}"
    assert min(etas) >= 0.009, f"DESIGN.md §7.6: min eta {min(etas)} < 0.009 (pilot 0.0120)"


@pytest.mark.parametrize("r", RECIPES, ids=IDS)
def test_forward_accounting_and_backtrack_identity(r, digits):
    """DESIGN.md §7.7: forwards = 1 + trials if searched else 1;
    B = (N ln grow + ln(eta_0/eta_T))/ln(1/shrink) to 1e-6."""
    x, y = digits
    model = mlp()
    opt = r.cls(model.parameters())
    crit = nn.CrossEntropyLoss()
    total, clamped = 0, False
    for bx, by in batches(x, y, 120):
        opt.zero_grad()
        opt.step(lambda bx=bx, by=by: crit(model(bx), by))
        d = opt.diagnostics
        expect = 1 + d["trials"] if d["searched"] else 1
        assert d["forwards"] == expect, f"{r.name} step {d['step']}: forwards {d['forwards']} != {expect}"
        assert d["trials"] <= opt.max_trials
        total += d["forwards"]
        clamped |= d["eta"] <= opt.eta_min
    d = opt.diagnostics
    assert d["n_forwards"] == total
    assert d["n_fail"] == 0 and not clamped, "DESIGN.md §7.7 precondition: no failure and no clamp on this digits run"
    n = d["n_searches"] + d["n_untested"]
    b = (n * math.log(opt.grow) + math.log(opt.init_step_size / opt.eta)) / math.log(1 / opt.shrink)
    assert abs(b - d["n_backtracks"]) < 1e-6, f"{r.name}: identity gives {b}, counted {d['n_backtracks']}"


def _failing_closure(model, opt, bx, by, bump=1.0, nan_first_trial=False):
    crit = nn.CrossEntropyLoss()
    state = {"trial": 0}

    def closure(backward=True):
        if backward:
            opt.zero_grad()
            loss = crit(model(bx), by)
            loss.backward()
            return loss
        state["trial"] += 1
        if nan_first_trial:
            return torch.tensor(float("nan")) if state["trial"] == 1 else crit(model(bx), by)
        return crit(model(bx), by) + bump

    return closure


@pytest.mark.parametrize("r", RECIPES, ids=IDS)
def test_forced_failure(r, digits):
    """DESIGN.md §7.10: trials return loss + 1: n_fail = 1, eta = the last trial's eta (A6), forwards <= 1 + trials."""
    x, y = digits
    model = mlp()
    opt = r.cls(model.parameters())
    it = batches(x, y, 5)
    bx, by = next(it)
    opt.step(_failing_closure(model, opt, bx, by))
    d = opt.diagnostics
    assert d["n_fail"] == 1, "DESIGN.md §7.10"
    if r.fails_at_eta_min:
        assert d["eta"] == opt.eta_min, f"DESIGN.md §7.10 {r.name}: eta {d['eta']} != eta_min"
    else:
        last = d["eta_cand"] * opt.shrink ** (opt.max_trials - 1)
        assert d["trials"] == opt.max_trials and d["eta"] == last, f"DESIGN.md §7.10 {r.name}: eta {d['eta']} != {last}"
    assert d["forwards"] <= 1 + opt.max_trials
    assert all(torch.isfinite(p).all() for p in model.parameters())
    for bx, by in it:
        opt.step(_failing_closure(model, opt, bx, by))
    assert opt.diagnostics["n_fail"] == 5, "DESIGN.md §7.10: after 5 steps n_fail = 5"


def _state_equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_state_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_state_equal(u, v) for u, v in zip(a, b))
    if torch.is_tensor(a):
        return torch.equal(a, b)
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("r", RECIPES, ids=IDS)
@pytest.mark.parametrize("kind", ["nan_loss", "inf_grad"])
def test_nonfinite_at_w0(r, kind, digits):
    """DESIGN.md §7.11: "raise" -> FloatingPointError, params and state_dict unchanged;
    "skip" -> unchanged, n_nonfinite=1."""
    import copy

    x, y = digits
    crit = nn.CrossEntropyLoss()
    bx, by = x[:32], y[:32]

    def bad(model, opt):
        def closure(backward=True):
            opt.zero_grad()
            loss = crit(model(bx), by)
            if kind == "nan_loss":
                loss = loss * float("nan")
            loss.backward()
            if kind == "inf_grad":
                next(model.parameters()).grad[0, 0] = float("inf")
            return loss

        return closure

    for policy in ("raise", "skip"):
        model = mlp()
        opt = r.cls(model.parameters(), nan_policy=policy)
        train(opt, model, x, y, 3)
        before, sd = _flat(model), copy.deepcopy(opt.state_dict())
        if policy == "raise":
            with pytest.raises(FloatingPointError, match="step 4"):
                opt.step(bad(model, opt))
            assert _state_equal(sd, opt.state_dict()), "DESIGN.md §7.11: state_dict changed under 'raise'"
        else:
            opt.step(bad(model, opt))
            assert opt.diagnostics["n_nonfinite"] == 1, "DESIGN.md §7.11"
        assert all(torch.equal(a, b) for a, b in zip(before, _flat(model))), f"({policy}): params changed"


@pytest.mark.parametrize("r", RECIPES, ids=IDS)
def test_nan_first_trial_is_rejection(r, digits):
    """DESIGN.md §7.11: NaN on the first trial only is a rejection: accepted at a smaller eta, h finite."""
    x, y = digits
    model = mlp()
    opt = r.cls(model.parameters())
    bx, by = next(batches(x, y, 1))
    opt.step(_failing_closure(model, opt, bx, by, nan_first_trial=True))
    d = opt.diagnostics
    assert d["accepted"] and d["trials"] >= 2 and d["eta"] < d["eta_cand"], f"DESIGN.md §7.11: {d}"
    assert math.isfinite(d["h"]) and d["n_fail"] == 0
