"""Resume, RNG replay, norm layers and CUDA placement (DESIGN.md §7 items 12, 13, 14, 17)."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch
from ls_recipes import IDS, RECIPES, batches, flat_params, mlp, train
from torch import nn


@pytest.mark.parametrize("r", RECIPES, ids=IDS)
def test_resume_is_bitwise(r, digits):
    """DESIGN.md §7.12: 20 steps + torch.save/torch.load into fresh objects + 10 steps == 30 straight steps, bitwise."""
    x, y = digits
    straight = mlp(dropout=0.2)
    opt = r.cls(straight.parameters(), seed=7)
    train(opt, straight, x, y, 30)

    first = mlp(dropout=0.2)
    opt1 = r.cls(first.parameters(), seed=7)
    train(opt1, first, x, y, 20)
    buf = io.BytesIO()
    torch.save({"model": first.state_dict(), "opt": opt1.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=False)
    fresh = mlp(seed=123, dropout=0.2)
    fresh.load_state_dict(saved["model"])
    opt2 = r.cls(fresh.parameters(), seed=999)
    opt2.load_state_dict(saved["opt"])
    train(opt2, fresh, x, y, 10, skip=20)

    assert torch.equal(flat_params(straight), flat_params(fresh)), f"{r.name}: params differ after resume"
    assert opt.eta == opt2.eta, "DESIGN.md §7.12: eta differs"
    keys = ("n_forwards", "n_searches", "n_backtracks", "n_fail", "n_fallback", "n_steps")
    assert {k: opt.diagnostics[k] for k in keys} == {k: opt2.diagnostics[k] for k in keys}, "DESIGN.md §7.12: counters"


@pytest.mark.parametrize("r", RECIPES, ids=IDS)
def test_global_rng_untouched_and_masks_replayed(r, digits):
    """DESIGN.md §7.13: global torch/numpy RNG unchanged by a step; dropout masks equal within a step, differ across."""
    x, y = digits
    model = mlp(dropout=0.5)
    opt = r.cls(model.parameters())
    crit = nn.CrossEntropyLoss()
    masks: list[list[torch.Tensor]] = []

    def closure(bx, by):
        def f(backward=True):
            masks[-1].append(torch.nn.functional.dropout(torch.ones(64), 0.5, training=True))
            if backward:
                opt.zero_grad()
                loss = crit(model(bx), by)
                loss.backward()
                return loss
            return crit(model(bx), by)

        return f

    torch.manual_seed(5)
    np.random.seed(5)
    multi_call_steps = 0
    for bx, by in batches(x, y, 6):
        t_state, n_state = torch.get_rng_state(), np.random.get_state()
        masks.append([])
        opt.step(closure(bx, by))
        assert torch.equal(t_state, torch.get_rng_state()), "DESIGN.md §7.13: global torch RNG changed by step()"
        assert all(np.array_equal(a, b) for a, b in zip(n_state[1:2], np.random.get_state()[1:2])), "numpy RNG changed"
        assert all(torch.equal(m, masks[-1][0]) for m in masks[-1]), "DESIGN.md §7.13: masks differ within a step"
        multi_call_steps += len(masks[-1]) > 1
    assert multi_call_steps >= 3
    for a, b in zip(masks, masks[1:]):
        assert not torch.equal(a[0], b[0]), "DESIGN.md §7.13: masks equal across consecutive steps"


@pytest.mark.parametrize("r", RECIPES, ids=IDS)
def test_same_seed_bitwise(r, digits):
    """DESIGN.md §7.13: two runs with the same seed are bitwise equal (dropout MLP)."""
    x, y = digits
    out = []
    for _ in range(2):
        model = mlp(dropout=0.3)
        opt = r.cls(model.parameters(), seed=3)
        train(opt, model, x, y, 15)
        out.append(flat_params(model))
    assert torch.equal(out[0], out[1]), "DESIGN.md §7.13: same seed, different parameters"


@pytest.mark.parametrize("r", RECIPES, ids=IDS)
@pytest.mark.parametrize("with_model", [True, False], ids=["model", "no_model"])
def test_norm_layer_stats(r, with_model, digits):
    """DESIGN.md §7.14: with model=, running stats == one train forward at w0 and num_batches_tracked +1;
    else +1 + trials."""
    x, y = digits
    model = mlp(norm=True)
    opt = r.cls(model.parameters(), model=model if with_model else None)
    crit = nn.CrossEntropyLoss()
    bx, by = next(batches(x, y, 1))
    ref = copy.deepcopy(model)
    with torch.no_grad():
        ref(bx)
    opt.step(lambda: crit(model(bx), by))
    bn, bn_ref = model[2], ref[2]
    trials = opt.diagnostics["trials"]
    assert trials >= 1
    if with_model:
        assert torch.equal(bn.running_mean, bn_ref.running_mean), "DESIGN.md §7.14: running_mean != one train forward"
        assert torch.equal(bn.running_var, bn_ref.running_var), "DESIGN.md §7.14: running_var != one train forward"
        assert bn.num_batches_tracked.item() == 1, "DESIGN.md §7.14"
    else:
        assert bn.num_batches_tracked.item() == 1 + trials, "DESIGN.md §7.14: without model=, 1 + trials updates"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (DESIGN.md §7.17)")
@pytest.mark.parametrize("r", RECIPES, ids=IDS)
def test_cuda_matches_cpu(r, digits):
    """DESIGN.md §7.17: 5 float64 steps on CUDA; state on the param's device; params allclose(rtol=1e-6) to CPU."""
    x, y = digits
    x = x.double()
    cpu = mlp(dtype=torch.float64)
    gpu = copy.deepcopy(cpu).cuda()
    o_cpu = r.cls(cpu.parameters(), seed=1)
    o_gpu = r.cls(gpu.parameters(), seed=1)
    train(o_cpu, cpu, x, y, 5)
    train(o_gpu, gpu, x.cuda(), y.cuda(), 5)
    for st in o_gpu.state.values():
        assert all(t.is_cuda for t in st.values() if torch.is_tensor(t)), "state not on the param's device"
    a, b = flat_params(cpu), flat_params(gpu).cpu()
    assert torch.allclose(a, b, rtol=1e-6, atol=1e-12), f"DESIGN.md §7.17: max diff {(a - b).abs().max()}"
