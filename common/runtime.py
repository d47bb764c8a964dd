"""Seeding, device selection and thread settings shared by every script."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from common.cli import UsageError

__all__ = ["seed_everything", "resolve_device", "set_threads", "default_threads"]

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators (all CUDA devices too)."""
    if not isinstance(seed, int) or seed < 0:
        raise UsageError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """Turn ``auto|cpu|cuda|cuda:N`` into a torch.device; ``auto`` picks CUDA when it exists.

    Asking for CUDA on a machine without it is a usage error (:class:`common.cli.UsageError`), not a fallback.
    """
    if isinstance(spec, torch.device):
        return spec
    spec = str(spec).strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {spec} requested but CUDA is not available on this machine; use --device cpu")
        return torch.device(spec)
    raise UsageError(f"unknown device {spec!r}; choose one of auto, cpu, cuda, cuda:N")


def default_threads() -> int:
    """Threads to use: OMP_NUM_THREADS when set, else the number of usable cores."""
    env = os.environ.get("OMP_NUM_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads to ``n`` (None or 0: :func:`default_threads`) and return the value used."""
    if n is not None and n < 0:
        raise UsageError(f"threads must be >= 0, got {n}")
    n = n or default_threads()
    torch.set_num_threads(n)
    return n
