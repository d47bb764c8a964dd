"""Models of the harness (DESIGN.md §5), built from common.models by the config's case-insensitive `model` name."""

from __future__ import annotations

import math
from pathlib import Path

from torch import nn

from common.cli import MissingInputError, UsageError
from common.models import get_model
from line_search.harness.data import TaskData

__all__ = ["build_model"]


def build_model(name: str, task: TaskData, hidden: int = 128, model_path: str = "", max_len: int = 256) -> nn.Module:
    """mlp (in-128-128-classes), cnn, resnet18/34 (CIFAR), resnet50 (torchvision), bert_tiny, bert."""
    name = name.lower()
    k = task.num_classes
    if task.kind == "nlp" and name not in ("bert_tiny", "bert"):
        raise UsageError(f"model {name!r} does not take token sequences; use bert_tiny or bert")
    if task.kind == "img" and name in ("bert_tiny", "bert"):
        raise UsageError(f"model {name!r} does not take images; use mlp, cnn, resnet34 or resnet50")
    if name == "mlp":
        return get_model("mlp", in_features=math.prod(task.in_shape), hidden=(hidden, hidden), num_classes=k)
    c, size = task.in_shape[0], task.in_shape[-1]
    if name == "cnn":
        return get_model("cnn", in_channels=c, num_classes=k, image_size=size)
    if name in ("resnet18", "resnet34"):
        return get_model("resnet_cifar", depth=int(name[-2:]), num_classes=k, in_channels=c)
    if name == "resnet50":
        return get_model("resnet50", num_classes=k, in_channels=c)
    if name == "bert_tiny":
        return get_model("bert_tiny", num_labels=k, max_position_embeddings=max(32, task.in_shape[0]))
    if name == "bert":
        if not model_path:
            return get_model("bert", num_labels=k)
        return _pretrained_bert(model_path, k)
    raise UsageError(f"unknown model {name!r}")


def _pretrained_bert(model_path: str, num_labels: int) -> nn.Module:
    """bert-base-uncased weights from a local folder (config.json + weights) with a fresh linear [CLS] head."""
    from transformers import BertConfig, BertModel

    path = Path(model_path)
    if not (path / "config.json").is_file():
        raise MissingInputError(
            f"BERT weights not found: {path}/config.json; save bert-base-uncased there with "
            "BertModel.from_pretrained('bert-base-uncased').save_pretrained(path) (and its tokenizer)"
        )
    model = get_model("bert", num_labels=num_labels, **BertConfig.from_pretrained(path).to_dict())
    model.bert = BertModel.from_pretrained(path, add_pooling_layer=False)
    return model
