"""AutoWU: automated warmup and decay of the learning rate (Kim et al., AutoML@ICML 2021, arXiv 2107.05855).

DESIGN.md §3.1 (closed forms), §3.2 (the test, in autowu.gp_test), §3.3 (options), §3.4 (loss input), §3.5 (state,
distributed). Symbols: S steps per epoch, E epochs, T = S E, W = floor(f_w T), r = eta_max/eta_min, lr_u the LR used
by update u; after k calls of step(loss) the optimizer holds lr_{k+1}.
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from dataclasses import asdict

import numpy as np
import torch
import torch.distributed as dist
from torch.optim.lr_scheduler import LRScheduler

from autowu.config import DecayConfig, PolicyConfig, RampConfig, resolve_settings
from autowu.gp_test import GPConfig, GPTest
from autowu.schedules import (
    cooldown_lr,
    cooldown_start,
    middle_lr,
    ramp_estimate,
    warmup_lr,
    warmup_steps,
)

__all__ = ["AutoWU", "REASONS"]

REASONS = ("test", "nonfinite", "divergence", "max_warmup", "cooldown_time")
_CONTINUE, _SWITCH, _ERROR, _REDUCE = 0, 1, 2, 3


def _message_device(backend: str) -> torch.device:
    """Where the rank-0 broadcast message lives: nccl moves CUDA tensors only, every other backend CPU ones."""
    return torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")


class AutoWU(LRScheduler):
    r"""Exponential LR warmup with a Gaussian-process stopping test, then a predefined decay.

    .. math::
        \textbf{warmup: } \eta_u = \eta_{min} r^{(u-1)/W}\ \text{until the test fires (3 positive epochs) or } u = W \\
        \textbf{test at each epoch end: } p_r = \max_{j<K} \Phi\big(-(\mu_j-\mu_K)/\sqrt{\mathrm{Var}(f_j-f_K)+v_0}\big)
            > 0.95 \text{ for } \ge 3 \text{ of } 5 \text{ repeats} \\
        \textbf{decay from } \eta_{sw} = \mathrm{mean}_r\, \eta_{min}(\eta_{now}/\eta_{min})^{z^*_r}:
            \ \eta_u = \eta_{sw}\tfrac12(1+\cos(\pi (u-t_{sw})/(T-t_{sw})))

    Call ``scheduler.step(loss)`` after every ``optimizer.step()``. Per-step work copies the loss into a preallocated
    buffer on ``device`` (no host sync); the test runs on CPU in float64 every ``test_interval`` steps.

    Args:
        optimizer: any torch optimizer; its lr is ignored (lr_1 = min_lr in every group, as in the reference).
        steps_per_epoch (S), total_epochs (E): ints >= 1.
        min_lr, max_lr, max_warmup_fraction: ramp ends eta_min = 1e-5, eta_max = 1, and the cap f_w = 0.5 of T.
        warmup_type ('exp' | 'linear'), warmup_unit ('step' | 'epoch' staircase).
        immediate_cooldown: **True by default** (the README's cosine decay); the reference code defaults to False.
            False gives constant-then-cosine: eta_sw f^m in the middle phase, cosine over the last
            ``cooldown_fraction`` of T.
        decay_phase_stat (None | 'loss'), decay_phase_factor f in (0, 1]: middle-phase factor per epoch, or per
            plateau (ReduceLROnPlateau logic, patience 5 epochs) with 'loss'.
        cooldown_type: 'cosine' or 'half_cosine' (halves the LR at once, as in the reference).
        device: device of the loss buffer (None: the first loss's device). The GP always runs on CPU.
        test_interval: steps between tests (None: S).
        lengthscale, noise_floor, var_floor, fit_points, pred_points, n_preds, grid_size, confidence, votes,
            patience, seed, gp_fit ('lbfgs' | 'adam' = reference fit), gp_fit_iters: the test (DESIGN.md §3.2).
        on_nonfinite: 'switch' (bad interval switches at once), 'ignore' (reference: drop non-finite values),
            'raise' (FloatingPointError naming the first bad step). divergence_factor: an interval whose median
            exceeds this multiple of the first finite interval's median is bad (None: off).
        fallback_lr: 'ramp' (eta_sw = lr_W, reference) or 'argmin' (the last test's estimate) when no switch by W.
        reduce_loss: all-reduce the interval's losses (mean over ranks) once per test; process_group: the group.
        preserve_group_ratios: False (reference) gives every group the same LR; True keeps lr0_g / lr0_0.
        test_factory: callable GPConfig -> test object (autowu.reference.ReferenceGPTest for the reference).
        ramp, decay, gp, policy: the same settings grouped (autowu.config RampConfig, DecayConfig, GPConfig,
            PolicyConfig). The flat keywords above are routed to these groups and win over a group's field.

    Notes:
        Differences from the reference code: the immediate_cooldown default; decay_phase_factor applies per epoch
        (the reference applies it once); steps past T keep lr_T instead of restarting a periodic cosine; the GP fit
        is a warm-started clipped L-BFGS, not a persistent Adam (gp_fit='adam' restores it); non-finite and
        divergent losses switch at once (on_nonfinite='ignore' restores the reference).
    """

    def __init__(
        self,
        optimizer,
        steps_per_epoch,
        total_epochs,
        *,
        ramp: RampConfig | None = None,
        decay: DecayConfig | None = None,
        gp: GPConfig | None = None,
        policy: PolicyConfig | None = None,
        device=None,
        reduce_loss=False,
        process_group=None,
        preserve_group_ratios=False,
        test_factory=None,
        **settings,
    ):
        for name, v in (("steps_per_epoch", steps_per_epoch), ("total_epochs", total_epochs)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be an int >= 1; got {v!r}")
        cfg = resolve_settings({"ramp": ramp, "decay": decay, "gp": gp, "policy": policy}, settings)
        self.ramp_config, self.decay_config, self.gp_config, self.policy_config = cfg
        S, E = int(steps_per_epoch), int(total_epochs)
        self.steps_per_epoch, self.total_epochs, self.total_steps = S, E, S * E
        r, d, p = cfg.ramp, cfg.decay, cfg.policy
        self.min_lr, self.max_lr, self.max_warmup_fraction = r.min_lr, r.max_lr, r.max_warmup_fraction
        self.warmup = warmup_steps(self.total_steps, self.max_warmup_fraction)
        self.warmup_type, self.warmup_unit = r.warmup_type, r.warmup_unit
        self.immediate_cooldown = d.immediate_cooldown
        self.decay_phase_stat, self.decay_phase_factor = d.decay_phase_stat, d.decay_phase_factor
        self.cooldown_fraction, self.cooldown_type = d.cooldown_fraction, d.cooldown_type
        self.fallback_lr = d.fallback_lr
        self.test_interval = p.test_interval if p.test_interval is not None else S
        self.patience, self.on_nonfinite, self.divergence_factor = p.patience, p.on_nonfinite, p.divergence_factor
        self.reduce_loss, self.process_group = bool(reduce_loss), process_group
        self.preserve_group_ratios = bool(preserve_group_ratios)
        self._device = torch.device(device) if device is not None else None
        self._test = (test_factory or GPTest)(self.gp_config)

        self._ratios = self._group_ratios(optimizer)  # before super().__init__, which takes the first step
        self._reset_state()
        self._initializing = True
        super().__init__(optimizer)
        self._initializing = False
        if self.warmup == 0:  # f_w = 0: decay from eta_max at once
            self._switch(0, self.max_lr, "max_warmup")  # the LR in use, lr_1 = warmup_lr(W = 0), is eta_max
            self._apply_lr(1)

    def _group_ratios(self, optimizer) -> list[float]:
        """LR multipliers per param group: all 1 (the reference; warns if initial LRs differ), or lr0_g / lr0_0."""
        lr0 = [float(g.get("initial_lr", g["lr"])) for g in optimizer.param_groups]
        if self.preserve_group_ratios:
            if lr0[0] <= 0:
                raise ValueError(f"preserve_group_ratios needs a positive lr in group 0; got {lr0[0]}")
            return [v / lr0[0] for v in lr0]
        if len(set(lr0)) > 1:
            warnings.warn(
                f"AutoWU gives all {len(lr0)} param groups one LR (initial LRs {lr0} differ); "
                "pass preserve_group_ratios=True to keep their ratios",
                stacklevel=3,
            )
        return [1.0] * len(lr0)

    def _reset_state(self) -> None:
        """Anchors, buffers, verdicts and logs of a fresh run (everything state_dict saves)."""
        self._phase = "warmup"
        self._t_sw = self._eta_sw = self._t0 = self._eta0 = self._eta_c = self._peak = None
        self._reason = None
        self._t_c = None if self.immediate_cooldown else cooldown_start(self.total_steps, self.cooldown_fraction)
        self._chunks: list[torch.Tensor] = []
        self._buf = None
        self._buf_count = 0
        self._pending_restore = None
        self._ref_median = None
        self._verdicts = deque(maxlen=self.patience)
        self._test_log: list[dict] = []
        self._last_good_lr = None
        self._last_estimate = None
        self._warned_past_end = False
        self._plateau = {"best": math.inf, "bad_epochs": 0, "reductions": 0}

    # ---- read-only state ---------------------------------------------------------------------------------------
    phase = property(lambda self: self._phase, doc="'warmup', 'decay' (middle phase) or 'final' (cosine).")
    switch_step = property(lambda self: self._t_sw, doc="t_sw, the step at which warmup ended (None before).")
    switch_lr = property(lambda self: self._eta_sw, doc="eta_sw, the LR the decay starts from.")
    peak_lr = property(lambda self: self._peak, doc="the LR in use at the switch (the ramp's peak).")
    switch_reason = property(lambda self: self._reason, doc="one of REASONS, or None before the switch.")
    test_log = property(lambda self: [dict(d) for d in self._test_log], doc="one dict per test.")

    @property
    def history(self) -> torch.Tensor:
        """The recorded warmup losses (CPU float64 copy)."""
        if not self._chunks:
            return torch.zeros(0, dtype=torch.float64)
        return torch.cat(self._chunks).clone()

    # ---- closed-form LR -------------------------------------------------------------------------------------------
    def lr_at(self, u: int) -> float:
        """lr_u from the stored anchors (DESIGN.md §3.1), for group 0 (other groups scale by their ratio)."""
        if self._t0 is not None and u > self._t0:
            return cooldown_lr(u, self._t0, self._eta0, self.total_steps, self.cooldown_type)
        if self._t_sw is not None and u > self._t_sw:
            red = self._plateau["reductions"] if self.decay_phase_stat == "loss" else None
            return middle_lr(u, self._t_sw, self._eta_sw, self.decay_phase_factor, self.steps_per_epoch, red)
        return warmup_lr(
            u,
            self.min_lr,
            self.max_lr,
            self.warmup,
            self.warmup_type,
            self.warmup_unit,
            self.steps_per_epoch,
        )  # the staircase has floor(W / S) = floor(f_w E) steps

    def get_lr(self):
        return [self._cur_lr * r for r in self._ratios]

    def _apply_lr(self, u: int) -> None:
        self._cur_lr = self.lr_at(u)
        values = [self._cur_lr * r for r in self._ratios]
        for group, v in zip(self.optimizer.param_groups, values):
            if torch.is_tensor(group["lr"]):
                group["lr"].fill_(v)
            else:
                group["lr"] = v
        self._last_lr = values

    # ---- loss input -------------------------------------------------------------------------------------------
    @staticmethod
    def _as_scalar(loss):
        if isinstance(loss, (bool, np.bool_)):
            raise TypeError("AutoWU.step expects a real scalar loss; got a bool")
        if isinstance(loss, torch.Tensor):
            dt = loss.dtype
            if dt == torch.bool or dt.is_complex:
                raise TypeError(f"AutoWU.step expects a real scalar loss; got a tensor of dtype {dt}")
            if loss.numel() != 1:
                raise ValueError(
                    f"AutoWU.step expects a scalar loss (0-d or 1-element tensor); got shape {tuple(loss.shape)}"
                )
            return loss.reshape(())
        if isinstance(loss, np.ndarray):
            if loss.dtype.kind not in ("f", "i", "u"):
                raise TypeError(f"AutoWU.step expects a real scalar loss; got an array of dtype {loss.dtype}")
            if loss.size != 1:
                raise ValueError(f"AutoWU.step expects a scalar loss; got shape {loss.shape}")
            return float(loss.item())
        if isinstance(loss, (int, float, np.integer, np.floating)):
            return float(loss)
        raise TypeError(f"AutoWU.step expects a real scalar loss (float or tensor); got {type(loss).__name__}")

    def _record(self, value) -> None:
        if self._buf is None:
            if torch.is_tensor(value):
                dev = self._device or value.device
                dt = torch.float64 if value.dtype == torch.float64 else torch.float32
            else:
                dev, dt = self._device or torch.device("cpu"), torch.float64
            self._buf = torch.zeros(max(self.test_interval, self.steps_per_epoch), dtype=dt, device=dev)
            if self._pending_restore is not None:
                p = self._pending_restore
                self._buf[: p.numel()].copy_(p)
                self._buf_count = p.numel()
                self._pending_restore = None
        with torch.no_grad():  # one indexed copy, no autograd record, no host sync
            self._buf[self._buf_count] = value
        self._buf_count += 1

    def _flush(self) -> torch.Tensor:
        """The buffered interval as CPU float64 (all-reduced as a rank mean when reduce_loss); empties the buffer.

        Called on every rank at the same steps, always right after ``_record``, so the buffer exists and the
        all-reduce is collective.
        """
        vals = self._buf[: self._buf_count].clone()
        self._buf_count = 0
        if self.reduce_loss and self._distributed():
            vals = vals.to(torch.float64) if vals.device.type == "cpu" else vals
            dist.all_reduce(vals, op=dist.ReduceOp.SUM, group=self.process_group)
            vals = vals / dist.get_world_size(self.process_group)
        return vals.to("cpu", torch.float64)

    # ---- distributed ---------------------------------------------------------------------------------------------
    def _distributed(self) -> bool:
        return dist.is_available() and dist.is_initialized()

    def _collective(self, decide):
        """Run decide() on rank 0 and broadcast (action, eta, reason code) so every rank applies the same outcome."""
        if not self._distributed():
            return decide()
        err = None
        if dist.get_rank(self.process_group) == 0:
            try:
                action, eta, code = decide()
            except Exception as exc:  # noqa: BLE001 - every rank must learn about it
                action, eta, code, err = _ERROR, 0.0, 0, exc
        else:
            action, eta, code = _CONTINUE, 0.0, 0
        dev = _message_device(dist.get_backend(self.process_group))
        msg = torch.tensor([float(action), float(eta), float(code)], dtype=torch.float64, device=dev)
        src = 0 if self.process_group is None else dist.get_global_rank(self.process_group, 0)
        dist.broadcast(msg, src=src, group=self.process_group)
        action, eta, code = (float(v) for v in msg.cpu())
        if int(action) == _ERROR:
            raise RuntimeError(
                f"AutoWU: the test on rank 0 failed ({err!r})" if err else "AutoWU: the test on rank 0 failed"
            ) from err
        return int(action), eta, int(code)

    # ---- stepping ------------------------------------------------------------------------------------------------
    def step(self, loss=None, epoch=None):  # noqa: D401 - torch signature
        """Record the loss of the update just taken and set the LR of the next one."""
        if epoch is not None:
            raise TypeError("AutoWU.step takes the loss only; epoch is not supported")
        if self._initializing:
            self.last_epoch = 0
            self._step_count = 1
            self._apply_lr(1)
            return
        if loss is None:
            raise TypeError("AutoWU.step(loss) needs the loss of the update just taken")
        value = self._as_scalar(loss)
        k = self.last_epoch + 1
        self.last_epoch = k
        self._step_count += 1
        if self._phase == "warmup":
            self._record(value)
            if self._t_c is not None and k >= self._t_c:
                self._switch(k, self._cur_lr, "cooldown_time")
            elif k >= self.warmup:
                self._fallback(k)
            elif k % self.test_interval == 0:
                self._epoch_test(k)
        else:
            self._after_switch(k, value)
        if k > self.total_steps and not self._warned_past_end:
            self._warned_past_end = True
            warnings.warn(
                f"AutoWU stepped past total_steps={self.total_steps}; keeping lr_T = "
                f"{self.lr_at(self.total_steps):.6g}",
                stacklevel=2,
            )
        self._apply_lr(k + 1)

    def _after_switch(self, k, value) -> None:
        middle = self._phase == "decay"
        if middle and self.decay_phase_stat == "loss" and k <= self._t_c:
            self._record(value)
            if (k - self._t_sw) % self.steps_per_epoch == 0:
                self._plateau_epoch()
        elif self.on_nonfinite == "raise":
            self._record(value)
            if self._buf_count >= self.test_interval:
                start = k - self._buf_count + 1
                vals = self._flush()  # on every rank, so that a reduce_loss all-reduce is collective

                def check():
                    bad = (~torch.isfinite(vals)).nonzero()
                    if bad.numel():
                        raise FloatingPointError(f"AutoWU: non-finite loss at step {start + int(bad[0])}")
                    return _CONTINUE, 0.0, 0

                self._collective(check)
        if middle and k >= self._t_c:
            self._eta_c = self._cur_lr
            self._t0, self._eta0 = k, self._cur_lr
            self._phase = "final"
            self._buf_count = 0

    def _plateau_epoch(self) -> None:
        vals = self._flush()  # on every rank, so that a reduce_loss all-reduce is collective

        def decide():
            fin = vals[torch.isfinite(vals)]
            if fin.numel() == 0:
                return _CONTINUE, 0.0, 0
            metric, st = float(fin.mean()), self._plateau
            # an improvement beats the best by 1e-4 of its size: best (1 - 1e-4) above zero, best (1 + 1e-4) below
            if metric < st["best"] * (1.0 - 1e-4 if st["best"] > 0 else 1.0 + 1e-4):
                st["best"], st["bad_epochs"] = metric, 0
            else:
                st["bad_epochs"] += 1
            if st["bad_epochs"] > 5:
                st["bad_epochs"] = 0
                return _REDUCE, 0.0, 0
            return _CONTINUE, 0.0, 0

        action, _, _ = self._collective(decide)
        if action == _REDUCE:
            self._plateau["reductions"] += 1

    def _fallback(self, k: int) -> None:
        eta = self._cur_lr
        if self.fallback_lr == "argmin" and self._last_estimate is not None and math.isfinite(self._last_estimate):
            eta = self._last_estimate
        warnings.warn(
            f"AutoWU: no switch by the warmup cap W={self.warmup} (step {k}); decaying from "
            f"lr={eta:.6g} ({self.fallback_lr})",
            stacklevel=3,
        )
        self._switch(k, eta, "max_warmup")

    def _switch(self, k: int, eta: float, reason: str) -> None:
        """End the warmup at step k; the decay starts from eta, the peak is the LR in use (lr_k)."""
        self._t_sw, self._eta_sw, self._reason = k, float(eta), reason
        self._peak = float(self._cur_lr)
        self._buf_count = 0
        if self.immediate_cooldown or reason == "cooldown_time":
            self._t0, self._eta0 = k, float(eta)
            if reason == "cooldown_time":
                self._eta_c = float(eta)
            self._phase = "final"
        else:
            self._phase = "decay"

    # ---- the epoch-end test ----------------------------------------------------------------------------------------
    def _valid_mask(self, y: torch.Tensor) -> torch.Tensor:
        mask = torch.isfinite(y)
        if self.on_nonfinite == "switch" and self.divergence_factor is not None and self._ref_median is not None:
            mask &= y <= self.divergence_factor * self._ref_median
        return mask

    def _estimate(self, z_star, now_lr) -> float:
        zs = [z for z in z_star if math.isfinite(z)]
        if not zs:
            return float("nan")
        return sum(ramp_estimate(z, self.min_lr, now_lr, self.warmup_type) for z in zs) / len(zs)

    def _epoch_test(self, k: int) -> None:
        now_lr = self._cur_lr
        vals = self._flush()
        start = k - vals.numel() + 1
        self._chunks.append(vals)

        def decide():
            bad_step, bad_reason = None, None
            if self.on_nonfinite != "ignore":
                fin = torch.isfinite(vals)
                if not bool(fin.all()):
                    bad_step, bad_reason = start + int((~fin).nonzero()[0]), "nonfinite"
                if fin.any():
                    med = float(vals[fin].median())
                    if self._ref_median is None:
                        self._ref_median = med
                    elif self.divergence_factor is not None and med > self.divergence_factor * self._ref_median:
                        over = (vals > self.divergence_factor * self._ref_median).nonzero()
                        if bad_step is None:
                            bad_step, bad_reason = start + int(over[0]), "divergence"
            if bad_step is not None and self.on_nonfinite == "raise":
                kind = "non-finite" if bad_reason == "nonfinite" else "divergent"
                raise FloatingPointError(f"AutoWU: {kind} loss at step {bad_step}")
            y = torch.cat(self._chunks)
            out = self._test(y, self._valid_mask(y))
            est = self._estimate(out.z_star, now_lr)
            self._last_estimate = est
            entry = {"step": k, "n": out.n, "n_valid": out.n_valid}
            for r in range(self.gp_config.n_preds):
                entry[f"p_{r + 1}"] = out.probs[r] if r < len(out.probs) else float("nan")
            entry.update(
                votes=out.votes,
                verdict=bool(out.verdict),
                eta_estimate=est,
                lr=now_lr,
                c=out.c,
                outputscale=out.outputscale,
                noise=out.noise,
                seconds=out.seconds,
                bad=bad_reason or "",
            )
            self._test_log.append(entry)
            if bad_step is not None:
                if out.n_valid < 3 or not math.isfinite(est):
                    eta = self.min_lr
                else:
                    eta = min(est, self._last_good_lr if self._last_good_lr is not None else self.min_lr)
                return _SWITCH, eta, REASONS.index(bad_reason)
            self._last_good_lr = now_lr
            self._verdicts.append(bool(out.verdict))
            if len(self._verdicts) == self.patience and all(self._verdicts):
                return _SWITCH, est, REASONS.index("test")
            return _CONTINUE, 0.0, 0

        action, eta, code = self._collective(decide)
        if action == _SWITCH:
            self._switch(k, eta, REASONS[code])

    # ---- state -----------------------------------------------------------------------------------------------------
    def _config(self) -> dict:
        return {
            "steps_per_epoch": self.steps_per_epoch,
            "total_epochs": self.total_epochs,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup,
            "min_lr": self.min_lr,
            "max_lr": self.max_lr,
            "ramp": self.max_lr / self.min_lr,
            "warmup_type": self.warmup_type,
            "warmup_unit": self.warmup_unit,
            "immediate_cooldown": self.immediate_cooldown,
            "decay_phase_stat": self.decay_phase_stat,
            "decay_phase_factor": self.decay_phase_factor,
            "cooldown_fraction": self.cooldown_fraction,
            "cooldown_type": self.cooldown_type,
            "test_interval": self.test_interval,
            "patience": self.patience,
            "on_nonfinite": self.on_nonfinite,
            "divergence_factor": self.divergence_factor,
            "fallback_lr": self.fallback_lr,
            "num_groups": len(self._ratios),
            **{f"gp_{k}": v for k, v in asdict(self.gp_config).items()},
        }

    def state_dict(self) -> dict:
        """Plain data only (numbers, strings, lists, dicts, tensors): loadable with torch.load(weights_only=True)."""
        pending = torch.zeros(0, dtype=torch.float64)
        pending_dtype = ""
        if self._buf is not None and self._buf_count:
            pending = self._buf[: self._buf_count].to("cpu", torch.float64).clone()
            pending_dtype = str(self._buf.dtype).replace("torch.", "")
        elif self._pending_restore is not None:
            pending, pending_dtype = self._pending_restore.clone(), self._pending_dtype
        return {
            "config": self._config(),
            "last_epoch": self.last_epoch,
            "step_count": self._step_count,
            "last_lr": list(self._last_lr),
            "cur_lr": self._cur_lr,
            "phase": self._phase,
            "anchors": {
                "t_sw": self._t_sw,
                "eta_sw": self._eta_sw,
                "t_c": self._t_c,
                "eta_c": self._eta_c,
                "t_0": self._t0,
                "eta_0": self._eta0,
                "reason": self._reason,
                "peak": self._peak,
            },
            "history": self.history,
            "pending": pending,
            "pending_dtype": pending_dtype,
            "ref_median": self._ref_median,
            "verdicts": list(self._verdicts),
            "test_log": [dict(d) for d in self._test_log],
            "last_good_lr": self._last_good_lr,
            "last_estimate": self._last_estimate,
            "warned_past_end": self._warned_past_end,
            "plateau": dict(self._plateau),
            "ratios": list(self._ratios),
            "gp": self._test.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        mine, theirs = self._config(), state.get("config", {})
        diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        if diff:
            detail = ", ".join(f"{k} (saved {theirs.get(k)!r}, here {mine.get(k)!r})" for k in diff)
            raise ValueError(f"AutoWU.load_state_dict: config mismatch in {detail}")
        self.last_epoch = int(state["last_epoch"])
        self._step_count = int(state["step_count"])
        self._phase = state["phase"]
        a = state["anchors"]
        self._t_sw, self._eta_sw, self._t_c, self._eta_c = a["t_sw"], a["eta_sw"], a["t_c"], a["eta_c"]
        self._t0, self._eta0, self._reason, self._peak = a["t_0"], a["eta_0"], a["reason"], a["peak"]
        hist = state["history"].to(torch.float64)
        self._chunks = [hist.clone()]
        self._buf = None  # the next _record rebuilds it from the pending values and sets the count
        self._pending_restore = state["pending"].to(torch.float64).clone()
        self._pending_dtype = state["pending_dtype"]
        self._ref_median = state["ref_median"]
        self._verdicts = deque(state["verdicts"], maxlen=self.patience)
        self._test_log = [dict(d) for d in state["test_log"]]
        self._last_good_lr, self._last_estimate = state["last_good_lr"], state["last_estimate"]
        self._warned_past_end = bool(state["warned_past_end"])
        self._plateau = dict(state["plateau"])
        self._ratios = [float(r) for r in state["ratios"]]
        self._test.load_state_dict(state["gp"])
        self._apply_lr(self.last_epoch + 1)
