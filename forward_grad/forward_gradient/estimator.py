"""ForwardGradient: tangent sampler + K + aggregation, evaluated in true forward mode (DESIGN.md §3.3).

Flügel et al., arXiv 2410.17764, sec. 3 (multi-tangent forward gradients) and sec. 5.2 (activity perturbation).
Notation: n perturbed dimension, K tangents, V (K x n), d = V g (K, or K x B per sample in node mode), g_hat the
estimate. Weight perturbation: one global tangent over the concatenation of all trainable parameters; no reverse-mode
call at all. Node (activity) perturbation: block outputs a_l -> a_l + eps_l with per-sample-shaped eps_l shared over
the batch, one vmap(jvp) at eps = 0 over the per-sample losses L_b/B gives d (K x B); the tangent flows through all
later blocks; weight gradients come from block-local backward passes torch.autograd.grad(a_l, theta_l, FG(a_l)) on
the graph of the single primal pass. BatchNorm runs on batch statistics inside the jvp (buffers untouched) and the
running statistics are updated once per step afterwards with torch's momentum rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from common.cli import UsageError
from forward_grad.forward_gradient.aggregation import (
    aggregate,
    canonical_aggregation,
    frog_directions,
    frog_from_directions,
    scaling_factor,
)
from forward_grad.forward_gradient.jvp import JVP_BACKENDS, multi_jvp
from forward_grad.forward_gradient.tangents import parse_sampler, sample_tangents

try:  # scaled_dot_product_attention's fused CPU/CUDA kernels have no forward-mode AD; the math kernel has
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def _jvp_friendly_attention():
        return sdpa_kernel([SDPBackend.MATH])
except ImportError:  # torch < 2.3
    import contextlib

    def _jvp_friendly_attention():
        return contextlib.nullcontext()


__all__ = ["ForwardGradient", "StepResult", "model_blocks", "PERTURBATION_MODES", "FROG_MODES"]

PERTURBATION_MODES = ("node", "weight")
FROG_MODES = ("qr", "solve")


class StepResult(NamedTuple):
    loss: float  # batch-mean loss at the current parameters (the jvp's primal)
    jvps: int  # number of tangent lanes evaluated


def model_blocks(model: nn.Module) -> list[nn.Module]:
    """The node-mode block list: `model.blocks` if present, else the children of an nn.Sequential."""
    if hasattr(model, "blocks"):
        return list(model.blocks)
    if isinstance(model, nn.Sequential):
        return list(model.children())
    raise ValueError(f"{type(model).__name__} has no block list (give it `.blocks` or make it an nn.Sequential)")


class _BatchNormCapture:
    """Context: train-mode BatchNorm layers use batch statistics without touching their buffers (jvp refuses
    in-place updates of captured tensors); a forward hook records each layer's batch mean and unbiased variance."""

    def __init__(self, model: nn.Module):
        self.layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
        self.stats: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._handles = []
        self._tracked: list[nn.Module] = []

    def _hook(self, module, inputs, output):
        x = inputs[0]
        dims = [i for i in range(x.dim()) if i != 1]
        self.stats.append((x.mean(dims), x.var(dims, unbiased=True)))

    def __enter__(self):
        for m in self.layers:
            if m.track_running_stats:
                m.track_running_stats = False
                self._tracked.append(m)
                self._handles.append(m.register_forward_hook(self._hook))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        for m in self._tracked:
            m.track_running_stats = True
        return False

    @torch.no_grad()
    def update(self, stats) -> None:
        """running <- (1 - m) running + m stat, m = momentum (cumulative average when momentum is None)."""
        layers = self._tracked
        if len(stats) != len(layers):
            raise RuntimeError(f"captured {len(stats)} BatchNorm statistics for {len(layers)} layers")
        for m, (mean, var) in zip(layers, stats):
            m.num_batches_tracked.add_(1)
            mom = m.momentum if m.momentum is not None else 1.0 / float(m.num_batches_tracked)
            m.running_mean.mul_(1 - mom).add_(mean.detach().to(m.running_mean.dtype), alpha=mom)
            m.running_var.mul_(1 - mom).add_(var.detach().to(m.running_var.dtype), alpha=mom)


class ForwardGradient:
    """Multi-tangent forward gradient estimator (DESIGN.md §3; paper eq. for g_v, g_bar_V and P_U grad f).

    Args:
        num_directions: K >= 1 tangents per step.
        aggregation: a name of DESIGN.md §3.2 ("mean", "sum", "mean_times_dim", "max", "max_normalized",
            "mean_of_top_k", "orthogonal_projection") or "frog".
        tangent_sampler: a sampler of §3.1 ("normal", "rademacher", "standard_basis", "specific_angle_<theta>",
            "varying_length_<L>").
        normalize_tangents: divide each tangent by its norm (a no-op for frog).
        frog_mode: "qr" (jvps along the orthonormal Q of V^T = QR) or "solve" (jvps along V, triangular solve).
        scaling_correction: the reference's heuristic rescaling (DESIGN.md §3.2), off by default.
        perturbation_mode: "node" (activity perturbation, the paper's default) or "weight" for `step`.
        jvp_backend: "vmap" (one batched jvp) or "loop" (K jvp calls).
        jvp_chunk_size: lanes per vmap call (None: all K at once).
        generator: torch.Generator for the tangents (default: a CPU generator seeded with 0).
        resample_rank_deficient: redraw rank-deficient V (<= 10 times); None = on only for frog with rademacher
            tangents and K < 32, as the reference does.
    """

    def __init__(
        self,
        num_directions: int = 1,
        aggregation: str = "mean",
        tangent_sampler: str = "normal",
        *,
        normalize_tangents: bool = False,
        frog_mode: str = "qr",
        scaling_correction: bool = False,
        perturbation_mode: str = "node",
        jvp_backend: str = "vmap",
        jvp_chunk_size: int | None = None,
        generator: torch.Generator | None = None,
        resample_rank_deficient: bool | None = None,
    ):
        if int(num_directions) != num_directions or num_directions <= 0:
            raise UsageError(f"num_directions K must be a positive integer, got {num_directions}")
        self.k = int(num_directions)
        self.aggregation = canonical_aggregation(aggregation)
        self.sampler = parse_sampler(tangent_sampler)
        if frog_mode not in FROG_MODES:
            raise UsageError(f"unknown frog_mode {frog_mode!r}; choose from {', '.join(FROG_MODES)}")
        if perturbation_mode not in PERTURBATION_MODES:
            raise UsageError(f"unknown perturbation_mode {perturbation_mode!r}; choose from node, weight")
        if jvp_backend not in JVP_BACKENDS:
            raise UsageError(f"unknown jvp_backend {jvp_backend!r}; choose from {', '.join(JVP_BACKENDS)}")
        if jvp_chunk_size is not None and jvp_chunk_size <= 0:
            raise UsageError(f"jvp_chunk_size must be positive, got {jvp_chunk_size}")
        self.normalize_tangents = normalize_tangents
        self.frog_mode = frog_mode
        self.scaling_correction = scaling_correction
        self.perturbation_mode = perturbation_mode
        self.jvp_backend = jvp_backend
        self.jvp_chunk_size = jvp_chunk_size
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        if resample_rank_deficient is None:
            resample_rank_deficient = self.is_frog and self.sampler.kind == "rademacher" and self.k < 32
        self.resample_rank_deficient = resample_rank_deficient
        self._shape_cache: dict = {}
        self._flat_buffer: torch.Tensor | None = None  # weight mode: concatenated parameters, reused per step

    @property
    def is_frog(self) -> bool:
        return self.aggregation == "orthogonal_projection"

    # --- the three stages: sample, directions, combine --------------------------------------------------------
    def sample(self, n: int, dtype=torch.float32, device="cpu") -> torch.Tensor:
        """Draw V (K x n) from the generator, in dtype on device."""
        gen_device = self.generator.device
        V = sample_tangents(
            self.sampler,
            self.k,
            n,
            generator=self.generator,
            dtype=dtype,
            device=gen_device,
            normalize=self.normalize_tangents,
            resample_rank_deficient=self.resample_rank_deficient,
        )
        return V.to(device)

    def directions(self, V: torch.Tensor) -> torch.Tensor:
        """The rows along which the jvps run: Q^T for frog in qr mode, V otherwise."""
        if self.is_frog and self.frog_mode == "qr":
            return frog_directions(V)
        return V

    def combine(self, d: torch.Tensor, V: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
        """g_hat from jvps d (..., K') along directions D (K' x n) drawn as V (K x n)."""
        if self.is_frog and self.frog_mode == "qr":
            out = frog_from_directions(d, D)
            if self.scaling_correction:
                out = out * scaling_factor("frog", V.shape[-1], V)
            return out
        return aggregate(self.aggregation, d, V, scaling_correction=self.scaling_correction)

    # --- functions of a tensor ---------------------------------------------------------------------------------
    def value_and_estimate(self, f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, jvps=None):
        """(f(x), g_hat) with g_hat shaped like x, from one vmap(jvp) pass (f(x) is its primal).

        jvps(x, D) -> (f(x), d), if given, supplies the directional derivatives d_i = D_i . grad f(x) for the
        K' x n direction matrix D instead of torch.func (e.g. a closed form); sampling and aggregation are unchanged.
        """
        n = x.numel()
        V = self.sample(n, x.dtype, x.device)
        D = self.directions(V)
        if jvps is not None:
            value, d = jvps(x.reshape(-1), D)
        else:
            value, d = multi_jvp(
                f, x, D.reshape(D.shape[0], *x.shape), backend=self.jvp_backend, chunk_size=self.jvp_chunk_size
            )
        g_hat = self.combine(d.reshape(-1), V, D)
        return value, g_hat.reshape(x.shape)

    def estimate(self, f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """g_hat, an estimate of grad f(x) (DESIGN.md §3.2 aggregation of the K forward gradients)."""
        return self.value_and_estimate(f, x)[1]

    # --- neural networks ---------------------------------------------------------------------------------------
    def step(self, model: nn.Module, batch, loss_fn: Callable | None = None) -> StepResult:
        """Write g_hat into every trainable parameter's .grad (in place) for batch = (inputs, targets).

        loss_fn(outputs, targets, reduction=...) defaults to cross entropy; the objective is the batch mean.
        """
        loss_fn = loss_fn or F.cross_entropy
        if self.perturbation_mode == "weight":
            return self._weight_step(model, batch, loss_fn)
        return self._node_step(model, batch, loss_fn)

    def dimension(self, model: nn.Module, x: torch.Tensor) -> int:
        """n of the perturbed space: #trainable parameters (weight) or per-sample activities (node)."""
        if self.perturbation_mode == "weight":
            return sum(p.numel() for p in model.parameters() if p.requires_grad)
        return sum(int(torch.Size(s).numel()) for s in self.block_shapes(model, x))

    def weight_jvps(self, model, batch, D, loss_fn=None):
        """(L(theta), d) with d_i = D_i . grad_theta L for directions D (K x #params) over the concatenated
        trainable parameters: one vmap(jvp) of the batch-mean loss, no reverse-mode call. Updates BN statistics.

        No copies of tangents or parameters for K = 1: the primals are the parameters themselves and the tangents
        alias D's row (`_aliased_lanes`). For K > 1 the primal is the parameter vector in a reused buffer and D's
        rows are the tangents as they are. No hooks and no aux outputs when the model has no train-mode BatchNorm.
        """
        loss_fn = loss_fn or F.cross_entropy
        x, y = batch
        named = [(nm, p) for nm, p in model.named_parameters() if p.requires_grad]
        names = [nm for nm, _ in named]
        params = [p for _, p in named]
        lanes = self._aliased_lanes(D, params)
        if lanes is not None:
            primals = tuple(p.detach() for p in params)

            def views(*theta):
                return dict(zip(names, theta))

        else:
            sizes = [p.numel() for p in params]
            primals, lanes = (self._flat_parameters(params, sum(sizes)),), (D,)

            def views(theta):
                return {nm: c.view_as(p) for (nm, p), c in zip(named, torch.split(theta, sizes))}

        capture = _BatchNormCapture(model)
        jvp_kw = dict(backend=self.jvp_backend, chunk_size=self.jvp_chunk_size)
        if not capture.layers:  # no train-mode BatchNorm: no hooks, no aux outputs

            def loss_of(*theta):
                return loss_fn(functional_call(model, views(*theta), (x,)), y)

            with _jvp_friendly_attention():
                value, d = multi_jvp(loss_of, primals, lanes, **jvp_kw)
            return value.detach(), d.detach()

        def loss_of_bn(*theta):
            capture.stats.clear()
            out = functional_call(model, views(*theta), (x,))
            return loss_fn(out, y), tuple(capture.stats)

        with capture, _jvp_friendly_attention():
            value, d, stats = multi_jvp(loss_of_bn, primals, lanes, has_aux=True, **jvp_kw)
            capture.update(stats)
        return value.detach(), d.detach()

    @staticmethod
    def _aliased_lanes(D: torch.Tensor, params) -> tuple[torch.Tensor, ...] | None:
        """For one direction (D of shape 1 x n on the CPU): per parameter a (1, *p.shape) tangent over D's memory
        whose own storage covers just that parameter's columns. Forward AD copies a tangent whose layout (strides,
        storage offset, storage size) differs from its primal's (a plain view of D would be copied: a fill and a
        copy of n entries per step); these match a contiguous parameter, so nothing is copied. None when D is not a
        single dense CPU row (then the flat path runs)."""
        if D.dim() != 2 or D.shape[0] != 1 or D.device.type != "cpu" or D.stride(-1) != 1 or D.requires_grad:
            return None
        if type(D) is not torch.Tensor or any(p.dtype != D.dtype for p in params):
            return None
        try:
            storage, size = D.untyped_storage(), D.element_size()
        except (RuntimeError, NotImplementedError):  # a transform's wrapper (e.g. under vmap) has no storage
            return None
        start = D.storage_offset() * size
        lanes = []
        for p in params:
            m = p.numel()
            # set_ without strides gives the contiguous layout of (1, *p.shape), the one a contiguous p has
            lanes.append(D.new_empty(0).set_(storage[start : start + m * size], 0, (1, *p.shape)))
            start += m * size
        return tuple(lanes)

    @torch.no_grad()
    def _flat_parameters(self, params, n: int) -> torch.Tensor:
        """The concatenated parameters in a buffer reused across steps (a fresh n-entry tensor per step costs page
        faults on the CPU); D's rows then have the primal's layout and forward AD uses them without a copy."""
        dtype, device = params[0].dtype, params[0].device
        buf = self._flat_buffer
        if buf is None or buf.numel() != n or buf.dtype != dtype or buf.device != device:
            buf = self._flat_buffer = torch.empty(n, dtype=dtype, device=device)
        torch.cat([p.reshape(-1) for p in params], out=buf)
        return buf

    def write_weight_grads(self, params, d: torch.Tensor, V: torch.Tensor, D: torch.Tensor) -> None:
        """Write g_hat = combine(d, V, D) into each p.grad (in place; created if None), params in the column order
        of D. Linear aggregations (mean, sum, mean_times_dim, frog qr; no scaling correction) are computed per
        parameter straight into .grad with the same operations as `combine`; the others go through `combine`."""
        grads = []
        for p in params:
            if p.grad is None:
                p.grad = torch.empty_like(p, memory_format=torch.contiguous_format)
            grads.append(p.grad)
        sizes = [p.numel() for p in params]
        qr = self.is_frog and self.frog_mode == "qr"
        linear = not self.scaling_correction and (qr or self.aggregation in ("mean", "sum", "mean_times_dim"))
        if not linear or not all(g.is_contiguous() for g in grads):
            for g, part in zip(grads, torch.split(self.combine(d, V, D), sizes)):
                g.copy_(part.view_as(g))
            return
        k, n = V.shape
        w = d.reshape(1, -1)
        for g, rows in zip(grads, torch.split(D, sizes, dim=1)):  # D is V itself unless frog runs in qr mode
            out = g.view(1, -1)
            if w.shape[1] == 1:  # d_1 v_1: the product the 1 x 1 mm forms, without a gemm call
                torch.mul(rows, w, out=out)
            else:
                torch.mm(w, rows, out=out)  # what d @ V does (unsqueeze, mm), on this parameter's columns
            if self.aggregation == "mean_times_dim" and not qr:
                out.mul_(n / k)
            elif self.aggregation == "mean" and not qr and k != 1:  # x / 1 == x: skip the pass
                out.div_(k)

    def _weight_step(self, model, batch, loss_fn) -> StepResult:
        params = [p for p in model.parameters() if p.requires_grad]
        V = self.sample(sum(p.numel() for p in params), params[0].dtype, params[0].device)
        D = self.directions(V)
        value, d = self.weight_jvps(model, batch, D, loss_fn)
        self.write_weight_grads(params, d, V, D)
        return StepResult(float(value), D.shape[0])

    def block_shapes(self, model, x) -> list[torch.Size]:
        """Per-sample shapes of the block outputs a_l (one no-grad eval-mode pass on one sample, cached)."""
        key = (id(model), tuple(x.shape[1:]), x.dtype)
        if key not in self._shape_cache:
            modes = [m.training for m in model.modules()]
            model.eval()
            shapes = []
            with torch.no_grad():
                h = x[:1]
                for blk in model_blocks(model):
                    h = blk(h)
                    shapes.append(h.shape[1:])
            for m, mode in zip(model.modules(), modes):
                m.training = mode
            self._shape_cache[key] = shapes
        return self._shape_cache[key]

    def node_jvps(self, model, batch, D, loss_fn=None):
        """(L_b/B per sample, d (K x B), block outputs a_l) for directions D (K x n) over the concatenated
        per-sample block outputs: eps_l is added to a_l, shared across the batch; one vmap(jvp) at eps = 0.

        The block outputs come from the single primal pass and carry its autograd graph (for the block-local
        backward). BatchNorm statistics are updated once.
        """
        loss_fn = loss_fn or F.cross_entropy
        x, y = batch
        blocks = model_blocks(model)
        shapes = self.block_shapes(model, x)
        numels = [int(torch.Size(s).numel()) for s in shapes]
        bsz = x.shape[0]
        capture = _BatchNormCapture(model)

        def per_sample_loss(*eps):
            capture.stats.clear()
            h, outs = x, []
            for blk, e in zip(blocks, eps):
                a = blk(h)
                outs.append(a)
                h = a + e
            return loss_fn(h, y, reduction="none") / bsz, (tuple(outs), tuple(capture.stats))

        lanes = tuple(c.reshape(D.shape[0], *s) for c, s in zip(torch.split(D, numels, dim=1), shapes))
        zeros = tuple(torch.zeros(s, dtype=D.dtype, device=x.device) for s in shapes)
        with capture, _jvp_friendly_attention():
            losses, d, (outs, stats) = multi_jvp(
                per_sample_loss, zeros, lanes, backend=self.jvp_backend, chunk_size=self.jvp_chunk_size, has_aux=True
            )
            capture.update(stats)
        return losses.detach(), d.detach(), list(outs)

    def _node_step(self, model, batch, loss_fn) -> StepResult:
        x = batch[0]
        blocks = model_blocks(model)
        numels = [int(torch.Size(s).numel()) for s in self.block_shapes(model, x)]
        dtype = next(model.parameters()).dtype
        V = self.sample(sum(numels), dtype, x.device)
        D = self.directions(V)
        losses, d, outs = self.node_jvps(model, batch, D, loss_fn)
        g_act = self.combine(d.T, V, D)  # (B, n): per-sample activity estimates, one U for all samples
        bsz = x.shape[0]
        for blk, a, g in zip(blocks, outs, torch.split(g_act, numels, dim=1)):
            params = [p for p in blk.parameters() if p.requires_grad]
            if not params:
                continue
            # block-local backward: the engine visits only the ops between theta_l and a_l
            grads = torch.autograd.grad(a, params, g.reshape(bsz, *a.shape[1:]), allow_unused=True)
            for p, gp in zip(params, grads):
                gp = torch.zeros_like(p) if gp is None else gp
                if p.grad is None:
                    p.grad = gp.detach().clone()
                else:
                    p.grad.copy_(gp)
        return StepResult(float(losses.sum()), D.shape[0])
