"""Contract tests over every AutoWU mode (RECIPES) and DESIGN.md §7.9, §7.10, §7.11."""

from __future__ import annotations

import io
import random
import warnings

import numpy as np
import pytest
import torch
from autowu_helpers import RECIPES, SHORT, make_sched

from autowu import AutoWU
from autowu.synthetic import CurveRun, run_curve

BAD_ARGS = [
    ({"min_lr": 0.0}, "min_lr"),
    ({"min_lr": 2.0}, "min_lr"),
    ({"max_warmup_fraction": 1.5}, "max_warmup_fraction"),
    ({"cooldown_fraction": -0.1}, "cooldown_fraction"),
    ({"warmup_type": "cubic"}, "warmup_type"),
    ({"warmup_unit": "hour"}, "warmup_unit"),
    ({"cooldown_type": "step"}, "cooldown_type"),
    ({"decay_phase_stat": "acc"}, "decay_phase_stat"),
    ({"decay_phase_factor": 0.0}, "decay_phase_factor"),
    ({"decay_phase_factor": 1.5}, "decay_phase_factor"),
    ({"confidence": 1.0}, "confidence"),
    ({"votes": 6}, "votes"),
    ({"votes": 0}, "votes"),
    ({"patience": 0}, "patience"),
    ({"lengthscale": 0.0}, "lengthscale"),
    ({"test_interval": 0}, "test_interval"),
    ({"gp_fit": "sgd"}, "gp_fit"),
    ({"on_nonfinite": "skip"}, "on_nonfinite"),
    ({"fallback_lr": "peak"}, "fallback_lr"),
]


@pytest.mark.parametrize("kw,name", BAD_ARGS, ids=[n + str(i) for i, (_, n) in enumerate(BAD_ARGS)])
def test_bad_constructor_input_names_argument(kw, name):
    with pytest.raises(ValueError, match=name):
        make_sched(**kw)


@pytest.mark.parametrize("s,e,name", [(0, 60, "steps_per_epoch"), (50, 0, "total_epochs"), (2.5, 60, "steps_per")])
def test_bad_lengths(s, e, name):
    with pytest.raises(ValueError, match=name):
        make_sched(s=s, e=e)


def _short_run(recipe_kw, transform=None, seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_curve("bowl", 0.05, seed, SHORT["steps_per_epoch"], SHORT["epochs"], transform, **recipe_kw)


@pytest.mark.parametrize("r", RECIPES, ids=lambda r: r.name)
def test_recipe_state_dict_round_trip_keeps_training(r):
    full = _short_run(r.kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = CurveRun("bowl", 0.05, 0, SHORT["steps_per_epoch"], SHORT["epochs"], **r.kwargs).run_until(75)
        buf = io.BytesIO()
        torch.save(run.state_dict(), buf)
        buf.seek(0)
        state = torch.load(buf, weights_only=True)
        fresh = CurveRun("bowl", 0.05, 0, SHORT["steps_per_epoch"], SHORT["epochs"], **r.kwargs)
        fresh.load_state_dict(state)
        fresh.run_until()
    assert fresh.lrs == full.lrs, f"{r.name}: resumed LR trace differs from the uninterrupted one (DESIGN.md §3.5)"
    assert fresh.scheduler.switch_step == full.switch_step and fresh.scheduler.switch_lr == full.switch_lr
    assert full.switch_step is not None, f"{r.name}: the short bowl must switch"


@pytest.mark.parametrize("r", RECIPES, ids=lambda r: r.name)
def test_recipe_seeded_runs_bitwise_and_rng_untouched(r):
    torch_state, np_state, py_state = torch.random.get_rng_state(), np.random.get_state(), random.getstate()
    a = _short_run(r.kwargs)
    assert torch.equal(torch.random.get_rng_state(), torch_state), f"{r.name}: global torch RNG touched"
    assert np.random.get_state()[1].tolist() == np_state[1].tolist() and random.getstate() == py_state
    torch.manual_seed(123)
    np.random.seed(5)
    random.seed(7)
    b = _short_run(r.kwargs)
    assert a.lrs == b.lrs and a.switch_lr == b.switch_lr, f"DESIGN.md §7.11: {r.name} not reproducible"


def test_thread_count_does_not_matter_and_is_restored():
    a = _short_run({})
    torch.set_num_threads(2)
    b = _short_run({})
    assert torch.get_num_threads() == 2, "DESIGN.md §7.11: the caller's thread count is restored"
    assert a.lrs == b.lrs, "DESIGN.md §7.11: output independent of the outer thread count"


def _bf16(x):
    return float(torch.tensor(x, dtype=torch.float32).to(torch.bfloat16).float())


TRANSFORMS = {"float": lambda v: v, "np.float32": np.float32}
for _dt in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
    for _shape in ((), (1,), (1, 1)):
        TRANSFORMS[f"{_dt}{_shape}"] = (lambda d, s: lambda v: torch.full(s, v, dtype=d))(_dt, _shape)


def test_every_input_type_gives_one_schedule():
    runs = {name: _short_run({}, transform=lambda v, f=f: f(_bf16(v))) for name, f in TRANSFORMS.items()}
    ref = runs["float"]
    assert ref.switch_step is not None
    for name, res in runs.items():
        assert res.lrs == ref.lrs and res.switch_lr == ref.switch_lr, f"DESIGN.md §7.9: {name} gives another schedule"
    assert len(runs) == 14


def test_bad_losses():
    _, s = make_sched()
    s.step(3)  # Python ints are accepted
    with pytest.raises(ValueError, match="scalar"):
        s.step(torch.zeros(2))
    with pytest.raises(TypeError):
        s.step("1.0")
    with pytest.raises(TypeError):
        s.step()
    with pytest.raises(TypeError):
        s.step(True)
    with pytest.raises(TypeError):
        s.step(torch.tensor(1 + 2j))
    assert s.last_epoch == 1, "rejected losses must not advance the scheduler"


def test_steps_are_sync_free(monkeypatch):
    opt, s = make_sched()
    losses = [torch.tensor(2.0 + 0.01 * u) for u in range(1, 50)]

    def boom(*a, **k):
        raise AssertionError("host sync in a non-test step (DESIGN.md §7.10)")

    for name in ("item", "__bool__", "__float__", "tolist", "cpu", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, boom)
    for loss in losses:
        opt.step()
        s.step(loss)
    monkeypatch.undo()
    assert s.last_epoch == 49 and len(s.test_log) == 0


def test_config_mismatch_names_field():
    _, a = make_sched()
    a.step(2.0)
    _, b = make_sched(s=40)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        b.load_state_dict(a.state_dict())


def test_tensor_lr_updated_in_place():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.AdamW([p], lr=torch.tensor(0.01))
    lr_tensor = opt.param_groups[0]["lr"]
    s = AutoWU(opt, 5, 4)
    for _ in range(7):
        p.grad = torch.ones(3)
        opt.step()
        s.step(1.0)
    assert opt.param_groups[0]["lr"] is lr_tensor, "DESIGN.md §3.5: tensor LRs are filled in place"
    assert abs(float(lr_tensor) - s.get_last_lr()[0]) <= 1e-6 * s.get_last_lr()[0], "float32 tensor lr holds the LR"
    assert "initial_lr" in opt.param_groups[0]


def _optimizers():
    from timm.optim import AdamP, Lamb

    return {
        "sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
        "adamw_tensor_lr": lambda p: torch.optim.AdamW(p, lr=torch.tensor(1e-3)),
        "adamp": lambda p: AdamP(p, lr=1e-3),
        "lamb": lambda p: Lamb(p, lr=1e-3),
    }


@pytest.mark.parametrize("name", ["sgd", "adamw_tensor_lr", "adamp", "lamb"])
def test_optimizers_apply_the_lr(name):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = _optimizers()[name](model.parameters())
    sched = AutoWU(opt, 5, 4)
    x, y = torch.randn(20, 4), torch.randint(0, 2, (20,))
    for step in range(10):  # 2 epochs of S = 5
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step(loss.detach())
        lr = opt.param_groups[0]["lr"]
        expected = sched.lr_at(step + 2)
        assert abs(float(lr) - expected) <= 1e-6 * expected, f"DESIGN.md §7.14: {name} holds lr_{step + 2}"
    assert sched.last_epoch == 10


def test_grouped_settings_equal_flat_keywords():
    """DESIGN.md §3.3: config groups and flat keywords build the same scheduler; a flat keyword wins."""
    from autowu import DecayConfig, GPConfig, PolicyConfig, RampConfig

    flat = {"min_lr": 1e-4, "immediate_cooldown": False, "votes": 2, "patience": 2, "cooldown_fraction": 0.3}
    _, a = make_sched(**flat)
    _, b = make_sched(
        ramp=RampConfig(min_lr=1e-4),
        decay=DecayConfig(immediate_cooldown=False, cooldown_fraction=0.3),
        gp=GPConfig(votes=2),
        policy=PolicyConfig(patience=2),
    )
    assert a.state_dict()["config"] == b.state_dict()["config"]
    _, c = make_sched(gp=GPConfig(votes=2, confidence=0.9), votes=4)
    assert c.gp_config.votes == 4 and c.gp_config.confidence == 0.9
    assert (c.ramp_config, c.decay_config, c.policy_config) == (RampConfig(), DecayConfig(), PolicyConfig())


def test_unknown_keyword_and_wrong_group_type():
    with pytest.raises(TypeError, match="warmup_epochs"):
        make_sched(warmup_epochs=3)
    from autowu import GPConfig

    with pytest.raises(TypeError, match="RampConfig"):
        make_sched(ramp=GPConfig())
