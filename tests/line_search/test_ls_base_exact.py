"""Exact values of single steps of the Armijo base (DESIGN.md §3.1 (A5), (A6), (A8); §3.3; §7 item 21).

Tiny float64 problems whose trial points, step sizes and counters follow in closed form, so each assertion pins one
rule at its boundary: a failed search stops at eta_min, ties are accepted only with `accept_ties`, s_k == min_slope
is an untested step, the counters grow by one per event, and the diagnostics describe the step that was taken.
"""

from __future__ import annotations

import math
import sys
import warnings

import pytest
import torch

from line_search.sls import SLS, AdamSLS, KenSLS


def _param(*values: float) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor(values, dtype=torch.float64))


def _rigged_closure(w: torch.Tensor, trial_loss: float, calls: list):
    """f = sum(w^2) with its gradient on the backward call; every trial returns `trial_loss` (a rejection)."""

    def closure(backward):
        calls.append(backward)
        if backward:
            w.grad = None
            loss = (w**2).sum()
            loss.backward()
            return loss
        return torch.tensor(trial_loss, dtype=torch.float64)

    return closure


def test_failed_search_stops_at_eta_min():
    """(A5)/(A6): trials 1, 0.5, 0.25 = eta_min are rejected; the search stops there (not at max_trials = 10),
    takes eta_min, counts one failure and two backtracks; the closure sees True once, then False per trial."""
    w = _param(1.0, 1.0)
    calls: list = []
    opt = SLS([w], init_step_size=1.0, grow=1.0, shrink=0.5, eta_min=0.25, max_trials=10, beta_s=0.0)
    f0 = opt.step(_rigged_closure(w, 100.0, calls))
    d = opt.diagnostics
    assert f0.item() == 2.0
    assert calls == [True, False, False, False]
    assert (d["trials"], d["forwards"], d["backtracks"]) == (3, 4, 2)
    assert (d["searched"], d["untested"], d["accepted"]) == (True, False, False)
    assert d["eta"] == 0.25 and opt.eta == 0.25 and d["eta_cand"] == 1.0
    assert math.isnan(d["loss_decrease"])
    assert (d["n_fail"], d["n_searches"], d["n_backtracks"], d["n_forwards"], d["n_untested"]) == (1, 1, 2, 4, 0)
    assert d["slope"] == 8.0  # ||g||^2 with g = 2 w0
    assert torch.equal(w.detach(), torch.tensor([0.5, 0.5], dtype=torch.float64))  # w0 - eta_min * g


@pytest.mark.parametrize("accept_ties", [True, False])
def test_tie_is_accepted_only_with_accept_ties(accept_ties):
    """(A5) on f = x^2, x0 = 1, d = g = 2, c = 0.5: the first trial x = -1 gives f_j == f0 exactly (a tie).

    With accept_ties the tie ends the search at eta = 1 (loss decrease 0); without it the search backtracks while
    4 eta - 4 eta^2 < 2 eta, i.e. down to the first 0.9^j <= 0.5: j = 7, eight trials."""
    w = _param(1.0)
    opt = SLS([w], init_step_size=1.0, grow=1.0, c=0.5, beta_s=0.0, accept_ties=accept_ties)
    opt.step(lambda: (w**2).sum())
    d = opt.diagnostics
    assert d["accepted"] is True and d["n_fail"] == 0
    if accept_ties:
        assert (d["trials"], d["backtracks"], d["eta"], d["loss_decrease"]) == (1, 0, 1.0, 0.0)
        assert w.item() == -1.0
    else:
        eta = 0.9**7
        assert (d["trials"], d["backtracks"], d["n_backtracks"]) == (8, 7, 7)
        assert d["eta"] == pytest.approx(eta, rel=1e-15)
        assert d["loss_decrease"] == pytest.approx(1.0 - (1.0 - 2.0 * eta) ** 2, rel=1e-12)
        assert w.item() == pytest.approx(1.0 - 2.0 * eta, rel=1e-12)


def test_slope_equal_to_min_slope_is_an_untested_step():
    """(A8): s_k <= min_slope takes eta_cand without any trial. f = sum(w)/2 on four weights has phi = 1 exactly;
    with min_slope = 1 both steps move w by -eta_cand * g and count as untested, never as searches."""
    w = _param(0.0, 0.0, 0.0, 0.0)
    opt = SLS([w], init_step_size=1.0, grow=1.0, beta_s=0.0, min_slope=1.0)
    for k in (1, 2):
        opt.zero_grad()
        opt.step(lambda: 0.5 * w.sum())
        d = opt.diagnostics
        assert (d["trials"], d["forwards"], d["backtracks"]) == (0, 1, 0)
        assert d["searched"] is False and d["untested"] is True and d["accepted"] is False
        assert (d["n_untested"], d["n_searches"], d["n_forwards"], d["n_backtracks"], d["n_fail"]) == (k, 0, k, 0, 0)
        assert d["slope"] == 1.0 and d["eta"] == 1.0 and math.isnan(d["loss_decrease"])
        assert torch.equal(w.detach(), torch.full((4,), -0.5 * k, dtype=torch.float64))


def test_slope_just_above_min_slope_searches():
    """(A8) boundary from the other side: phi = 1 > min_slope = 1 - 2^-40 runs the search (accepted at eta = 1)."""
    w = _param(0.0, 0.0, 0.0, 0.0)
    opt = SLS([w], init_step_size=1.0, grow=1.0, beta_s=0.0, min_slope=1.0 - 2.0**-40)
    opt.step(lambda: 0.5 * w.sum())
    d = opt.diagnostics
    assert (d["trials"], d["searched"], d["untested"], d["accepted"], d["n_searches"]) == (1, True, False, True, 1)
    assert d["loss_decrease"] == 1.0  # f0 = 0, f(w0 - g) = -1


def test_kensls_counts_every_fallback():
    """(A3): each step whose momentum slope g.(P m_hat) is <= 0 falls back to P g and adds one to n_fallback."""
    w = _param(0.0)
    opt = KenSLS([w], beta_s=0.0)
    opt.step(lambda: w.sum())  # g = +1: m points along g, no fallback
    flags = []
    for _ in range(2):  # g = -0.01 while m stays > 0 (0.1, then 0.089): the slope along P m_hat is negative
        opt.zero_grad()
        opt.step(lambda: -0.01 * w.sum())
        flags.append(opt.diagnostics["fallback"])
    assert flags == [True, True] and opt.diagnostics["n_fallback"] == 2


def test_work_buffers_are_allocated_once():
    """§3.3 Memory: one work buffer per parameter, created on the first step and reused by every later step."""
    w = _param(1.0, -2.0, 3.0)
    opt = KenSLS([w])
    opt.step(lambda: (w**2).sum())
    first = opt._work[w]
    for _ in range(3):
        opt.zero_grad()
        opt.step(lambda: (w**2).sum())
    assert opt._work[w] is first and len(opt._work) == 1


def test_settings_warning_names_the_direct_caller(monkeypatch):
    """§3.4: the warning about restored settings names the frame that called load_state_dict (stacklevel 2), also
    when a wrapper sits around the method (as mutmut's trampoline does): the frame right above the one that warns."""
    named = []

    def spy(message, category=None, stacklevel=1):
        warner = sys._getframe(1)  # the frame that called warnings.warn
        named.append((message, sys._getframe(stacklevel) is warner.f_back))

    monkeypatch.setattr(warnings, "warn", spy)
    saved = SLS([_param(1.0)], c=0.2).state_dict()
    SLS([_param(1.0)]).load_state_dict(saved)
    assert len(named) == 1 and "c: 0.1 -> 0.2" in named[0][0] and named[0][1], named


def test_trial_step_keeps_the_trial_point_bitwise():
    """(A7) "trial": the accepted point w0 - eta d is kept as it is, without going back to w0 and stepping again
    (0.1 - 0.7 + 0.7 - 0.7 differs from 0.1 - 0.7 in the last bit). f = 0.7 w is linear: eta = 1 is accepted."""
    w = _param(0.1)
    opt = SLS([w], init_step_size=1.0, grow=1.0, beta_s=0.0)
    opt.step(lambda: 0.7 * w.sum())
    assert opt.diagnostics["trials"] == 1 and opt.diagnostics["accepted"] is True
    assert torch.equal(w.detach(), torch.add(torch.tensor([0.1], dtype=torch.float64), 0.7, alpha=-1.0))


def test_sls_weight_decay_after_the_search():
    """(A7): decoupled weight decay with the accepted eta, w = w0 (1 - eta wd) - eta g. f = w^2 at w0 = 1, g = 2,
    eta_0 = 0.25 accepted (decrease 0.75 >= 0.1 * 0.25 * 4), wd = 0.5: w = 0.875 - 0.5 = 0.375."""
    w = _param(1.0)
    opt = SLS([w], init_step_size=0.25, grow=1.0, beta_s=0.0, weight_decay=0.5)
    opt.step(lambda: (w**2).sum())
    assert opt.diagnostics["eta"] == 0.25 and opt.diagnostics["loss_decrease"] == 0.75
    assert w.item() == 0.375


@pytest.mark.parametrize("wd", [0.0, 0.5])
def test_adamsls_tests_along_pg_and_steps_along_p_mhat(wd):
    """(A1), (A3), (A7) for AdamSLS, two steps on linear losses (every first trial is accepted, eta = 0.1): the
    second step tests P g2 but moves along P m_hat, with m, v and their bias corrections (t = 2) written out."""
    w = _param(0.0, 0.0)
    opt = AdamSLS([w], init_step_size=0.1, grow=1.0, beta_s=0.0, weight_decay=wd)
    g1, g2 = torch.tensor([1.0, 1.0], dtype=torch.float64), torch.tensor([3.0, -2.0], dtype=torch.float64)
    opt.step(lambda: (g1 * w).sum())
    w1 = -0.1 * g1 / (g1.abs() + 1e-8)  # t = 1: m_hat = g, v_hat = g^2; w0 = 0, so no decay
    assert torch.allclose(w.detach(), w1, rtol=1e-15, atol=0.0)
    opt.zero_grad()
    opt.step(lambda: (g2 * w).sum())
    d = opt.diagnostics
    assert (d["trials"], d["accepted"], d["eta"]) == (1, True, 0.1)
    m = 0.9 * 0.1 * g1 + 0.1 * g2
    v = 0.999 * 0.001 * g1**2 + 0.001 * g2**2
    m_hat, v_hat = m / (1 - 0.9**2), v / (1 - 0.999**2)
    p_g2 = g2 / (v_hat.sqrt() + 1e-8)
    assert d["slope"] == pytest.approx(float((g2 * p_g2).sum()), rel=1e-12)  # tested along P g2
    want = w1 * (1 - 0.1 * wd) - 0.1 * m_hat / (v_hat.sqrt() + 1e-8)
    assert torch.allclose(w.detach(), want, rtol=1e-12, atol=0.0), (w, want)


def test_unknown_direction_is_named():
    """A subclass naming a direction that does not exist fails on the first step with the name in the message."""
    w = _param(1.0)
    opt = KenSLS([w])
    opt.search_direction = "sideways"
    with pytest.raises(ValueError, match="unknown direction 'sideways'"):
        opt.step(lambda: (w**2).sum())


class _FakeGroup:
    """Stands in for torch.distributed: `world` ranks, where every other rank reports the loss `other`."""

    def __init__(self, world: int, other: float):
        self.world, self.other, self.reduced = world, other, []

    def is_available(self) -> bool:
        return True

    def is_initialized(self) -> bool:
        return True

    def get_world_size(self) -> int:
        return self.world

    def all_reduce(self, t: torch.Tensor) -> None:
        assert self.world > 1, "no all-reduce on a single rank"
        self.reduced.append(t.dtype)
        t += (self.world - 1) * self.other  # in place, a sum over ranks


@pytest.mark.parametrize("world,sync", [(2, True), (3, True), (1, True), (2, False)])
def test_losses_are_averaged_over_ranks_in_float64(monkeypatch, world, sync):
    """§3.3 DDP: f0 and each trial loss are averaged over ranks in float64 before the test, only when the world
    has more than one rank and sync_losses is on. float32 weights, f = w^2 at w0 = 1, eta_0 = 0.5 (f_j = 0); the
    other ranks report 2^24, which float32 cannot add 1 to: the float64 mean gives a decrease of 1/world (float32:
    0)."""
    fake = _FakeGroup(world, 2.0**24)
    monkeypatch.setattr("line_search.sls.base.dist", fake)
    w = torch.nn.Parameter(torch.ones(1))
    opt = SLS([w], init_step_size=0.5, grow=1.0, beta_s=0.0, sync_losses=sync)
    opt.step(lambda: (w**2).sum())
    synced = world > 1 and sync
    assert opt.diagnostics["loss_decrease"] == pytest.approx(1.0 / world if synced else 1.0, rel=1e-8)
    assert fake.reduced == ([torch.float64, torch.float64] if synced else [])


def test_untested_speed_up_step_diagnostics():
    """(A9) step (line_search=False): one forward, no trial, and the flags say so (not searched, not an (A8)
    untested step, not accepted, finite); s, h and L keep their initial values 0, 0 and 1."""
    w = _param(1.0)
    opt = SLS([w], init_step_size=0.5, grow=1.0, line_search=False)
    opt.step(lambda: (w**2).sum())
    d = opt.diagnostics
    assert (d["searched"], d["untested"], d["accepted"], d["nonfinite"]) == (False, False, False, False)
    assert d["untested"] is False and d["accepted"] is False and d["nonfinite"] is False
    assert (d["trials"], d["forwards"], d["n_forwards"], d["n_searches"]) == (0, 1, 1, 0)
    assert (d["s"], d["h"], d["L"]) == (0.0, 0.0, 1.0)
    assert w.item() == 0.0  # 1 - 0.5 * 2


def test_search_diagnostics_carry_s_h_and_l():
    """(A4), (A5), (A9) after one accepted search: s = phi, h = the loss decrease (beta_s = 0), and L from the EMAs
    e_fast = 0.9e-8 + 0.1 eta, e_slow = 0.99e-8 + 0.01 eta; the step is finite."""
    w = _param(1.0)
    opt = SLS([w], init_step_size=0.25, grow=1.0, beta_s=0.0)
    opt.step(lambda: (w**2).sum())
    d = opt.diagnostics
    assert d["nonfinite"] is False and d["accepted"] is True
    assert (d["s"], d["h"]) == (4.0, 0.75)
    r = (0.9e-8 + 0.1 * 0.25) / (0.99e-8 + 0.01 * 0.25)
    assert d["L"] == min(10.0, 1.0 / (r - 1.0 + 1e-8))
    assert d["L"] == opt.state_dict()["line_search"]["search_interval"]


def test_nonfinite_gradient_message_names_the_finite_loss():
    """§3.3: an inf gradient with a finite loss raises FloatingPointError naming the step and the loss value."""
    w = _param(1.0)

    def closure(backward):
        if backward:
            w.grad = torch.tensor([math.inf], dtype=torch.float64)
        return torch.tensor(2.5, dtype=torch.float64)

    opt = SLS([w])
    with pytest.raises(FloatingPointError, match=r"^step 1: non-finite loss \(2\.5\) or gradient at w0; param"):
        opt.step(closure)
    assert w.item() == 1.0


def test_parameters_without_grad_are_skipped_not_the_rest():
    """§3.3: a parameter without a gradient is skipped; the parameters after it in the same group still move."""
    frozen, w = _param(5.0), _param(1.0)
    opt = SLS([frozen, w], init_step_size=0.25, grow=1.0, beta_s=0.0)
    opt.step(lambda: (w**2).sum())
    assert frozen.grad is None and frozen.item() == 5.0
    assert w.item() == 0.5 and opt.diagnostics["slope"] == 4.0


_REQUIRED = dict(c=0.1, init_step_size=1.0, grow=1.0, shrink=0.5, max_trials=5, beta_s=0.0, eta_min=1e-3)


def test_base_class_defaults():
    """The keywords of ArmijoLineSearch that DESIGN.md §3.2 lists as shared, left out: their documented defaults."""
    from line_search.sls import ArmijoLineSearch

    opt = ArmijoLineSearch([_param(1.0)], **_REQUIRED)
    st = opt.settings()
    assert (st["accept_ties"], st["sync_losses"], st["moments"], st["replay_rng"]) == (True, True, False, True)
    assert (st["eta_max"], st["min_slope"], st["nan_policy"], st["reset_option"]) == (None, 1e-12, "raise", 1)
    assert (st["search_direction"], st["step_direction"], st["speed_up"], st["line_search"]) == (
        "sgd",
        "trial",
        False,
        True,
    )
    assert opt.param_groups[0]["weight_decay"] == 0.0 and "eps" not in opt.param_groups[0]
    adam = ArmijoLineSearch([_param(1.0)], moments=True, **_REQUIRED)
    assert adam.param_groups[0]["eps"] == 1e-8 and adam.param_groups[0]["betas"] == (0.9, 0.999)


def _draws(opt, w, n: int = 3) -> torch.Tensor:
    """One step whose closure draws n uniform numbers from the global torch RNG on the backward call."""
    out = []

    def closure(backward):
        if backward:
            out.append(torch.rand(n))
        return (w**2).sum() if not backward else _backward(w)

    opt.step(closure)
    return out[0]


def _backward(w):
    w.grad = None
    loss = (w**2).sum()
    loss.backward()
    return loss


def test_replay_seed_comes_from_the_optimizer_generator():
    """§3.3 RNG: the step draws one seed in [0, 2^62) from its own generator (seeded with `seed`) and seeds the
    closure's torch RNG with it; the global RNG is the same afterwards."""
    w = _param(1.0)
    opt = SLS([w], seed=11)
    gen = torch.Generator().manual_seed(11)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    for _ in range(2):
        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        want = torch.rand(3, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(_draws(opt, w), want)
    assert torch.equal(torch.get_rng_state(), before)


def test_without_replay_the_closure_uses_the_global_stream():
    """replay_rng=False: no seed is drawn and nothing is forked; the closure continues the global RNG stream,
    which stays advanced after the step, and the optimizer's generator is not used."""
    w = _param(1.0)
    opt = SLS([w], seed=11, replay_rng=False)
    gen_state = opt.state_dict()["line_search"]["generator"]
    torch.manual_seed(5)
    want = torch.rand(3)
    after = torch.rand(2)
    torch.manual_seed(5)
    assert torch.equal(_draws(opt, w), want)
    assert torch.equal(torch.rand(2), after), "the global stream was not left advanced"
    assert torch.equal(opt.state_dict()["line_search"]["generator"], gen_state)


def test_add_param_group_forms_and_the_shared_eta():
    """§3.3 Parameter groups: a single tensor or a generator of tensors is a group; every added group starts at the
    current eta (also the third); eps is refused like betas when the class keeps no Adam moments."""
    w = _param(1.0)
    opt = SLS([w], init_step_size=0.25, grow=1.0, beta_s=0.0)
    opt.step(lambda: (w**2).sum())
    opt.param_groups[0]["lr"] = 0.125  # writing lr sets the current eta (§3.3 State)
    single, a, b = _param(2.0), _param(3.0), _param(4.0)
    opt.add_param_group({"params": single})
    opt.add_param_group({"params": (p for p in (a, b))})
    assert [g["params"] for g in opt.param_groups[1:]] == [[single], [a, b]]
    assert [g["lr"] for g in opt.param_groups] == [0.125, 0.125, 0.125]
    assert all(set(g) == {"params", "lr", "weight_decay"} for g in opt.param_groups)
    with pytest.raises(ValueError, match=r"param group keys \['eps'\] are not per-group"):
        opt.add_param_group({"params": [_param(0.0)], "eps": 1e-8})


def test_no_diagnostics_before_the_first_step():
    """§3.3 Diagnostics: an empty dict until the first step (not None), so readers can test keys directly."""
    assert SLS([_param(1.0)]).diagnostics == {}
