"""Closure normalisation and norm-layer state preservation for the Armijo optimizers (DESIGN.md §3.3).

Closure contract: a closure with a parameter `backward` (or the SaLSa spelling `backwards`) is called once per step
with True (it zero-grads, runs forward and backward, returns the loss) and with False for every trial. A closure
without such a parameter is called with no argument; the optimizer then runs `loss.backward()` itself.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator

import torch
from torch import nn

__all__ = ["normalize_closure", "preserve_running_stats", "norm_layers"]

_BACKWARD_NAMES = ("backward", "backwards")


def _backward_keyword(closure: Callable) -> str | None:
    try:
        sig = inspect.signature(closure)
    except (TypeError, ValueError):
        return None
    for name in _BACKWARD_NAMES:
        if name in sig.parameters:
            return name
    return None


def _check_loss(loss) -> torch.Tensor:
    if not isinstance(loss, torch.Tensor):
        loss = torch.as_tensor(loss)
    if loss.numel() != 1:
        raise ValueError(f"the closure must return a scalar loss, got shape {tuple(loss.shape)}")
    return loss


def normalize_closure(closure: Callable | None) -> Callable[[bool], torch.Tensor]:
    """Return `call(backward: bool) -> scalar loss tensor` for either closure form.

    backward=True: gradients of the returned loss are in p.grad afterwards (run under enable_grad).
    backward=False: a forward only, under torch.no_grad().
    """
    if closure is None:
        raise RuntimeError("Armijo line search optimizers need a closure: optimizer.step(closure)")
    keyword = _backward_keyword(closure)

    def call(backward: bool) -> torch.Tensor:
        if backward:
            with torch.enable_grad():
                if keyword is not None:
                    loss = _check_loss(closure(**{keyword: True}))
                else:
                    loss = _check_loss(closure())
                    loss.backward()
            return loss.detach()
        with torch.no_grad():
            loss = closure(**{keyword: False}) if keyword is not None else closure()
            return _check_loss(loss).detach()

    return call


def norm_layers(module: nn.Module) -> list[nn.Module]:
    """Modules with tracked running statistics (BatchNorm, InstanceNorm with track_running_stats=True)."""
    return [
        m
        for m in module.modules()
        if getattr(m, "track_running_stats", False) and getattr(m, "running_mean", None) is not None
    ]


@contextlib.contextmanager
def preserve_running_stats(module: nn.Module | None) -> Iterator[None]:
    """Copy running_mean/var and num_batches_tracked of every norm layer, restore them on exit (DESIGN.md §3.3)."""
    if module is None:
        yield
        return
    saved = []
    for m in norm_layers(module):
        buffers = {}
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            buf = getattr(m, name, None)
            if buf is not None:
                buffers[name] = buf.detach().clone()
        saved.append((m, buffers))
    try:
        yield
    finally:
        with torch.no_grad():
            for m, buffers in saved:
                for name, value in buffers.items():
                    getattr(m, name).copy_(value)
