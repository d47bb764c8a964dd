"""ForwardGradient (estimator.py) against closed forms in float64 on tiny nets (DESIGN.md §3.3, §7.6-7.8).

Every expected value is computed independently of the estimator: the true gradient from reverse mode, the tangents
drawn again from a generator with the same seed, and the aggregation written out (V^T V g / K, the projector
pinv(V) V, ...). Models are a few dozen parameters, so the whole file runs in about a second.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.cli import UsageError
from forward_grad.forward_gradient import (
    ForwardGradient,
    aggregate,
    frog_directions,
    frog_expected_cos,
    model_blocks,
    sample_tangents,
)
from forward_grad.forward_gradient import estimator as est
from forward_grad.testing import gen

F64 = torch.float64
TOL = 1e-12


def _close(got, want, tol=TOL):
    err = float((got - want).abs().max())
    scale = max(1.0, float(want.abs().max()))
    assert err <= tol * scale, f"max abs error {err:.3e} (scale {scale:.3e})"


def _mlp(frozen_bias=False):
    """Blocks: Linear(5,4)+Tanh | Tanh (no parameters) | Linear(4,3). Node dimension 4 + 4 + 3 = 11."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Sequential(nn.Linear(5, 4), nn.Tanh()), nn.Tanh(), nn.Linear(4, 3)).to(F64)
    if frozen_bias:
        model[0][0].bias.requires_grad_(False)
    return model


def _bn_net(momentum=0.1, track=True):
    """Conv(1->2, 3x3) + BatchNorm2d + ReLU | Flatten + Linear(32, 3), for inputs (B, 1, 4, 4)."""
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2, momentum=momentum, track_running_stats=track)),
        nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(32, 3)),
    ).to(F64)


def _data(shape=(6, 5), classes=3, seed=3):
    g = gen(seed)
    return torch.randn(*shape, generator=g, dtype=F64), torch.randint(0, classes, (shape[0],), generator=g)


def _trainable(model):
    return [p for p in model.parameters() if p.requires_grad]


def _bp(model, x, y, loss_fn=F.cross_entropy):
    """Reverse-mode gradient of the batch-mean loss over the trainable parameters, flattened."""
    params = _trainable(model)
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss_fn(model(x), y), params)])


def _projector(V):
    return torch.linalg.pinv(V) @ V  # P_U, U = span of the rows of V


def _expected_estimate(name, V, g, scaling=False, qr=False):
    """g_hat for the true gradient g (a vector or per-sample rows) from the aggregation's formula."""
    k, n = V.shape
    if name == "frog":
        out = g @ _projector(V)  # P_U is symmetric
        return out / frog_expected_cos(n, k) if scaling else out
    if name == "mean":
        out = (g @ V.T) @ V / k
        if scaling:
            sq = (V * V).sum(-1).mean()
            out = out / (sq * ((n + k) / (1 + k)) ** 0.5 / n) if k > 1 else out / (sq * (2 / (torch.pi * n)) ** 0.5)
        return out
    if name == "sum":
        return (g @ V.T) @ V
    if name == "mean_times_dim":
        return (g @ V.T) @ V * n / k
    if name == "max":
        d = g @ V.T
        i = int(d.abs().argmax())
        return d[i] * V[i]
    raise AssertionError(name)


# --- construction -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(num_directions=0), "num_directions K must be a positive integer, got 0"),
        (dict(num_directions=-2), "num_directions K must be a positive integer, got -2"),
        (dict(num_directions=2.5), "num_directions K must be a positive integer, got 2.5"),
        (dict(frog_mode="lu"), "unknown frog_mode 'lu'; choose from qr, solve"),
        (dict(perturbation_mode="edge"), "unknown perturbation_mode 'edge'; choose from node, weight"),
        (dict(jvp_backend="scan"), "unknown jvp_backend 'scan'; choose from vmap, loop"),
        (dict(jvp_chunk_size=0), "jvp_chunk_size must be positive, got 0"),
        (dict(jvp_chunk_size=-1), "jvp_chunk_size must be positive, got -1"),
    ],
)
def test_bad_settings_are_usage_errors_with_exact_messages(kwargs, message):
    with pytest.raises(UsageError) as err:
        ForwardGradient(**kwargs)
    assert str(err.value) == message


def test_defaults_and_explicit_settings():
    fg = ForwardGradient()
    assert (fg.k, fg.aggregation, fg.sampler.kind, fg.normalize_tangents) == (1, "mean", "normal", False)
    assert (fg.frog_mode, fg.scaling_correction, fg.perturbation_mode) == ("qr", False, "node")
    assert (fg.jvp_backend, fg.jvp_chunk_size, fg.resample_rank_deficient, fg.is_frog) == ("vmap", None, False, False)
    assert torch.equal(fg.sample(6), sample_tangents("normal", 1, 6, generator=gen(0)))  # default: seed 0
    fg = ForwardGradient(
        2.0,
        "frog",
        "rademacher",
        normalize_tangents=True,
        frog_mode="solve",
        scaling_correction=True,
        perturbation_mode="weight",
        jvp_backend="loop",
        jvp_chunk_size=1,
    )
    assert type(fg.k) is int and fg.k == 2 and fg.is_frog and fg.aggregation == "orthogonal_projection"
    assert (fg.sampler.kind, fg.normalize_tangents, fg.frog_mode, fg.scaling_correction) == (
        "rademacher",
        True,
        "solve",
        True,
    )
    assert (fg.perturbation_mode, fg.jvp_backend, fg.jvp_chunk_size) == ("weight", "loop", 1)


@pytest.mark.parametrize(
    "k,agg,sampler,given,want",
    [
        (31, "frog", "rademacher", None, True),
        (32, "frog", "rademacher", None, False),
        (1, "frog", "rademacher", None, True),
        (4, "mean", "rademacher", None, False),
        (4, "frog", "normal", None, False),
        (4, "frog", "rademacher", False, False),
        (4, "mean", "normal", True, True),
    ],
)
def test_rank_deficient_resampling_default(k, agg, sampler, given, want):
    """DESIGN.md §3.1: on by default only for frog with rademacher tangents and K < 32."""
    assert ForwardGradient(k, agg, sampler, resample_rank_deficient=given).resample_rank_deficient is want


def test_sample_passes_its_settings_to_the_sampler():
    got = ForwardGradient(3, "frog", "rademacher", generator=gen(5)).sample(3)
    want = sample_tangents("rademacher", 3, 3, generator=gen(5), resample_rank_deficient=True)
    assert got.dtype == torch.float32 and torch.equal(got, want)
    assert int(torch.linalg.matrix_rank(got)) == 3
    got = ForwardGradient(2, normalize_tangents=True, generator=gen(6)).sample(7, F64, "cpu")
    want = sample_tangents("normal", 2, 7, generator=gen(6), dtype=F64, normalize=True)
    assert got.dtype == F64 and torch.equal(got, want)
    _close(got.norm(dim=1), torch.ones(2, dtype=F64))


def test_directions_and_combine_per_aggregation():
    V = sample_tangents("normal", 3, 7, generator=gen(7), dtype=F64)
    g = torch.randn(7, generator=gen(8), dtype=F64)
    for name in ("mean", "sum", "max"):
        fg = ForwardGradient(3, name)
        assert fg.directions(V) is V
        _close(fg.combine(V @ g, V, V), aggregate(name, V @ g, V))
    assert ForwardGradient(3, "frog", frog_mode="solve").directions(V) is V
    qr = ForwardGradient(3, "frog")
    D = qr.directions(V)
    _close(D, frog_directions(V))
    _close(qr.combine(D @ g, V, D), _expected_estimate("frog", V, g))
    scaled = ForwardGradient(3, "frog", scaling_correction=True)
    _close(scaled.combine(D @ g, V, D), _expected_estimate("frog", V, g) / frog_expected_cos(7, 3))
    solve = ForwardGradient(3, "frog", frog_mode="solve", scaling_correction=True)
    _close(solve.combine(V @ g, V, V), _expected_estimate("frog", V, g, scaling=True))
    mean = ForwardGradient(3, "mean", scaling_correction=True)
    _close(mean.combine(V @ g, V, V), _expected_estimate("mean", V, g, scaling=True))


# --- functions of a tensor ----------------------------------------------------------------------------------------
def _f(x):
    return (x**3).sum() + (x[0] * x[1]).sum()


def test_value_and_estimate_closed_form():
    x = torch.randn(2, 3, generator=gen(9), dtype=F64)
    g = torch.func.grad(_f)(x).reshape(-1)
    for name, kw in [("mean", {}), ("frog", {}), ("frog", dict(frog_mode="solve")), ("sum", {})]:
        V = ForwardGradient(4, name, generator=gen(10)).sample(6, F64)
        value, g_hat = ForwardGradient(4, name, generator=gen(10), **kw).value_and_estimate(_f, x)
        assert g_hat.shape == x.shape and float(value) == pytest.approx(float(_f(x)), rel=1e-15)
        _close(g_hat.reshape(-1), _expected_estimate(name, V, g))
    est_only = ForwardGradient(4, generator=gen(10)).estimate(_f, x)
    _close(est_only.reshape(-1), _expected_estimate("mean", V, g))


def test_value_and_estimate_with_supplied_jvps():
    x = torch.randn(2, 3, generator=gen(11), dtype=F64)
    g = torch.func.grad(_f)(x).reshape(-1)
    seen = []

    def jvps(flat, D):
        seen.append((flat.shape, D.shape))
        return torch.tensor(5.0, dtype=F64), D @ g

    V = ForwardGradient(2, "frog", generator=gen(12)).sample(6, F64)
    value, g_hat = ForwardGradient(2, "frog", generator=gen(12)).value_and_estimate(_f, x, jvps=jvps)
    assert seen == [(torch.Size([6]), torch.Size([2, 6]))] and float(value) == 5.0
    _close(g_hat.reshape(-1), _expected_estimate("frog", V, g))


def test_backend_and_chunk_size_reach_multi_jvp(monkeypatch):
    calls = []
    real = est.multi_jvp

    def spy(*args, **kwargs):
        calls.append((kwargs.get("backend"), kwargs.get("chunk_size")))
        return real(*args, **kwargs)

    monkeypatch.setattr(est, "multi_jvp", spy)
    x = torch.randn(4, generator=gen(13), dtype=F64)
    ForwardGradient(3, jvp_backend="loop", jvp_chunk_size=2).estimate(_f, x)
    model = _mlp()
    xb, yb = _data()
    ForwardGradient(3, jvp_backend="loop", jvp_chunk_size=2).step(model, (xb, yb))
    ForwardGradient(3, jvp_backend="loop", jvp_chunk_size=2, perturbation_mode="weight").step(model, (xb, yb))
    bn = _bn_net()
    ForwardGradient(3, jvp_backend="loop", jvp_chunk_size=2, perturbation_mode="weight").step(bn, _data((4, 1, 4, 4)))
    assert calls == [("loop", 2)] * 4


# --- weight perturbation ------------------------------------------------------------------------------------------
WEIGHT_CASES = [
    ("mean", 1, {}),
    ("mean", 3, {}),
    ("sum", 3, {}),
    ("mean_times_dim", 3, {}),
    ("max", 3, {}),
    ("frog", 3, {}),
    ("frog", 3, dict(frog_mode="solve")),
    ("mean", 3, dict(scaling_correction=True)),
    ("mean", 1, dict(scaling_correction=True)),
    ("frog", 3, dict(scaling_correction=True)),
]


@pytest.mark.parametrize("name,k,kw", WEIGHT_CASES, ids=[f"{a}-{k}-{'-'.join(kw)}" for a, k, kw in WEIGHT_CASES])
def test_weight_mode_grad_is_the_aggregated_forward_gradient(name, k, kw):
    """.grad = aggregation of d = V grad L over the trainable parameters (frozen ones untouched), exactly."""
    model = _mlp(frozen_bias=True)
    x, y = _data()
    g = _bp(model, x, y)
    n = g.numel()
    fg = ForwardGradient(k, name, perturbation_mode="weight", generator=gen(20), **kw)
    assert fg.dimension(model, x) == n == 4 * 5 + 4 * 3 + 3
    V = ForwardGradient(k, name, generator=gen(20)).sample(n, F64)
    params = _trainable(model)
    params[0].grad = torch.full_like(params[0], 7.0)
    kept = params[0].grad
    combined = _count_combine(fg)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch's "output resized" warning of a wrongly shaped out=
        res = fg.step(model, (x, y))
    linear = not kw and name in ("mean", "sum", "mean_times_dim", "frog")
    assert bool(combined) is not linear, "linear aggregations are written per parameter, without combine()"
    assert res.jvps == k and res.loss == pytest.approx(float(F.cross_entropy(model(x), y)), rel=1e-14)
    assert params[0].grad is kept and model[0][0].bias.grad is None
    got = torch.cat([p.grad.reshape(-1) for p in params])
    _close(got, _expected_estimate(name, V, g, scaling=kw.get("scaling_correction", False)))


def _count_combine(fg):
    calls = []
    real = fg.combine

    def counted(*args):
        calls.append(1)
        return real(*args)

    fg.combine = counted
    return calls


def test_weight_mode_single_parameter_and_non_contiguous_parameter():
    x, y = _data()
    one = nn.Linear(5, 3, bias=False).to(F64)
    g = _bp(one, x, y)
    fg = ForwardGradient(2, perturbation_mode="weight", generator=gen(23))
    V = ForwardGradient(2, generator=gen(23)).sample(15, F64)
    fg.step(one, (x, y))
    _close(one.weight.grad.reshape(-1), _expected_estimate("mean", V, g))
    model = _mlp()
    model[2].weight = nn.Parameter(torch.randn(4, 3, generator=gen(24), dtype=F64).T)  # a non-contiguous parameter
    g = _bp(model, x, y)
    fg = ForwardGradient(1, perturbation_mode="weight", generator=gen(25))
    V = ForwardGradient(1, generator=gen(25)).sample(g.numel(), F64)
    combined = _count_combine(fg)
    fg.step(model, (x, y))
    assert model[2].weight.grad.is_contiguous() and not combined, "a fresh .grad is contiguous (fast path)"
    _close(torch.cat([p.grad.reshape(-1) for p in model.parameters()]), _expected_estimate("mean", V, g))


def test_weight_mode_non_contiguous_grad_and_second_step():
    """A preset .grad that is not contiguous is filled through the general path, in place; a second step on a model
    of another dtype reallocates the reused parameter buffer."""
    model = _mlp()
    x, y = _data()
    g = _bp(model, x, y)
    fg = ForwardGradient(3, "mean", perturbation_mode="weight", generator=gen(21))
    V = ForwardGradient(3, generator=gen(21)).sample(g.numel(), F64)
    w = model[0][0].weight
    w.grad = torch.zeros(w.shape[1], w.shape[0], dtype=F64).T
    kept = w.grad
    fg.step(model, (x, y))
    assert w.grad is kept and not w.grad.is_contiguous()
    _close(torch.cat([p.grad.reshape(-1) for p in model.parameters()]), _expected_estimate("mean", V, g))
    buf = fg._flat_buffer
    assert buf is not None and buf.dtype == F64
    state = fg.generator.get_state()
    V2 = fg.sample(g.numel(), F64)  # the tangents of the next step
    fg.generator.set_state(state)
    fg.step(model, (x, y))
    assert fg._flat_buffer is buf, "the parameter buffer is reused across steps"
    _close(torch.cat([p.grad.reshape(-1) for p in model.parameters()]), _expected_estimate("mean", V2, g))
    model32 = _mlp().float()
    fg.step(model32, (x.float(), y))
    assert fg._flat_buffer is not buf and fg._flat_buffer.dtype == torch.float32


def test_flat_parameters_buffer():
    fg = ForwardGradient(2, perturbation_mode="weight")
    a = torch.arange(6.0, dtype=F64).reshape(2, 3)
    b = torch.tensor([7.0, 8.0], dtype=F64)
    out = fg._flat_parameters([a, b], 8)
    assert torch.equal(out, torch.arange(9.0, dtype=F64)[torch.tensor([0, 1, 2, 3, 4, 5, 7, 8])])
    assert fg._flat_parameters([a, b], 8) is out
    short = fg._flat_parameters([a], 6)
    assert short is not out and torch.equal(short, a.reshape(-1))
    f32 = fg._flat_parameters([a.float()], 6)
    assert f32.dtype == torch.float32 and f32 is not short


def test_aliased_lanes_share_the_direction_memory():
    shapes = [(3, 1, 2), (4,), (2, 2)]
    m = sum(torch.Size(s).numel() for s in shapes)
    big = torch.randn(3, m, generator=gen(22), dtype=F64)
    D = big[1:2]  # a row with a storage offset
    params = [torch.zeros(s, dtype=F64) for s in shapes]
    lanes = ForwardGradient._aliased_lanes(D, params)
    assert lanes is not None and len(lanes) == 3
    start = 0
    for lane, p in zip(lanes, params):
        k = p.numel()
        assert lane.shape == (1, *p.shape) and lane.stride() == (k, *p.stride())
        assert torch.equal(lane, D[:, start : start + k].reshape(1, *p.shape))
        assert lane.data_ptr() == D.data_ptr() + start * D.element_size()
        assert lane.untyped_storage().nbytes() == k * D.element_size()
        start += k
    assert ForwardGradient._aliased_lanes(big[:2], params) is None  # K = 2
    assert ForwardGradient._aliased_lanes(big[0], params) is None  # not 2-d
    strided = torch.randn(1, 2 * m, dtype=F64)[:, ::2]
    assert ForwardGradient._aliased_lanes(strided, params) is None
    assert ForwardGradient._aliased_lanes(D.clone().requires_grad_(), params) is None
    assert ForwardGradient._aliased_lanes(D.float(), params) is None
    assert ForwardGradient._aliased_lanes(nn.Parameter(D.clone(), requires_grad=False), params) is None


def test_weight_mode_batchnorm_d_and_running_statistics():
    """Train-mode BatchNorm in weight mode: d = V grad L of the train-mode loss, running statistics updated once
    like one ordinary forward, num_batches_tracked 1, track_running_stats restored."""
    x, y = _data((4, 1, 4, 4))
    model, twin = _bn_net(), _bn_net()
    loss = F.cross_entropy(twin(x), y)  # one train-mode forward: the reference statistics update
    g = torch.cat([t.reshape(-1) for t in torch.autograd.grad(loss, list(twin.parameters()))])
    fg = ForwardGradient(2, "mean", perturbation_mode="weight")
    V = fg.sample(g.numel(), F64)
    value, d = fg.weight_jvps(model, (x, y), V)
    _close(d, V @ g)
    assert float(value) == pytest.approx(float(loss), rel=1e-12)
    bn, ref = model[0][1], twin[0][1]
    _close(bn.running_mean, ref.running_mean)
    _close(bn.running_var, ref.running_var)
    assert int(bn.num_batches_tracked) == 1 and bn.track_running_stats is True and bn.training


def test_batchnorm_cumulative_average_eval_mode_and_untracked():
    x, y = _data((4, 1, 4, 4))
    x2, y2 = _data((4, 1, 4, 4), seed=4)
    model, twin = _bn_net(momentum=None), _bn_net(momentum=None)
    twin(x), twin(x2)
    fg = ForwardGradient(2, "frog", generator=gen(30))
    fg.step(model, (x, y))
    fg.step(model, (x2, y2))
    bn, ref = model[0][1], twin[0][1]
    _close(bn.running_mean, ref.running_mean)
    _close(bn.running_var, ref.running_var)
    assert int(bn.num_batches_tracked) == 2
    # eval mode: running statistics are used and left alone; node d = v . dL/da of the eval-mode net
    model.eval()
    before = bn.running_mean.clone(), bn.running_var.clone()
    V = fg.sample(fg.dimension(model, x), F64)
    _, d, _ = fg.node_jvps(model, (x, y), V)
    _close(d, _oracle_d(model, x, y, V))
    assert torch.equal(bn.running_mean, before[0]) and torch.equal(bn.running_var, before[1])
    # untracked BatchNorm: batch statistics, no buffers, nothing to update
    plain = _bn_net(track=False)
    g = _bp(plain, x, y)
    wfg = ForwardGradient(2, perturbation_mode="weight")
    V = wfg.sample(g.numel(), F64)
    _close(wfg.weight_jvps(plain, (x, y), V)[1], V @ g)
    assert plain[0][1].track_running_stats is False


def test_batchnorm_capture_errors():
    model = _bn_net()
    cap = est._BatchNormCapture(model)
    with pytest.raises(RuntimeError) as err, cap:
        cap.update([])
    assert str(err.value) == "captured 0 BatchNorm statistics for 1 layers"
    assert model[0][1].track_running_stats is True, "the flag is restored when the context exits on an error"
    assert not model[0][1]._forward_hooks


# --- node (activity) perturbation ---------------------------------------------------------------------------------
def _acts(model, x):
    acts, h = [], x
    for blk in model_blocks(model):
        h = blk(h)
        acts.append(h)
    return acts, h


def _oracle_d(model, x, y, V, loss_fn=F.cross_entropy):
    acts, out = _acts(model, x)
    per_sample = loss_fn(out, y, reduction="none") / len(y)
    grads = torch.autograd.grad(per_sample.sum(), acts)
    return V @ torch.cat([t.reshape(len(y), -1) for t in grads], 1).T


def _node_expected(model, x, y, V, name, loss_fn=F.cross_entropy, scaling=False):
    """Weight gradients sum_b J_b^T g_act_b with g_act_b the aggregation of d_b = V dL/da_b (one U for all b) and J_b
    the Jacobian of block l's output in its own parameters (block-local, DESIGN.md §3.3)."""
    acts, out = _acts(model, x)
    per_sample = loss_fn(out, y, reduction="none") / len(y)
    grads = torch.autograd.grad(per_sample.sum(), acts, retain_graph=True)
    flat = torch.cat([t.reshape(len(y), -1) for t in grads], 1)  # (B, n): rows dL/da_b
    g_act = _expected_estimate(name, V, flat, scaling=scaling)
    parts = torch.split(g_act, [a[0].numel() for a in acts], dim=1)
    local, h = [], x  # block-local graphs: each block's input detached
    for blk in model_blocks(model):
        h = blk(h.detach())
        local.append(h)
    surrogate = sum((a * p.reshape(a.shape)).sum() for a, p in zip(local, parts))
    grads = torch.autograd.grad(surrogate, _trainable(model), allow_unused=True)
    return [torch.zeros_like(p) if t is None else t for p, t in zip(_trainable(model), grads)]


NODE_CASES = [("mean", 2, {}), ("frog", 3, {}), ("frog", 3, dict(frog_mode="solve")), ("sum", 2, {})]


@pytest.mark.parametrize("name,k,kw", NODE_CASES, ids=[f"{a}-{k}-{'-'.join(kw)}" for a, k, kw in NODE_CASES])
def test_node_mode_grad_closed_form(name, k, kw):
    model = _mlp()
    x, y = _data()
    fg = ForwardGradient(k, name, generator=gen(40), **kw)
    n = fg.dimension(model, x)
    assert n == 11
    V = ForwardGradient(k, name, generator=gen(40)).sample(n, F64)
    want = _node_expected(model, x, y, V, name)
    res = fg.step(model, (x, y))
    assert res.jvps == k and res.loss == pytest.approx(float(F.cross_entropy(model(x), y)), rel=1e-14)
    for p, w in zip(model.parameters(), want):
        _close(p.grad, w)


def test_custom_loss_in_both_modes():
    def smooth(out, target, reduction="mean"):
        return F.cross_entropy(out, target, reduction=reduction, label_smoothing=0.2)

    model = _mlp()
    x, y = _data()
    for mode in ("node", "weight"):
        fg = ForwardGradient(2, "mean", perturbation_mode=mode, generator=gen(41))
        V = ForwardGradient(2, generator=gen(41)).sample(fg.dimension(model, x), F64)
        res = fg.step(model, (x, y), loss_fn=smooth)
        assert res.loss == pytest.approx(float(smooth(model(x), y)), rel=1e-14)
        got = [p.grad.clone() for p in model.parameters()]
        if mode == "node":
            want = _node_expected(model, x, y, V, "mean", loss_fn=smooth)
        else:
            g = _bp(model, x, y, smooth)
            want = torch.split(_expected_estimate("mean", V, g), [p.numel() for p in model.parameters()])
        for a, b in zip(got, want):
            _close(a.reshape(-1), b.reshape(-1))


class _Unused(nn.Module):
    """A block that owns a parameter its output does not depend on."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.spare = nn.Parameter(torch.ones(3))

    def forward(self, h):
        return torch.tanh(self.lin(h))


class _WithBlocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(5, 4), _Unused(), nn.Linear(4, 3)])

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return x


def test_node_mode_blocks_attribute_unused_parameter_and_in_place_grad():
    model = _WithBlocks().to(F64)
    assert model_blocks(model) == list(model.blocks)
    x, y = _data()
    fg = ForwardGradient(3, "frog", generator=gen(42))
    n = fg.dimension(model, x)
    assert n == 4 + 4 + 3
    V = ForwardGradient(3, "frog", generator=gen(42)).sample(n, F64)
    model.blocks[1].spare.grad = torch.full((3,), 7.0, dtype=F64)
    kept = model.blocks[1].spare.grad
    want = _node_expected(model, x, y, V, "frog")
    params = _trainable(model)
    fg.step(model, (x, y))
    assert model.blocks[1].spare.grad is kept
    for p, w in zip(params, want):
        _close(p.grad, w)


def test_model_blocks_of_a_sequential_and_the_error():
    seq = _mlp()
    assert model_blocks(seq) == list(seq.children())
    with pytest.raises(ValueError) as err:
        model_blocks(nn.Linear(2, 2))
    assert str(err.value) == "Linear has no block list (give it `.blocks` or make it an nn.Sequential)"


class _ChannelMean(nn.Module):
    def forward(self, h):
        return h.mean(1)


def test_block_shapes_cache_and_training_flags():
    fg = ForwardGradient(2)
    x, _ = _data()
    small, wide = _mlp(), nn.Sequential(nn.Linear(5, 7), nn.Linear(7, 3)).to(F64)
    small.train()
    small[1].eval()
    flags = [m.training for m in small.modules()]
    assert fg.block_shapes(small, x) == [torch.Size([4]), torch.Size([4]), torch.Size([3])]
    assert [m.training for m in small.modules()] == flags
    assert fg.dimension(wide, x) == 10 and fg.dimension(small, x) == 11
    pooled = nn.Sequential(nn.Tanh(), _ChannelMean(), nn.Linear(4, 3)).to(F64)  # any channel count
    assert fg.dimension(pooled, torch.zeros(2, 2, 4, dtype=F64)) == 8 + 4 + 3
    assert fg.dimension(pooled, torch.zeros(2, 3, 4, dtype=F64)) == 12 + 4 + 3
    conv = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten()).to(F64)
    assert fg.dimension(conv, torch.zeros(2, 1, 4, 4, dtype=F64)) == 64
    assert fg.dimension(conv, torch.zeros(2, 1, 3, 3, dtype=F64)) == 36
    bn = _bn_net()
    fg.dimension(bn, _data((4, 1, 4, 4))[0])
    assert int(bn[0][1].num_batches_tracked) == 0 and bn.training, "shape probe must not touch BN statistics"


def test_node_jvps_outputs():
    model = _mlp()
    x, y = _data()
    fg = ForwardGradient(3)
    V = fg.sample(11, F64)
    losses, d, outs = fg.node_jvps(model, (x, y), V)
    acts, out = _acts(model, x)
    _close(losses, F.cross_entropy(out, y, reduction="none") / len(y))
    assert not losses.requires_grad and not d.requires_grad and d.shape == (3, 6)
    _close(d, _oracle_d(model, x, y, V))
    assert len(outs) == 3 and all(o.requires_grad for o in outs)
    for o, a in zip(outs, acts):
        _close(o, a)


def test_weight_mode_k1_passes_the_parameters_and_aliased_lanes(monkeypatch):
    """K = 1 (DESIGN.md §8 P2): the primals are the parameters themselves and each tangent is a lane over D's memory,
    one per parameter; K > 1: one flat primal (the reused buffer) and D."""
    seen = []
    real = est.multi_jvp

    def spy(f, x, V, **kwargs):
        seen.append((x, V))
        return real(f, x, V, **kwargs)

    monkeypatch.setattr(est, "multi_jvp", spy)
    model = _mlp()
    params = list(model.parameters())
    xb, yb = _data()
    for k in (1, 3):
        fg = ForwardGradient(k, perturbation_mode="weight", generator=gen(14))
        D = fg.sample(39, F64)
        fg.weight_jvps(model, (xb, yb), D)
        primals, lanes = seen[-1]
        if k == 1:
            assert len(primals) == len(lanes) == len(params) == 4
            assert all(torch.equal(a, p) and a.data_ptr() == p.data_ptr() for a, p in zip(primals, params))
            assert all(lane.untyped_storage().data_ptr() >= D.data_ptr() for lane in lanes)
            assert lanes[0].data_ptr() == D.data_ptr()
        else:
            assert len(primals) == 1 and primals[0] is fg._flat_buffer and lanes == (D,)


@pytest.mark.gpu
@pytest.mark.parametrize("generator_device", ["cpu", "cuda"])
def test_estimates_on_cuda_equal_the_cpu_ones(generator_device):
    """Tangents are drawn on the generator's device and moved to the data's; every tensor the estimator creates
    (V, the node perturbations, .grad) lives on the model's device; the numbers equal the CPU run's."""
    x, y = _data()
    for mode in ("node", "weight"):
        cpu_model, cuda_model = _mlp(), _mlp().cuda()
        ForwardGradient(3, "frog", perturbation_mode=mode, generator=gen(50)).step(cpu_model, (x, y))
        cuda_gen = torch.Generator(device=generator_device).manual_seed(50)
        fg = ForwardGradient(3, "frog", perturbation_mode=mode, generator=cuda_gen)
        V = fg.sample(5, F64, "cuda")
        assert V.device.type == "cuda"
        cuda_gen.manual_seed(50)
        fg.step(cuda_model, (x.cuda(), y.cuda()))
        for a, b in zip(cpu_model.parameters(), cuda_model.parameters()):
            assert b.grad.device.type == "cuda"
            if generator_device == "cpu":
                _close(b.grad.cpu(), a.grad, 1e-10)
    value, g_hat = ForwardGradient(2, generator=gen(51)).value_and_estimate(_f, torch.ones(2, 3, dtype=F64).cuda())
    assert value.device.type == g_hat.device.type == "cuda"
