"""The seed's config file (DESIGN.md §4.1): INI with [DEFAULT] or JSON, typed, validated, mapped to optimizers.

Seed keys (all kept): batch_size, checkpoint, directory, seed, epochs, dataset, optim, num_diff_opt, model, split_by,
update_rule, combine, c, cls, type, beta, num_hidden_dims, speed_up, gradient_accumulation_steps.
Added keys: lr, warmup, max_len, n_train, n_test, eval_every, model_path. Names are case-insensitive.
"""

from __future__ import annotations

import configparser
import json
import math
from pathlib import Path
from typing import Any

import torch

from common.cli import MissingInputError, UsageError
from common.config import read_ini
from line_search.harness.data import IMG_DATASETS, NLP_DATASETS
from line_search.sls import SLS, AdamSLS, KenSLS, SaLSa

__all__ = [
    "DEFAULTS",
    "OPTIMS",
    "MODELS",
    "read_config",
    "apply_overrides",
    "resolve",
    "build_optimizer",
    "write_ini",
    "run_name",
]

DEFAULTS: dict[str, Any] = {
    "batch_size": 32,
    "checkpoint": None,
    "directory": "default",
    "seed": 42,
    "epochs": 5,
    "dataset": "digits",
    "optim": "kensls",
    "num_diff_opt": 1,
    "model": "mlp",
    "split_by": "layer",
    "update_rule": "cycle",
    "combine": 0,
    "c": None,
    "cls": "dense",
    "type": "img",
    "beta": None,
    "num_hidden_dims": 128,
    "speed_up": None,
    "gradient_accumulation_steps": 1,
    "lr": None,
    "warmup": 0.1,
    "max_len": 256,
    "n_train": 0,
    "n_test": 0,
    "eval_every": 1,
    "model_path": "",
}
_INT = {"batch_size", "seed", "epochs", "num_diff_opt", "num_hidden_dims", "gradient_accumulation_steps"}
_INT |= {"max_len", "n_train", "n_test", "eval_every"}
_FLOAT = {"c", "beta", "lr", "warmup"}
OPTIMS = ("kensls", "adamsls", "oladamsls", "salsa", "salsasls", "sls", "sgdsls", "olsgdsls", "adam", "sgd")
NOT_PROVIDED = ("lionsls", "amsgradsls")
MODELS = ("mlp", "cnn", "resnet18", "resnet34", "resnet50", "bert_tiny", "bert")


def read_config(path: str | Path) -> tuple[dict[str, Any], str]:
    """Read an INI ([DEFAULT], through common.config.read_ini) or JSON (flat or {"DEFAULT": {...}}) config.

    Returns (raw dict with lower-case keys, file text). Missing file: MissingInputError; unreadable: UsageError.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"config file not found: {path}")
    text = path.read_text()
    if not text.lstrip().startswith("{"):
        return read_ini(path), text
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: a JSON config must be an object of key: value pairs")
    if isinstance(raw.get("DEFAULT"), dict):
        raw = raw["DEFAULT"]
    return {str(k).lower(): v for k, v in raw.items()}, text


def apply_overrides(raw: dict[str, Any], sets: list[str]) -> dict[str, Any]:
    """Apply `--set KEY=VALUE` overrides; an unknown key is a UsageError."""
    out = dict(raw)
    for item in sets or []:
        if "=" not in item:
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        key = key.strip().lower()
        if key not in DEFAULTS:
            raise UsageError(f"unknown config key {key!r} in --set; known: {', '.join(DEFAULTS)}")
        out[key] = value.strip()
    return out


def _none(v: Any) -> bool:
    return v is None or (isinstance(v, str) and v.strip().lower() in ("none", "null", ""))


def _bool(key: str, v: Any) -> bool:
    if isinstance(v, bool):
        return v
    text = str(v).strip()
    if text in ("True", "true", "1"):
        return True
    if text in ("False", "false", "0"):
        return False
    raise UsageError(f"config key {key!r} must be True or False, got {v!r}")


def resolve(raw: dict[str, Any]) -> dict[str, Any]:
    """Typed, validated config: defaults < file < --set. Unknown keys are a UsageError."""
    unknown = [k for k in raw if k not in DEFAULTS]
    if unknown:
        raise UsageError(f"unknown config keys {unknown}; known: {', '.join(DEFAULTS)}")
    cfg = dict(DEFAULTS)
    for key, value in raw.items():
        try:
            if key in _INT:
                cfg[key] = int(value)
            elif key in _FLOAT:
                cfg[key] = None if _none(value) else float(value)
            elif key == "speed_up":
                cfg[key] = None if _none(value) else _bool(key, value)
            elif key == "checkpoint":
                cfg[key] = None if _none(value) else str(value)
            else:
                cfg[key] = value if not isinstance(value, str) else value.strip()
        except (TypeError, ValueError):
            raise UsageError(f"config key {key!r}: cannot read {value!r}") from None
    for key in ("dataset", "optim", "model", "type"):
        cfg[key] = str(cfg[key]).lower()
    if cfg["optim"] in NOT_PROVIDED:
        raise UsageError(f"optim {cfg['optim']!r} is not provided; choose from {', '.join(OPTIMS)}")
    if cfg["optim"] not in OPTIMS:
        raise UsageError(f"unknown optim {cfg['optim']!r}; choose from {', '.join(OPTIMS)}")
    if cfg["dataset"] not in IMG_DATASETS + NLP_DATASETS:
        raise UsageError(f"unknown dataset {cfg['dataset']!r}; choose from {', '.join(IMG_DATASETS + NLP_DATASETS)}")
    if cfg["model"] not in MODELS:
        raise UsageError(f"unknown model {cfg['model']!r}; choose from {', '.join(MODELS)}")
    if cfg["num_diff_opt"] != 1:
        raise UsageError("num_diff_opt must be 1 (the per-layer-block search is out of scope)")
    if cfg["type"] not in ("nlp", "img"):
        raise UsageError(f"config key 'type' must be NLP or img, got {cfg['type']!r}")
    for key in ("batch_size", "epochs", "gradient_accumulation_steps", "eval_every", "max_len"):
        if cfg[key] < 1:
            raise UsageError(f"config key {key!r} must be >= 1, got {cfg[key]}")
    if cfg["batch_size"] % cfg["gradient_accumulation_steps"]:
        raise UsageError("batch_size must be a multiple of gradient_accumulation_steps")
    if not 0.0 <= cfg["warmup"] < 1.0:
        raise UsageError(f"warmup must be a fraction in [0, 1), got {cfg['warmup']}")
    if cfg["c"] is not None and not 0.0 < cfg["c"] < 1.0:
        raise UsageError(f"invalid c: {cfg['c']} (must be in (0, 1))")
    if cfg["lr"] is not None and not (cfg["lr"] > 0 and math.isfinite(cfg["lr"])):
        raise UsageError(f"lr must be > 0, got {cfg['lr']}")
    return cfg


def run_name(cfg: dict[str, Any]) -> str:
    """basename of `directory`; `default` -> <dataset>_<optim>_s<seed>."""
    base = Path(str(cfg["directory"]).rstrip("/")).name
    if base in ("", "default", ".", ".."):
        return f"{cfg['dataset']}_{cfg['optim']}_s{cfg['seed']}"
    return base


def write_ini(cfg: dict[str, Any], path: str | Path) -> Path:
    """Write a config as the seed's INI file with a [DEFAULT] section."""
    parser = configparser.ConfigParser()
    parser["DEFAULT"] = {k: str(v) for k, v in cfg.items()}
    path = Path(path)
    with open(path, "w") as handle:
        parser.write(handle)
    return path


def _kw(cfg: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {k: v for k, v in extra.items() if v is not None}


def build_optimizer(cfg: dict[str, Any], model: torch.nn.Module, total_steps: int, seed: int):
    """The optim map of DESIGN.md §4.1. Returns (optimizer, scheduler or None)."""
    name, params = cfg["optim"], [p for p in model.parameters() if p.requires_grad]
    c, beta, speed = cfg["c"], cfg["beta"], cfg["speed_up"]
    common = {"seed": seed, "model": model}
    if name == "kensls":
        return KenSLS(params, **_kw(cfg, c=c, beta_s=beta, speed_up=speed), **common), None
    if name == "adamsls":
        return AdamSLS(params, smooth=True, **_kw(cfg, c=c, beta_s=beta, speed_up=speed), **common), None
    if name == "oladamsls":
        return AdamSLS(params, smooth=False, c=0.1, **common), None
    if name in ("salsa", "salsasls"):
        return SaLSa(params, **_kw(cfg, c=c, speed_up=speed), **common), None
    if name in ("sls", "sgdsls"):
        return SLS(params, **_kw(cfg, c=c, beta_s=beta, speed_up=speed), **common), None
    if name == "olsgdsls":
        return SLS(params, c=0.1, **common), None
    pretrained = cfg["model"] == "bert" and bool(cfg["model_path"])
    if name == "adam":
        lr = cfg["lr"] or (2e-5 if pretrained else 1e-3)
        opt = torch.optim.Adam(params, lr=lr)
    else:
        lr = cfg["lr"] or (2e-3 if pretrained else 0.1)
        opt = torch.optim.SGD(params, lr=lr)
    warm = int(cfg["warmup"] * total_steps)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda t: warmup_cosine(t, warm, total_steps))


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """LR factor: linear warmup over `warmup_steps`, then cosine decay to 0 at `total_steps` (closed form)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup_steps) / span)))
