"""common.models: every zoo entry builds offline, runs a forward pass and has the documented shapes."""

from __future__ import annotations

import pytest
import torch

from common.models import get_model, list_models

CASES = [
    ("mlp", {"in_features": 64, "hidden": (32, 16)}, (4, 1, 8, 8), (4, 10)),
    ("cnn", {"in_channels": 1}, (2, 1, 28, 28), (2, 10)),
    ("cnn_bn", {"in_channels": 1, "width": 8}, (2, 1, 28, 28), (2, 10)),
    ("cnn1d_bn", {"width": 8}, (2, 40), (2, 10)),
    ("resnet_cifar", {"depth": 18, "width": 8}, (2, 3, 32, 32), (2, 10)),
    ("resnet_cifar", {"depth": 34, "width": 4, "num_classes": 100}, (2, 3, 32, 32), (2, 100)),
    ("resnet18", {"num_classes": 10, "in_channels": 1}, (2, 1, 28, 28), (2, 10)),
    ("resnet50", {"num_classes": 10}, (1, 3, 64, 64), (1, 10)),
    ("timm", {"model_name": "resnet18", "num_classes": 5}, (1, 3, 32, 32), (1, 5)),
    ("vit_small", {"in_channels": 1, "image_size": 28}, (2, 1, 28, 28), (2, 10)),
]


@pytest.mark.parametrize("name, kwargs, in_shape, out_shape", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_forward_shapes(name: str, kwargs: dict, in_shape: tuple, out_shape: tuple) -> None:
    torch.manual_seed(0)
    model = get_model(name, **kwargs).eval()
    with torch.no_grad():
        assert tuple(model(torch.randn(in_shape)).shape) == out_shape


def test_cnn1d_bn_flattens_to_5w_at_length_40() -> None:
    model = get_model("cnn1d_bn", width=12)
    assert model[-1].in_features == 5 * 12


def test_transformers_from_config_offline() -> None:
    bert = get_model("bert_tiny", num_labels=3)
    ids = torch.randint(0, 64, (2, 24))
    assert bert(ids).shape == (2, 3)
    assert not hasattr(bert.bert, "pooler") or bert.bert.pooler is None
    gpt = get_model("gpt2", n_layer=1)
    assert gpt(torch.randint(0, 256, (2, 8))).logits.shape == (2, 8, 256)


def test_unknown_names_raise_value_error() -> None:
    assert {"mlp", "cnn", "resnet_cifar", "resnet18", "resnet50", "timm", "vit_small", "bert", "gpt2"} <= set(
        list_models()
    )
    with pytest.raises(ValueError, match="unknown model"):
        get_model("alexnet9000")
    with pytest.raises(ValueError, match="depth must be 18 or 34"):
        get_model("resnet_cifar", depth=50)
    with pytest.raises(ValueError, match="unknown timm model"):
        get_model("timm", model_name="not_a_model")
    with pytest.raises(ValueError, match="unexpected keyword"):
        get_model("mlp", in_features=4, widht=3)
