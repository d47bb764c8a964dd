"""Forward-mode directional derivatives d = V grad f with torch.func (DESIGN.md §3.3).

`multi_jvp` evaluates K jvps in one vmap over the tangent lanes: the primal f(x) is computed once and returned
unbatched (out_dims None), the K tangent outputs come back stacked. `backend="loop"` runs K separate jvp calls
(benchmark baseline and test oracle).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import jvp, vmap

from common.cli import UsageError

__all__ = ["multi_jvp", "JVP_BACKENDS"]

JVP_BACKENDS = ("vmap", "loop")


def _same_dtype(result):
    """Cast d to the primal's dtype: torch 2.14 returned float64 tangents for a float32 primal in one case
    (Styblinski-Tang at x = 0), which then broke the aggregation's matmul."""
    value, d = result[0], result[1]
    if isinstance(value, torch.Tensor) and isinstance(d, torch.Tensor) and d.dtype != value.dtype:
        d = d.to(value.dtype)
    return (value, d, *result[2:])


def multi_jvp(
    f: Callable,
    x,
    V,
    *,
    backend: str = "vmap",
    chunk_size: int | None = None,
    has_aux: bool = False,
):
    """Return (f(x), d) with d[i] = J_f(x) V[i]; with has_aux, (f(x), d, aux) where f returns (out, aux).

    x is a tensor or a tuple of tensors (then V is a tuple of (K, *x_j.shape) tensors); V has a leading K axis.
    A function with random operations (dropout) is evaluated with one draw shared by all K lanes of a vmap call; with
    ``chunk_size`` each chunk draws anew.
    """
    primals = x if isinstance(x, tuple) else (x,)
    lanes = V if isinstance(V, tuple) else (V,)
    if backend == "vmap" and lanes[0].shape[0] == 1:
        backend = "loop"  # one lane: a plain jvp call skips vmap's batching overhead (same numbers)
    if backend == "vmap":

        def one(*tangents):
            return jvp(f, primals, tangents, has_aux=has_aux)

        out_dims = (None, 0, None) if has_aux else (None, 0)
        # randomness="same": every lane sees the same random draws (one dropout mask), so the K directional
        # derivatives are of one stochastic loss, as in the loop backend's single jvp per call
        batched = vmap(one, in_dims=0, out_dims=out_dims, randomness="same")
        k = lanes[0].shape[0]
        if chunk_size is None or chunk_size >= k:
            return _same_dtype(batched(*lanes))
        if chunk_size <= 0:
            raise UsageError(f"jvp chunk_size must be positive, got {chunk_size}")
        # torch's own chunk_size cannot concatenate out_dims=None outputs, so chunk here; the primal of the
        # first chunk is kept (later chunks recompute it: the cost of chunking).
        parts = [batched(*(t[i : i + chunk_size] for t in lanes)) for i in range(0, k, chunk_size)]
        d = torch.cat([p[1] for p in parts])
        return _same_dtype((parts[0][0], d, parts[0][2]) if has_aux else (parts[0][0], d))
    if backend == "loop":
        k = lanes[0].shape[0]
        values, dirs, aux = None, [], None
        for i in range(k):
            res = jvp(f, primals, tuple(t[i] for t in lanes), has_aux=has_aux)
            if i == 0:
                values = res[0]
                aux = res[2] if has_aux else None
            dirs.append(res[1])
        d = torch.stack(dirs)
        return _same_dtype((values, d, aux) if has_aux else (values, d))
    raise UsageError(f"unknown jvp backend {backend!r}; choose from {', '.join(JVP_BACKENDS)}")
