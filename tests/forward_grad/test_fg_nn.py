"""DESIGN.md §7.6 (weight mode), 7.7 (node mode), 7.8 (BatchNorm) on tiny nets and digits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from forward_grad.forward_gradient import ForwardGradient, sample_tangents
from forward_grad.forward_gradient.oracle import oracle_activity_jvp
from forward_grad.nn_training.data import load_splits
from forward_grad.nn_training.models import build_model
from forward_grad.testing import gen

TINY_VIT = dict(num_layers=2, hidden_dim=16, mlp_dim=32, num_heads=2)


@pytest.fixture(scope="module")
def digits_batch():
    s = load_splits("digits")
    return s.train[0][:16], s.train[1][:16]


def _unzero(model):
    """torchvision zero-initializes the ViT head; give it weights so that every activity matters."""
    for p in model.parameters():
        if p.dim() == 2 and float(p.detach().abs().max()) == 0:
            torch.nn.init.normal_(p, std=0.1, generator=gen(9))
    return model


def _bp_grads(model, x, y):
    loss = F.cross_entropy(model(x), y)
    return torch.autograd.grad(loss, [p for p in model.parameters()])


def _rel(a, b):
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def test_weight_mode_jvps_match_oracle(digits_batch):
    torch.manual_seed(0)
    model = build_model("fc", 1, 8, width=16)
    n = sum(p.numel() for p in model.parameters())
    fg = ForwardGradient(4, "mean", perturbation_mode="weight")
    V = sample_tangents("normal", 4, n, generator=gen(1))
    _, d = fg.weight_jvps(model, digits_batch, V)
    g = torch.cat([t.reshape(-1) for t in _bp_grads(model, *digits_batch)])
    assert _rel(d, V @ g) <= 1e-5, f"DESIGN.md §7.6: weight-mode d != V grad L (rel {_rel(d, V @ g):.2e})"


@pytest.mark.parametrize(
    "name,k,backend",
    [("fc", 1, "vmap"), ("fc", 3, "loop"), pytest.param("resnet18", 1, "vmap", marks=pytest.mark.slow)],
    ids=["k1", "loop", "bn-k1"],
)
def test_weight_mode_step_writes_the_estimate(name, k, backend, digits_batch):
    """K = 1 (tangents alias D's row, no copies), loop lanes, BatchNorm: .grad = V^T (V grad L) / K, in place."""
    torch.manual_seed(0)
    model = build_model(name, 1, 8, **(dict(width=16) if name == "fc" else {}))
    params = list(model.parameters())
    g = torch.cat([t.reshape(-1) for t in _bp_grads(model, *digits_batch)])
    V = ForwardGradient(k, "mean", generator=gen(2)).sample(g.numel())
    fg = ForwardGradient(k, "mean", perturbation_mode="weight", jvp_backend=backend, generator=gen(2))
    for p in params[::2]:
        p.grad = torch.full_like(p, 7.0)  # overwritten in place; the others get a fresh .grad
    kept = [p.grad for p in params[::2]]
    res = fg.step(model, digits_batch)
    assert res.jvps == k and abs(res.loss - float(F.cross_entropy(model(digits_batch[0]), digits_batch[1]))) < 1e-4
    assert all(p.grad is t for p, t in zip(params[::2], kept)), "weight mode: .grad must be written in place"
    got = torch.cat([p.grad.reshape(-1) for p in params])
    want = V.T @ (V @ g) / k
    assert _rel(got, want) <= 1e-4, f"DESIGN.md §7.6: weight-mode .grad != V^T d / K (rel {_rel(got, want):.2e})"


def test_weight_mode_frog_exact_without_reverse_mode(digits_batch, monkeypatch):
    torch.manual_seed(0)
    model = build_model("fc", 1, 2, width=4).double()  # 4*4+4 + 4*4+4 + 4*10+10 = 90 parameters
    x = F.adaptive_avg_pool2d(digits_batch[0], 2).double()
    y = digits_batch[1]
    ref = _bp_grads(model, x, y)
    n = sum(p.numel() for p in model.parameters())
    assert n < 120

    def forbidden(*a, **k):
        raise AssertionError("DESIGN.md §7.6: weight mode made a reverse-mode call")

    monkeypatch.setattr(torch.autograd, "grad", forbidden)
    monkeypatch.setattr(torch.Tensor, "backward", forbidden)
    fg = ForwardGradient(n + 3, "frog", perturbation_mode="weight")
    with pytest.warns(UserWarning, match="exact gradient"):
        fg.step(model, (x, y))
    monkeypatch.undo()
    for p, g in zip(model.parameters(), ref):
        assert torch.allclose(p.grad, g, rtol=1e-6, atol=1e-12), (
            "DESIGN.md §7.6: weight-mode frog K >= n != BP gradient"
        )


@pytest.mark.parametrize("name,kw", [("fc", dict(width=16)), ("vit", TINY_VIT)], ids=["fc", "vit"])
def test_node_mode_jvps_match_oracle(name, kw, digits_batch):
    torch.manual_seed(0)
    model = _unzero(build_model(name, 1, 8, **kw))
    fg = ForwardGradient(3, "mean")
    x, y = digits_batch
    n = fg.dimension(model, x)
    V = sample_tangents("normal", 3, n, generator=gen(2))
    losses, d, _ = fg.node_jvps(model, (x, y), V)
    acts, h = [], x
    for blk in model:
        a = blk(h)
        acts.append(a)
        h = a
    per_sample = F.cross_entropy(h, y, reduction="none") / len(y)
    ref = oracle_activity_jvp(per_sample, acts, V)
    assert d.shape == (3, len(y))
    assert _rel(d, ref) <= 1e-5, f"DESIGN.md §7.7: node-mode d != v . dL/da_b for {name} (rel {_rel(d, ref):.2e})"
    assert torch.allclose(losses, per_sample.detach(), rtol=1e-6)
    # a tangent living only in block 1 reaches the loss through every later block
    first = fg.block_shapes(model, x)[0].numel()
    V1 = torch.zeros(1, n)
    V1[0, :first] = torch.randn(first, generator=gen(3))
    _, d1, _ = fg.node_jvps(model, (x, y), V1)
    assert float(d1.abs().max()) > 0, "DESIGN.md §7.7: the block-1 tangent did not cross the later blocks"


@pytest.mark.parametrize(
    "name,kw,dtype,rtol",
    [("fc", dict(width=8), torch.float32, 1e-4), ("fc", dict(width=8), torch.float64, 1e-8)],
    ids=["fc-f32", "fc-f64"],
)
def test_node_mode_frog_reproduces_bp(name, kw, dtype, rtol, digits_batch):
    torch.manual_seed(0)
    model = build_model(name, 1, 8, **kw).to(dtype)
    x, y = digits_batch[0].to(dtype), digits_batch[1]
    ref = _bp_grads(model, x, y)
    fg = ForwardGradient(200, "frog")
    assert fg.dimension(model, x) == 2 * 8 + 10, "DESIGN.md §5.2: FC node dimension 2W + 10"
    with pytest.warns(UserWarning):
        fg.step(model, (x, y))
    for p, g in zip(model.parameters(), ref):
        assert _rel(p.grad, g) <= rtol, f"DESIGN.md §7.7: node frog K >= n != BP ({dtype}, rel {_rel(p.grad, g):.2e})"


def test_vit_node_mode_frog_reproduces_bp(digits_batch):
    torch.manual_seed(0)
    model = _unzero(build_model("vit", 1, 8, **TINY_VIT))
    x, y = digits_batch[0][:4], digits_batch[1][:4]
    ref = _bp_grads(model, x, y)
    fg = ForwardGradient(1000, "frog")
    with pytest.warns(UserWarning):
        fg.step(model, (x, y))
    worst = max(_rel(p.grad, g) for p, g in zip(model.parameters(), ref) if float(g.norm()) > 0)
    assert worst <= 1e-4, f"DESIGN.md §7.7: ViT node frog K >= n != BP (rel {worst:.2e})"


@pytest.mark.slow  # ~4 s; the fast tiny-net BatchNorm checks are in test_fg_estimator.py
@pytest.mark.parametrize("mode", ["node", "weight"])
def test_batchnorm_running_stats_and_batch_sum(mode, digits_batch):
    torch.manual_seed(0)
    x, y = digits_batch
    model = build_model("resnet18", 1, 8)
    twin = build_model("resnet18", 1, 8)
    twin.load_state_dict(model.state_dict())
    twin(x)  # one ordinary train-mode forward: the reference update of the running statistics
    fg = ForwardGradient(2, "mean", perturbation_mode=mode)
    fg.step(model, (x, y))
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    refs = [m for m in twin.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 20
    for a, b in zip(bns, refs):
        assert torch.allclose(a.running_mean, b.running_mean, atol=1e-6), f"DESIGN.md §7.8: running mean ({mode})"
        assert torch.allclose(a.running_var, b.running_var, atol=1e-6), f"DESIGN.md §7.8: running var ({mode})"
        assert int(a.num_batches_tracked) == int(b.num_batches_tracked) == 1
    if mode == "node":
        n = fg.dimension(model, x)
        V = sample_tangents("normal", 2, n, generator=gen(4))
        _, d, _ = fg.node_jvps(model, (x, y), V)
        acts, h = [], x
        for blk in model:
            h = blk(h)
            acts.append(h)
        per_sample = F.cross_entropy(h, y, reduction="none") / len(y)
        ref = oracle_activity_jvp(per_sample, acts, V)
        err = _rel(d.sum(1), ref.sum(1))
        assert err <= 1e-4, f"DESIGN.md §7.8: sum_b d_ib != v_i . sum_b dL/da_b under train-mode BN (rel {err:.2e})"
