"""DESIGN.md §8.7 (stacked = sequential) and 7.8 (divergence masking)."""

import math
from dataclasses import dataclass

import pytest
import torch

from hp_scaling.models import DagCNN, DagMLP
from hp_scaling.stacked import train_lrs

LRS = (0.01, 0.05, 0.2)


@dataclass(frozen=True)
class Recipe:
    mode: str
    build: object
    label: str


RECIPES = [
    Recipe("bmm", lambda: DagMLP("2_12_112_1112", 64, 16, 10), "bmm DagMLP 2_12_112_1112 w16"),
    Recipe("vmap", lambda: DagCNN("2_02_002_0002", 1, 4, 10, kernel_size=3), "vmap DagCNN 2_02_002_0002 q3 w4"),
]


@pytest.mark.parametrize("r", RECIPES, ids=lambda r: r.label)
def test_stacked_equals_sequential(r, digits_all):
    torch.manual_seed(0)
    model = r.build()
    fast = train_lrs(model, digits_all, LRS, steps=20, seed=0, stack=r.mode)
    slow = train_lrs(model, digits_all, LRS, steps=20, seed=0, stack="none")
    assert fast.losses.shape == (20, 3) and fast.mode == r.mode
    assert torch.allclose(fast.losses, slow.losses, rtol=1e-4, atol=1e-5), (
        f"DESIGN.md §8.7: {r.mode} per-step losses differ from nn.Module + SGD: "
        f"max abs diff {(fast.losses - slow.losses).abs().max():.3g}"
    )


def test_momentum_and_weight_decay_match_sgd(digits_all):
    torch.manual_seed(1)
    model = DagMLP("2_02_002_0002", 64, 8, 10)
    kw = dict(steps=15, seed=3, momentum=0.9, weight_decay=5e-4, nesterov=True)
    fast = train_lrs(model, digits_all, LRS, stack="bmm", **kw)
    slow = train_lrs(model, digits_all, LRS, stack="none", **kw)
    assert torch.allclose(fast.losses, slow.losses, rtol=1e-4, atol=1e-5)


def test_max_stack_chunks_are_identical(digits_all):
    torch.manual_seed(0)
    model = DagMLP("2_12_112_1112", 64, 16, 10)
    a = train_lrs(model, digits_all, LRS, steps=10, stack="bmm")
    b = train_lrs(model, digits_all, LRS, steps=10, stack="bmm", max_stack=1)
    assert torch.allclose(a.losses, b.losses, rtol=1e-5, atol=1e-6)


def test_divergent_copy_is_masked(digits_all):
    torch.manual_seed(0)
    model = DagMLP("2_22_222_2222", 64, 32, 10)
    base = train_lrs(model, digits_all, LRS, stack="bmm")
    more = train_lrs(model, digits_all, (0.01, 0.05, 64.0, 0.2), stack="bmm")
    assert more.diverged_step[2] >= 0, "DESIGN.md §8.8: lr = 64 must be marked diverged"
    assert math.isinf(more.mean_loss[2]), "DESIGN.md §5: a diverged copy's loss counts as +inf"
    assert base.diverged_step == (-1, -1, -1)
    assert torch.equal(base.losses, more.losses[:, [0, 1, 3]]), "DESIGN.md §8.8: other copies must be bit-identical"


def test_bad_lrs_raise(digits_all):
    model = DagMLP("2_02_002_0002", 64, 4, 10)
    with pytest.raises(ValueError, match="positive"):
        train_lrs(model, digits_all, (0.1, -1.0), steps=1)
    with pytest.raises(ValueError, match="nesterov"):
        train_lrs(model, digits_all, (0.1,), steps=1, nesterov=True)
