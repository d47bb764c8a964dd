"""DESIGN.md §7.5 (jvps vs oracle) and 7.9 (closed-form functions, early stopping)."""

from __future__ import annotations

import math

import pytest
import torch

from forward_grad.forward_gradient import multi_jvp
from forward_grad.forward_gradient.oracle import oracle_jvp
from forward_grad.function_optimization import get_function, optimize
from forward_grad.function_optimization.functions import ST_FSTAR_PER_DIM
from forward_grad.function_optimization.optimize import descend, parse_approach
from forward_grad.testing import gen

NAMES = ["sphere", "rosenbrock", "styblinski-tang"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype,rtol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_vmap_jvp_matches_oracle(name, dtype, rtol):
    fn = get_function(name)
    x = torch.randn(64, dtype=dtype, generator=gen(0))
    V = torch.randn(8, 64, dtype=dtype, generator=gen(1))
    value, d = multi_jvp(fn.f, x, V)
    ref = oracle_jvp(fn.f, x, V)
    scale = float(ref.abs().max())
    assert float((d - ref).abs().max()) <= rtol * scale, f"DESIGN.md §7.5: vmap jvp != oracle for {name}"
    assert float(value) == float(fn.f(x))
    _, d_loop = multi_jvp(fn.f, x, V, backend="loop")
    assert torch.allclose(d_loop, d, rtol=rtol, atol=0), "DESIGN.md §7.5: loop backend != vmap"
    _, d_chunk = multi_jvp(fn.f, x, V, chunk_size=3)
    assert torch.allclose(d_chunk, d, rtol=rtol, atol=0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", [1, 2, 37])
def test_analytic_directional_matches_forward_mode(name, n):
    """The closed-form backend: (f, D grad f) equals torch.func.jvp (float64, 1e-12) at random points."""
    fn = get_function(name)
    x = torch.randn(n, dtype=torch.float64, generator=gen(2)) * 1.5
    D = torch.randn(5, n, dtype=torch.float64, generator=gen(3))
    value, d = fn.directional(x, D)
    ref_value, ref = multi_jvp(fn.f, x, D)
    assert float(value) == pytest.approx(float(ref_value), rel=1e-12, abs=1e-12)
    assert torch.allclose(d, ref, rtol=1e-12, atol=1e-12), f"analytic d != forward mode for {name}, n={n}"
    g_value, g = fn.value_and_grad(x)
    assert torch.allclose(g, torch.func.grad(fn.f)(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("approach", ["bp", "fg-mean:4", "frog:4"])
def test_analytic_backend_follows_the_vmap_trajectory(approach):
    """Same tangent stream, same aggregation: the analytic and vmap backends give one trajectory (float64)."""
    runs = [optimize("styblinski-tang", 24, approach, 2e-3, max_steps=200, dtype="float64", jvp_backend=b)
            for b in ("analytic", "vmap")]  # fmt: skip
    assert runs[0].final_f == pytest.approx(runs[1].final_f, rel=1e-10)
    assert runs[0].steps == runs[1].steps
    with pytest.raises(ValueError, match="jvp backend"):
        optimize("sphere", 4, approach, 0.1, jvp_backend="reverse")


def test_function_values_and_gradients():
    d = torch.float64
    sphere, rosen, st = (get_function(n) for n in NAMES)
    x = torch.tensor([1.0, -2.0, 0.5], dtype=d)
    assert float(sphere(x)) == 5.25
    assert float(rosen(torch.ones(5, dtype=d))) == 0.0
    assert float(rosen(torch.tensor([-1.0, 0.0], dtype=d))) == 104.0  # 100 (0 - 1)^2 + (1 + 1)^2
    g = torch.func.grad(rosen.f)(torch.tensor([-1.0, 0.0], dtype=d))
    assert torch.allclose(g, torch.tensor([-404.0, -200.0], dtype=d))  # d/dx0: -400 x0 (x1 - x0^2) - 2 (1 - x0)
    xs = torch.full((4,), -2.903534, dtype=d)
    assert abs(float(st(xs)) - 4 * ST_FSTAR_PER_DIM) < 1e-9, "DESIGN.md §3.4: ST f* constant"
    assert st.fstar(4) == 4 * -39.16616570377142
    assert float(torch.func.grad(st.f)(torch.zeros(2, dtype=d))[0]) == 2.5
    assert rosen.degenerate(1) and not rosen.degenerate(2) and not sphere.degenerate(1)
    assert torch.equal(rosen.x0(3), torch.tensor([-1.0, 0, 0])) and torch.equal(sphere.x0(2), -torch.ones(2))
    r = optimize("rosenbrock", 1, "bp", 0.1, max_steps=5)
    assert r.degenerate and r.final_f == 0.0


def test_early_stopping_after_patience_plus_one():
    # lr = 1 on the sphere with bp: x -> x - 2x = -x, f constant, so every step is non-improving
    for patience in (0, 3, 7):
        items = list(descend("sphere", 4, "bp", 1.0, patience=patience, max_steps=100))
        assert items[-1][2] == "early_stopped"
        non_improving = len(items) - 1  # step 0 compares with +inf
        assert non_improving == patience + 1, f"DESIGN.md §7.9: stopped after {non_improving} != patience+1 steps"


def test_nonfinite_stops():
    r = optimize("sphere", 4, "bp", 1e30, max_steps=100, patience=1000)
    assert r.stop_reason == "nonfinite" and r.steps < 100, f"DESIGN.md §7.9: {r.stop_reason} after {r.steps}"


def test_bad_inputs():
    for bad in ("fg-mean:0", "frog:x", "adam", "fg:2"):
        with pytest.raises(ValueError):
            parse_approach(bad)
    with pytest.raises(ValueError):
        get_function("ackley")
    with pytest.raises(ValueError):
        optimize("sphere", 0, "bp", 0.1)
    with pytest.raises(ValueError):
        optimize("sphere", 4, "bp", -1.0)


def test_seeded_runs_bitwise_equal():
    a = optimize("styblinski-tang", 16, "frog:4", 0.05, max_steps=50, seed=3)
    b = optimize("styblinski-tang", 16, "frog:4", 0.05, max_steps=50, seed=3)
    assert a.final_f == b.final_f and math.isfinite(a.final_f)


def test_multi_jvp_shares_one_dropout_draw_across_lanes() -> None:
    """A model with dropout (arena's order_bert) runs under vmap, and every lane sees the same mask."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.Dropout(0.5), torch.nn.Linear(32, 1)).train()
    x = torch.randn(6)
    V = torch.randn(4, 6)
    V[1] = V[0]  # a duplicated tangent: equal derivatives only if both lanes saw the same mask
    V[3] = 2 * V[2]  # linearity in the tangent holds within one draw
    _, d = multi_jvp(lambda z: net(z).sum(), x, V)
    assert d.shape == (4,)
    assert d[1] == d[0] and torch.allclose(d[3], 2 * d[2])
