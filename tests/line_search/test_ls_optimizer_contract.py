"""torch.optim contract of the line-search optimizers (DESIGN.md §3.3 Parameter groups, §3.4 state_dict layout).

add_param_group applies the constructor's per-group checks; state_dict() carries the line-search settings and
load_state_dict restores them (warning when they differ), as torch restores group hyperparameters; version-1 states
with the one-letter keys still load.
"""

from __future__ import annotations

import io
import warnings

import pytest
import torch
from ls_recipes import IDS, RECIPES, flat_params, mlp, train

from line_search.sls import SLS, AdamSLS, KenSLS, SaLSa


def _extra_params() -> list[torch.Tensor]:
    return [torch.nn.Parameter(torch.zeros(3))]


@pytest.mark.parametrize("cls", [SLS, AdamSLS, KenSLS, SaLSa])
@pytest.mark.parametrize("key,value", [("c", 0.9), ("lr", 0.5), ("shrink", 0.5), ("max_trials", 3), ("beta_s", 0.5)])
def test_add_param_group_rejects_line_search_knobs(cls, key, value):
    opt = cls(mlp().parameters())
    with pytest.raises(ValueError, match=key):
        opt.add_param_group({"params": _extra_params(), key: value})
    assert len(opt.param_groups) == 1 and opt.c == cls(mlp().parameters()).c


@pytest.mark.parametrize(
    "group,cls",
    [
        ({"weight_decay": -1.0}, KenSLS),
        ({"eps": 0.0}, SaLSa),
        ({"betas": (0.9, 1.5)}, AdamSLS),
        ({"betas": (0.9, 0.999)}, SLS),  # SLS keeps no Adam moments
    ],
)
def test_add_param_group_checks_group_values(group, cls):
    opt = cls(mlp().parameters())
    with pytest.raises(ValueError):
        opt.add_param_group({"params": _extra_params(), **group})


def test_add_param_group_after_steps_joins_the_current_eta(digits):
    x, y = digits
    model = mlp()
    opt = KenSLS(model.parameters(), seed=0)
    train(opt, model, x, y, 5)
    opt.add_param_group({"params": _extra_params(), "weight_decay": 0.01})
    assert opt.param_groups[1]["lr"] == opt.eta and opt.param_groups[1]["weight_decay"] == 0.01
    assert opt.param_groups[1]["betas"] == opt.param_groups[0]["betas"]


def _roundtrip(sd: dict) -> dict:
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_state_dict_carries_and_restores_settings(digits):
    """Saved with c = 0.1: an optimizer built with c = 0.3 takes c = 0.1 on load, with a warning naming c."""
    x, y = digits
    model = mlp()
    saved_opt = KenSLS(model.parameters(), c=0.1, shrink=0.7, max_trials=17, seed=0)
    train(saved_opt, model, x, y, 3)
    sd = _roundtrip(saved_opt.state_dict())
    settings = sd["line_search"]["settings"]
    assert settings["c"] == 0.1 and settings["shrink"] == 0.7 and settings["max_trials"] == 17
    assert sd["line_search"]["version"] == 2
    other = KenSLS(mlp().parameters(), c=0.3)
    with pytest.warns(UserWarning, match=r"\(c: 0\.3 -> 0\.1, shrink: 0\.9 -> 0\.7, max_trials: 100 -> 17\)") as rec:
        other.load_state_dict(sd)
    # the warning points at the caller of load_state_dict (under mutmut a trampoline frame sits in between)
    assert rec[0].filename == __file__ or "trampoline" in rec[0].filename, rec[0].filename
    assert (other.c, other.shrink, other.max_trials) == (0.1, 0.7, 17)
    assert other.settings() == saved_opt.settings()


def test_equal_settings_load_silently(digits):
    x, y = digits
    model = mlp()
    opt = SaLSa(model.parameters(), seed=0)
    train(opt, model, x, y, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SaLSa(mlp().parameters()).load_state_dict(_roundtrip(opt.state_dict()))


def test_saved_settings_are_validated():
    opt = SLS(mlp().parameters())
    sd = opt.state_dict()
    sd["line_search"]["settings"]["c"] = 2.0
    with pytest.raises(ValueError, match="invalid c"):
        SLS(mlp().parameters()).load_state_dict(sd)


def test_state_keys_say_what_they_are():
    ls = SaLSa(mlp().parameters()).state_dict()["line_search"]
    assert {"step", "smoothed_decrease", "smoothed_slope", "search_interval"} <= set(ls)
    assert not {"t", "h", "s", "L"} & set(ls)


@pytest.mark.parametrize("r", RECIPES, ids=IDS)
def test_version_1_state_loads(r, digits):
    """A state saved before the rename (keys t, h, s, L; no version, no settings) continues bitwise."""
    x, y = digits
    model = mlp()
    opt = r.cls(model.parameters(), seed=3)
    train(opt, model, x, y, 12)
    new = opt.state_dict()
    old = dict(new)
    ls = dict(new["line_search"])
    del ls["version"], ls["settings"]
    renamed = {"step": "t", "smoothed_decrease": "h", "smoothed_slope": "s", "search_interval": "L"}
    old["line_search"] = {renamed.get(k, k): v for k, v in ls.items()}
    outcomes = []
    for sd in (new, old):
        fresh = mlp(seed=9)
        fresh.load_state_dict(model.state_dict())
        opt2 = r.cls(fresh.parameters())
        opt2.load_state_dict(_roundtrip(sd))
        assert opt2.step_count == 12
        train(opt2, fresh, x, y, 8, skip=12)
        outcomes.append((flat_params(fresh), opt2.eta, opt2.diagnostics["n_forwards"]))
    assert torch.equal(outcomes[0][0], outcomes[1][0]) and outcomes[0][1:] == outcomes[1][1:]


def test_state_without_line_search_entry_loads():
    """A state dict without the "line_search" entry (e.g. written by torch.optim code) keeps the settings."""
    opt = AdamSLS(mlp().parameters(), c=0.2)
    sd = {k: v for k, v in opt.state_dict().items() if k != "line_search"}
    AdamSLS(mlp().parameters(), c=0.2).load_state_dict(sd)


@pytest.mark.parametrize("change", ["version", "key"])
def test_unreadable_line_search_state_is_rejected(change):
    sd = SLS(mlp().parameters()).state_dict()
    if change == "version":
        sd["line_search"]["version"] = 3
    else:
        sd["line_search"]["colour"] = 1
    with pytest.raises(ValueError, match="version 3" if change == "version" else "colour"):
        SLS(mlp().parameters()).load_state_dict(sd)


def test_sls_without_line_search_is_sgd(digits):
    """SLS(init_step_size=lr, grow=1, line_search=False) is SGD with (decoupled = coupled for SGD) weight decay."""
    x, y = digits
    a, b = mlp(), mlp()
    ours = SLS(a.parameters(), init_step_size=0.05, grow=1.0, line_search=False, weight_decay=0.01)
    ref = torch.optim.SGD(b.parameters(), lr=0.05, weight_decay=0.01)
    train(ours, a, x, y, 10)
    train(ref, b, x, y, 10)
    assert torch.allclose(flat_params(a), flat_params(b), rtol=1e-5, atol=1e-7)
    assert ours.diagnostics["n_searches"] == 0 and ours.diagnostics["n_forwards"] == 10


@pytest.mark.parametrize("cls,fallbacks", [(SLS, 0), (AdamSLS, 0), (KenSLS, 1), (SaLSa, 0)])
def test_zero_gradient_is_an_untested_step(cls, fallbacks):
    """(A8) at a stationary point: no trial, parameters unchanged; only KenSLS's momentum direction falls back."""
    w = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    opt = cls([w], speed_up=False)
    opt.step(lambda: (w**2).sum())
    d = opt.diagnostics
    assert torch.equal(w.detach(), torch.zeros(4, dtype=torch.float64))
    assert (d["n_untested"], d["n_fallback"], d["trials"]) == (1, fallbacks, 0)


def test_kensls_falls_back_to_the_preconditioned_gradient():
    """(A3): when g.(P m_hat) <= 0, KenSLS tests and takes d = P g for that step (counted once)."""
    w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = KenSLS([w], beta_s=0.0)
    opt.step(lambda: w.sum())  # g = +1: m points along g
    assert not opt.diagnostics["fallback"] and opt.diagnostics["n_fallback"] == 0
    before = w.item()
    opt.zero_grad()
    opt.step(lambda: -0.01 * w.sum())  # g = -0.01 while m_hat > 0: slope along P m_hat < 0
    d = opt.diagnostics
    assert d["fallback"] and d["n_fallback"] == 1 and d["slope"] > 0 and d["accepted"]
    assert w.item() > before, "the step follows -P g, which raises w when g < 0"
    v_hat = (0.001 * 0.999 * 1.0 + 0.001 * 0.01**2) / (1 - 0.999**2)
    assert d["slope"] == pytest.approx(0.01**2 / (v_hat**0.5 + 1e-8), rel=1e-9)


def test_slope_is_summed_in_float64(digits):
    """(A3): phi = sum over tensors of g.d accumulated in float64, also for float32 parameters."""
    x, y = digits
    model = mlp()
    opt = SLS(model.parameters())
    train(opt, model, x, y, 1)
    want = sum(torch.sum(p.grad * p.grad, dtype=torch.float64).item() for p in model.parameters())
    assert opt.diagnostics["slope"] == pytest.approx(want, rel=1e-13, abs=0.0)


@pytest.mark.parametrize("r", RECIPES, ids=IDS)
def test_memory_footprint_is_exact(r, digits):
    x, y = digits
    model = mlp()
    opt = r.cls(model.parameters())
    train(opt, model, x, y, 2)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    want = (
        {"state_bytes": 2 * param_bytes, "work_bytes": param_bytes}
        if r.moments
        else {"state_bytes": 0, "work_bytes": 0}
    )
    assert opt.memory_footprint() == want
