"""Models of DESIGN.md §5.2 as block lists for node (activity) perturbation, built on common.models.

Every builder returns an nn.Sequential whose children are the blocks whose outputs a_l are perturbed:
- fc: [Flatten, Linear(d_in, W), ReLU] [Linear(W, W), ReLU] [Linear(W, 10)]: n = 2W + 10 activities per sample.
- resnet18: torchvision ImageNet-style ResNet-18 (7x7/2 stem + maxpool; conv1 rebuilt for the input channels),
  6 blocks: stem, layer1..layer4, pool + fc.
- vit: torchvision VisionTransformer, patch 4, 6 layers, 4 heads, hidden 256, MLP 512, dropout 0; grouping `wide_1`:
  6 blocks (embedding joins layer 0, final LayerNorm and head join layer 5).
- mlpmixer (hidden 512, token MLP 256, channel MLP 2048, 8 mixer blocks; patch embedding joins block 0, head joins
  block 7) and lenet5: available and smoke-tested, no LR tables.
Sizes (width, layers, hidden) can be shrunk for tests.
"""

from __future__ import annotations

import torch
from torch import nn

from common.cli import UsageError
from common.models import get_model

__all__ = ["MODELS", "build_model", "count_activities"]

MODELS = ("fc", "lenet5", "resnet18", "vit", "mlpmixer")


def fc(in_features: int, width: int = 1024, num_classes: int = 10) -> nn.Sequential:
    layers = list(get_model("mlp", in_features=in_features, hidden=(width, width), num_classes=num_classes))
    return nn.Sequential(nn.Sequential(*layers[0:3]), nn.Sequential(*layers[3:5]), layers[5])


def resnet18(in_channels: int, num_classes: int = 10) -> nn.Sequential:
    net = get_model("resnet18", num_classes=num_classes, in_channels=in_channels)
    return nn.Sequential(
        nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool),
        net.layer1,
        net.layer2,
        net.layer3,
        net.layer4,
        nn.Sequential(net.avgpool, nn.Flatten(), net.fc),
    )


class _ViTEmbed(nn.Module):
    """Patch projection, class token and position embedding of a torchvision VisionTransformer."""

    def __init__(self, vit):
        super().__init__()
        self.conv_proj = vit.conv_proj
        self.class_token = vit.class_token
        self.pos_embedding = vit.encoder.pos_embedding
        self.dropout = vit.encoder.dropout

    def forward(self, x):
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        token = self.class_token.expand(x.shape[0], -1, -1)
        return self.dropout(torch.cat([token, x], dim=1) + self.pos_embedding)


class _ClassHead(nn.Module):
    def __init__(self, norm, head):
        super().__init__()
        self.norm, self.head = norm, head

    def forward(self, x):
        return self.head(self.norm(x)[:, 0])


def vit(in_channels: int, image_size: int, num_classes: int = 10, num_layers: int = 6, hidden_dim: int = 256,
        mlp_dim: int = 512, num_heads: int = 4, patch_size: int = 4) -> nn.Sequential:  # fmt: skip
    net = get_model(
        "vit_small",
        image_size=image_size,
        patch_size=patch_size,
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        mlp_dim=mlp_dim,
        num_classes=num_classes,
        in_channels=in_channels,
    )
    layers = list(net.encoder.layers)
    blocks = [nn.Sequential(_ViTEmbed(net), layers[0]), *layers[1:-1]]
    last = _ClassHead(net.encoder.ln, net.heads)
    blocks.append(nn.Sequential(layers[-1], last) if num_layers > 1 else last)
    if num_layers == 1:
        blocks[0] = nn.Sequential(_ViTEmbed(net), layers[0])
    return nn.Sequential(*blocks)


class _MixerBlock(nn.Module):
    def __init__(self, tokens: int, hidden: int, token_mlp: int, channel_mlp: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.token = nn.Sequential(nn.Linear(tokens, token_mlp), nn.GELU(), nn.Linear(token_mlp, tokens))
        self.channel = nn.Sequential(nn.Linear(hidden, channel_mlp), nn.GELU(), nn.Linear(channel_mlp, hidden))

    def forward(self, x):
        x = x + self.token(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, in_channels, hidden, patch):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, hidden, patch, patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class _MeanHead(nn.Module):
    def __init__(self, hidden, num_classes):
        super().__init__()
        self.norm, self.fc = nn.LayerNorm(hidden), nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.fc(self.norm(x).mean(1))


def mlpmixer(in_channels: int, image_size: int, num_classes: int = 10, hidden: int = 512, token_mlp: int = 256,
             channel_mlp: int = 2048, num_blocks: int = 8, patch_size: int = 4) -> nn.Sequential:  # fmt: skip
    if image_size % patch_size:
        raise UsageError(f"image size {image_size} is not divisible by the patch size {patch_size}")
    tokens = (image_size // patch_size) ** 2
    mixers = [_MixerBlock(tokens, hidden, token_mlp, channel_mlp) for _ in range(num_blocks)]
    blocks = [nn.Sequential(_PatchEmbed(in_channels, hidden, patch_size), mixers[0]), *mixers[1:]]
    blocks[-1] = nn.Sequential(blocks[-1], _MeanHead(hidden, num_classes))
    return nn.Sequential(*blocks)


def lenet5(in_channels: int, image_size: int, num_classes: int = 10) -> nn.Sequential:
    side = image_size // 4
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(nn.Conv2d(6, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(nn.Flatten(), nn.Linear(16 * side * side, 120), nn.ReLU()),
        nn.Sequential(nn.Linear(120, 84), nn.ReLU()),
        nn.Linear(84, num_classes),
    )


def build_model(name: str, in_channels: int, image_size: int, num_classes: int = 10, **kw) -> nn.Sequential:
    """Build a DESIGN.md §5.2 model as a block list; kw: width (fc), or size overrides for vit/mlpmixer."""
    if name == "fc":
        return fc(in_channels * image_size * image_size, kw.get("width", 1024), num_classes)
    if name == "resnet18":
        return resnet18(in_channels, num_classes)
    if name == "vit":
        return vit(in_channels, image_size, num_classes, **kw)
    if name == "mlpmixer":
        return mlpmixer(in_channels, image_size, num_classes, **kw)
    if name == "lenet5":
        return lenet5(in_channels, image_size, num_classes)
    raise UsageError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


def count_activities(model: nn.Sequential, sample: torch.Tensor) -> int:
    """n = sum_l numel(per-sample a_l), the node-perturbation dimension (FC-W: 2W + 10)."""
    total, h = 0, sample[:1]
    with torch.no_grad():
        was = model.training
        model.eval()
        for blk in model:
            h = blk(h)
            total += h[0].numel()
        model.train(was)
    return total
