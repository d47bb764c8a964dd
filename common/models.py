"""Model zoo behind ``get_model(name, **kw)``: small nets built here, torchvision/timm/transformers by config.

All models start from random weights; nothing is downloaded. BERT and GPT-2 are built from configs offline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from common.cli import UsageError

__all__ = ["get_model", "list_models", "register_model", "ACTIVATIONS", "BertClassifier", "CifarResNet"]

_MODELS: dict[str, Callable[..., nn.Module]] = {}

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a model builder under ``name``."""

    def decorate(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _MODELS[name] = fn
        return fn

    return decorate


def list_models() -> list[str]:
    return sorted(_MODELS)


def get_model(name: str, **kwargs: Any) -> nn.Module:
    """Build model ``name`` with random weights; unknown names or arguments raise ValueError."""
    if name not in _MODELS:
        raise UsageError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    try:
        return _MODELS[name](**kwargs)
    except TypeError as exc:
        raise UsageError(f"model {name!r}: {exc}") from None


def _activation(act: str) -> nn.Module:
    if act not in ACTIVATIONS:
        raise UsageError(f"unknown activation {act!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[act]()


def _check_positive(**values: int) -> None:
    for key, value in values.items():
        if not isinstance(value, int) or value <= 0:
            raise UsageError(f"{key} must be a positive integer, got {value!r}")


@register_model("mlp")
def mlp(
    in_features: int, hidden: Sequence[int] = (128, 128), num_classes: int = 10, act: str = "relu", bias: bool = True
) -> nn.Sequential:
    """Flatten -> [Linear -> act] per hidden width -> Linear(num_classes)."""
    _check_positive(in_features=in_features, num_classes=num_classes)
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for h in hidden:
        _check_positive(hidden=h)
        layers += [nn.Linear(width, h, bias=bias), _activation(act)]
        width = h
    layers.append(nn.Linear(width, num_classes, bias=bias))
    return nn.Sequential(*layers)


@register_model("cnn")
def cnn(in_channels: int = 1, num_classes: int = 10, width: int = 32, image_size: int = 28) -> nn.Sequential:
    """Two conv3x3-ReLU-maxpool stages (width, 2*width) and a linear classifier."""
    _check_positive(in_channels=in_channels, num_classes=num_classes, width=width, image_size=image_size)
    side = image_size // 4
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * side * side, num_classes),
    )


def _conv_out(size: int, kernel: int, stride: int = 2, pad: int = 1) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def _bn_stack(dim: int, in_channels: int, width: int) -> list[nn.Module]:
    conv, bn = (nn.Conv1d, nn.BatchNorm1d) if dim == 1 else (nn.Conv2d, nn.BatchNorm2d)
    return [
        conv(in_channels, width, 5, stride=2, padding=1),
        bn(width),
        nn.ReLU(),
        conv(width, width, 3, stride=2, padding=1),
        bn(width),
        nn.ReLU(),
        conv(width, width, 3, stride=2, padding=1),
        bn(width),
        nn.ReLU(),
        nn.Flatten(),
    ]


@register_model("cnn1d_bn")
def cnn1d_bn(in_channels: int = 1, num_classes: int = 10, width: int = 32, length: int = 40) -> nn.Sequential:
    """Conv1d(5,s2,p1)-BN-ReLU -> Conv1d(3,s2,p1)-BN-ReLU x2 -> flatten -> Linear (5w features at length 40)."""
    _check_positive(in_channels=in_channels, num_classes=num_classes, width=width, length=length)
    out = _conv_out(_conv_out(_conv_out(length, 5), 3), 3)
    return nn.Sequential(
        _Unsqueeze1d(in_channels), *_bn_stack(1, in_channels, width), nn.Linear(width * out, num_classes)
    )


@register_model("cnn_bn")
def cnn_bn(in_channels: int = 1, num_classes: int = 10, width: int = 32, image_size: int = 28) -> nn.Sequential:
    """The cnn1d_bn pattern in 2-D: Conv2d(5,s2,p1)-BN-ReLU -> Conv2d(3,s2,p1)-BN-ReLU x2 -> Linear."""
    _check_positive(in_channels=in_channels, num_classes=num_classes, width=width, image_size=image_size)
    out = _conv_out(_conv_out(_conv_out(image_size, 5), 3), 3)
    return nn.Sequential(*_bn_stack(2, in_channels, width), nn.Linear(width * out * out, num_classes))


class _Unsqueeze1d(nn.Module):
    """Accept (N, L) sequences as (N, 1, L); pass (N, C, L) through."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1) if x.ndim == 2 and self.in_channels == 1 else x


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-18/34 for 32x32 inputs (3x3 stem, no max-pool); ``width`` is the first stage's channel count."""

    STAGES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}

    def __init__(self, depth: int = 18, width: int = 64, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        if depth not in self.STAGES:
            raise UsageError(f"resnet_cifar depth must be 18 or 34, got {depth}")
        _check_positive(width=width, num_classes=num_classes, in_channels=in_channels)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        blocks, c_in = [], width
        for stage, count in enumerate(self.STAGES[depth]):
            c_out = width * 2**stage
            for i in range(count):
                blocks.append(_BasicBlock(c_in, c_out, 2 if stage > 0 and i == 0 else 1))
                c_in = c_out
        self.layers = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)))


@register_model("resnet_cifar")
def resnet_cifar(depth: int = 18, width: int = 64, num_classes: int = 10, in_channels: int = 3) -> CifarResNet:
    return CifarResNet(depth, width, num_classes, in_channels)


def _torchvision_resnet(builder: Callable[..., nn.Module], num_classes: int, in_channels: int) -> nn.Module:
    model = builder(weights=None, num_classes=num_classes)
    if in_channels != 3:
        old = model.conv1
        model.conv1 = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False)
    return model


@register_model("resnet18")
def resnet18(num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
    """torchvision ResNet-18 (ImageNet stem), random init; conv1 rebuilt for other channel counts."""
    from torchvision.models import resnet18 as tv_resnet18

    return _torchvision_resnet(tv_resnet18, num_classes, in_channels)


@register_model("resnet50")
def resnet50(num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
    """torchvision ResNet-50, random init."""
    from torchvision.models import resnet50 as tv_resnet50

    return _torchvision_resnet(tv_resnet50, num_classes, in_channels)


@register_model("timm")
def timm_model(model_name: str, **kwargs: Any) -> nn.Module:
    """Any timm model by name, random init (``pretrained`` is forced off: no downloads)."""
    import timm

    if model_name not in timm.list_models():
        raise UsageError(f"unknown timm model {model_name!r}")
    kwargs["pretrained"] = False
    return timm.create_model(model_name, **kwargs)


@register_model("vit_small")
def vit_small(
    image_size: int = 32,
    patch_size: int = 4,
    num_layers: int = 6,
    num_heads: int = 4,
    hidden_dim: int = 256,
    mlp_dim: int = 512,
    num_classes: int = 10,
    in_channels: int = 3,
    dropout: float = 0.0,
) -> nn.Module:
    """torchvision VisionTransformer at small scale; conv_proj rebuilt for ``in_channels``."""
    from torchvision.models import VisionTransformer

    if image_size % patch_size:
        raise UsageError(f"image_size {image_size} must be divisible by patch_size {patch_size}")
    model = VisionTransformer(
        image_size=image_size,
        patch_size=patch_size,
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        mlp_dim=mlp_dim,
        num_classes=num_classes,
        dropout=dropout,
    )
    if in_channels != 3:
        model.conv_proj = nn.Conv2d(in_channels, hidden_dim, kernel_size=patch_size, stride=patch_size)
    return model


class BertClassifier(nn.Module):
    """BERT encoder without pooler and a linear head on the [CLS] (position 0) final hidden state."""

    def __init__(self, config: Any, num_labels: int = 2) -> None:
        super().__init__()
        from transformers import BertModel

        self.config = config
        self.bert = BertModel(config, add_pooling_layer=False)
        self.head = nn.Linear(config.hidden_size, num_labels)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        hidden = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        return self.head(hidden[:, 0])


@register_model("bert")
def bert(num_labels: int = 2, **config_kwargs: Any) -> BertClassifier:
    """BERT classifier from ``BertConfig(**config_kwargs)`` (bert-base sizes by default), random weights."""
    from transformers import BertConfig

    return BertClassifier(BertConfig(**config_kwargs), num_labels)


BERT_TINY = dict(
    vocab_size=64,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=32,
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
)


@register_model("bert_tiny")
def bert_tiny(num_labels: int = 2, **overrides: Any) -> BertClassifier:
    """A 2-layer, 32-wide BERT classifier for CPU tests (vocab 64, 32 positions)."""
    return bert(num_labels=num_labels, **{**BERT_TINY, **overrides})


@register_model("gpt2")
def gpt2(**config_kwargs: Any) -> nn.Module:
    """GPT2LMHeadModel from ``GPT2Config(**config_kwargs)``, random weights (small defaults for CPU)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = {**dict(vocab_size=256, n_positions=64, n_embd=64, n_layer=2, n_head=2), **config_kwargs}
    config.setdefault("bos_token_id", config["vocab_size"] - 1)
    config.setdefault("eos_token_id", config["vocab_size"] - 1)
    return GPT2LMHeadModel(GPT2Config(**config))
