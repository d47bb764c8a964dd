"""Every contestant's init/step for a few steps on a tiny workload; propose and transfer (arena/README.md §4)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from arena import loading, space
from arena.trial import TrialSpec, run_trial
from hp_scaling.scaling import lr_multiplier

HERE = Path(__file__).resolve().parent
TINY = str(HERE / "plugin_tiny_mlp.py")
TINY_DAG = str(HERE / "plugin_tiny_dag.py")
EXPECTED = {
    "adam_default",
    "adamw_cosine",
    "arch_scaled",
    "autowu_adamw",
    "frog16",
    "genfunc_sgd",
    "kensls",
    "propulate_adamw",
    "salsa",
    "sgd_nesterov_cosine",
    "sls",
}


def _spec(name, contestant, workload, steps=3):
    hp = space.draw(contestant.SEARCH_SPACE, 1, 0)[0] if contestant.RULESET == "external" else {}
    return TrialSpec(name, workload.NAME, 0, 0, 7, hp, None, math.inf, steps)


def test_the_eleven_contestants_are_there():
    assert set(loading.list_contestants()) == EXPECTED
    for name in EXPECTED:
        c = loading.load_contestant(name)
        assert c.NAME == name and c.RULESET in ("self", "external")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_init_and_step_run_a_few_steps(name):
    c = loading.load_contestant(name)
    w = loading.load_workload(TINY_DAG if name == "arch_scaled" else TINY)
    s = run_trial(_spec(name, c, w), w, c)
    assert s["status"] == "steps", s.get("message")
    assert s["steps"] == 3 and math.isfinite(s["final_loss"]) and s["cpu"] > 0
    assert s["curve"] and s["curve"][-1]["step"] == 3


def test_arch_scaled_is_na_outside_a_family():
    c, w = loading.load_contestant("arch_scaled"), loading.load_workload(TINY)
    s = run_trial(_spec("arch_scaled", c, w), w, c)
    assert s["status"] == "n/a" and not s["hit"]


def test_frog16_uses_node_mode_on_blocks_and_weight_mode_otherwise():
    c = loading.load_contestant("frog16")
    tiny, dag = loading.load_workload(TINY), loading.load_workload(TINY_DAG)
    assert c._mode(tiny.build(0, "cpu")["model"]) == "node"
    assert c._mode(dag.build(0, "cpu")["model"]) == "weight"
    s = run_trial(_spec("frog16", c, dag), dag, c)
    assert s["status"] == "steps" and s["backwards"] == 0  # no reverse-mode pass through the loss


def test_arch_scaled_transfer_is_the_eq8_ratio():
    c = loading.load_contestant("arch_scaled")
    base, deep = loading.load_workload("dag_mlp_base"), loading.load_workload("dag_mlp_deep")
    hp = c.transfer({"lr": 0.1}, base, deep)
    # S_base = (3 + 3)^3 = 216 for the 3-block chain, S = (5 + 3)^3 = 512 for the 5-block chain
    assert hp["lr"] == pytest.approx(0.1 * math.sqrt(216 / 512))
    assert hp["ratio"] == pytest.approx(lr_multiplier(deep.DAG) / lr_multiplier(base.DAG))


def test_propulate_proposals_stay_in_the_space_and_are_deterministic():
    c = loading.load_contestant("propulate_adamw")
    history = [
        {"hparams": {"lr": 1e-3, "weight_decay": 1e-4, "warmup": 0.05}, "objective": 2.0},
        {"hparams": {"lr": 1e-2, "weight_decay": 1e-3, "warmup": 0.02}, "objective": 1.0},
        {"hparams": {"lr": 3e-4, "weight_decay": 1e-2, "warmup": 0.08}, "objective": 5.0},
    ]
    first = c.propose(history, seed=3, n_trials=5)
    assert first == c.propose(history, seed=3, n_trials=5)
    for key, spec in c.SEARCH_SPACE.items():
        assert spec["min"] * (1 - 1e-9) <= first[key] <= spec["max"] * (1 + 1e-9)
    assert c.propose([], seed=3, n_trials=5).keys() == first.keys()


def test_genfunc_spectrum_is_normalised():
    c = loading.load_contestant("genfunc_sgd")
    w = loading.load_workload(TINY)
    data = w.build(0, "cpu")
    x, y = data["train"].tensors
    K, lam, coef = c.spectrum(data["model"], x[:32], y[:32])
    assert K.shape == (32, 32) and lam[0] == pytest.approx(1.0) and (lam >= 0).all()
    assert bool((coef >= 0).all()) and lam[1:].le(lam[:-1] + 1e-12).all()


def test_halton_draws_are_deterministic_and_in_range():
    sp = {"lr": {"min": 1e-4, "max": 1e-1, "scaling": "log"}, "p": {"points": [1, 2, 3]}, "f": {"value": 0.5}}
    a, b = space.draw(sp, 8, 11), space.draw(sp, 8, 11)
    assert a == b and len({round(d["lr"], 12) for d in a}) == 8
    assert all(1e-4 <= d["lr"] <= 1e-1 and d["p"] in (1, 2, 3) and d["f"] == 0.5 for d in a)
