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
    with pytest.warns(UserWarning, match=r"c: 0\.3 -> 0\.1"):
        other.load_state_dict(sd)
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
