"""ArmijoLineSearch: the one base of SLS, AdamSLS, KenSLS and SaLSa (DESIGN.md §3.1 and §3.3).

Kenneweg et al., "Improving Line Search Methods for Large Scale Neural Network Training", ACDSA 2024, and
"No learning rates needed: Introducing SALSA", IJCNN 2024; baselines Vaswani et al. 2019 (SLS) and 2021 (ADAM+SLS).

Symbols: w0 = w_k, g = mini-batch gradient, f = the batch loss, m, v = Adam moments, P = 1/(sqrt(v_hat)+eps),
d = tested direction, phi = g.d, eta = step size, s / h = smoothed slope / loss decrease, L = search interval.

One step k (labels as in DESIGN.md §3.1):
  (A1) m, v, m_hat, v_hat, P (bias correction with t = k from 1);
  (A2) eta_cand = clip(eta_{k-1}*grow, eta_min, eta_max);
  (A3) d, phi in float64 (sgd: g; precond: P*g; momentum: P*m_hat, falling back to P*g when phi <= 0);
  (A4) s_k = beta_s*s_{k-1} + (1-beta_s)*phi;
  (A5) trials eta_j = max(eta_cand*shrink^j, eta_min), accept when beta_s*h + (1-beta_s)*(f0 - f_j) >= c*eta_j*s_k;
  (A6) failure takes the last trial's eta; (A7) the step taken ("trial" or "momentum") and decoupled weight decay;
  (A8) s_k <= min_slope: eta_cand without trials; (A9) speed-up: search only every L_k steps after step 10.

Notes: no deepcopy (one work buffer per parameter holds d; trials move incrementally), losses and tests in float64,
the global torch RNG is forked and the closure is reseeded from the optimizer's own generator before the backward call
and every trial, so dropout masks are equal within a step. LR schedulers must not drive these optimizers (they set
group['lr'] themselves), and torch.cuda.amp.GradScaler is unsupported (GradScaler.step rejects closures).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
import torch.distributed as dist

from line_search.sls.armijo import (
    armijo_test,
    candidate_step_size,
    search_interval,
    should_search,
    smoothed_slope,
    speedup_emas,
    trial_step_size,
)
from line_search.sls.checks import (
    LINE_SEARCH_KNOBS,
    SETTINGS,
    UNSET,
    check_group_values,
    check_not_sharded,
    normalize_params,
    pick,
    resolve_betas,
    resolve_grow,
    validate_settings,
)
from line_search.sls.utils import normalize_closure, preserve_running_stats

__all__ = ["ArmijoLineSearch", "SETTINGS", "UNSET", "pick", "resolve_betas", "resolve_grow", "validate_settings"]

_COUNTERS = ("n_forwards", "n_searches", "n_backtracks", "n_fail", "n_fallback", "n_untested", "n_nonfinite", "n_steps")
STATE_VERSION = 2
# version 1 spelled the scalars with one letter (DESIGN.md §3.4)
_OLD_KEYS = {"t": "step", "h": "smoothed_decrease", "s": "smoothed_slope", "L": "search_interval"}


class ArmijoLineSearch(torch.optim.Optimizer):
    """Armijo backtracking line search with optional Adam preconditioning, smoothing and speed-up (A1)-(A9).

    Subclasses choose the defaults of DESIGN.md §3.2, the tested direction (`search_direction`: "sgd" | "precond" |
    "momentum") and the step taken (`step_direction`: "trial" | "momentum").

    Args:
        params: iterable of tensors, list of group dicts (params, weight_decay, betas, eps), or list of iterables.
        c: Armijo constant in (0, 1). init_step_size: eta_0 > 0. grow: candidate factor >= 1 (A2).
        shrink: backtracking factor in (0, 1) (A5). max_trials: trials per search >= 1.
        beta_s: smoothing of slope and decrease in [0, 1) (A4, A5); 0 is plain Armijo.
        eta_min, eta_max: step-size bounds (eta_max None = unbounded).
        betas, eps: Adam moments (A1), used when `moments` is True. weight_decay: decoupled (AdamW form, A7).
        speed_up: (A9) search cadence. line_search: False makes every step an untested (A9) step.
        step_direction: "trial" keeps w0 - eta*d, "momentum" steps along P*m_hat (A7).
        min_slope: (A8) threshold. accept_ties: accept f_j == f0 exactly. nan_policy: "raise" | "skip" for a
        non-finite loss or gradient at w0. seed: of the optimizer's generator (None -> torch.initial_seed()).
        replay_rng: reseed the closure's torch RNG identically for the backward call and every trial.
        model: module whose norm-layer running stats are restored after the trials.
        sync_losses: all-reduce (mean) f0 and trial losses under torch.distributed with world size > 1.
        reset_option: (A2) 0 keep, 1 grow, 2 reset to eta_0.
    """

    def __init__(
        self,
        params,
        *,
        c: float,
        init_step_size: float,
        grow: float,
        shrink: float,
        max_trials: int,
        beta_s: float,
        eta_min: float,
        eta_max: float | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        speed_up: bool = False,
        line_search: bool = True,
        search_direction: str = "sgd",
        step_direction: str = "trial",
        moments: bool = False,
        min_slope: float = 1e-12,
        accept_ties: bool = True,
        nan_policy: str = "raise",
        seed: int | None = None,
        replay_rng: bool = True,
        model: torch.nn.Module | None = None,
        sync_losses: bool = True,
        reset_option: int = 1,
    ):
        settings = {
            "c": float(c),
            "init_step_size": float(init_step_size),
            "grow": float(grow),
            "shrink": float(shrink),
            "max_trials": max_trials,
            "beta_s": float(beta_s),
            "eta_min": float(eta_min),
            "eta_max": None if eta_max is None else float(eta_max),
            "speed_up": bool(speed_up),
            "line_search": bool(line_search),
            "search_direction": search_direction,
            "step_direction": step_direction,
            "moments": bool(moments),
            "min_slope": float(min_slope),
            "accept_ties": bool(accept_ties),
            "nan_policy": nan_policy,
            "replay_rng": bool(replay_rng),
            "sync_losses": bool(sync_losses),
            "reset_option": reset_option,
        }
        validate_settings(settings)
        check_group_values({"weight_decay": weight_decay, "eps": eps, "betas": betas})
        defaults: dict[str, Any] = {"lr": float(init_step_size), "weight_decay": float(weight_decay)}
        if moments:
            defaults.update(betas=tuple(float(b) for b in betas), eps=float(eps))
        # settings first: add_param_group (called by Optimizer.__init__) reads `moments`
        self._apply_settings(settings)
        self.model = model
        super().__init__(normalize_params(params), defaults)
        self._generator = torch.Generator()
        self._generator.manual_seed(int(torch.initial_seed() if seed is None else seed))
        self._work: dict[torch.Tensor, torch.Tensor] = {}
        self._ls: dict[str, Any] = {
            "step": 0,
            "smoothed_decrease": 0.0,
            "smoothed_slope": 0.0,
            "e_fast": 1e-8,
            "e_slow": 1e-8,
            "last_search": 0,
            "search_interval": 1.0,
            **{k: 0 for k in _COUNTERS},
        }
        self.diagnostics: dict[str, Any] = {}

    # ------------------------------------------------------------------ settings and state
    def _apply_settings(self, settings: dict[str, Any]) -> None:
        for key in SETTINGS:
            setattr(self, key, settings[key])

    def settings(self) -> dict[str, Any]:
        """The line-search settings (DESIGN.md §3.4), as saved in state_dict()["line_search"]["settings"]."""
        return {key: getattr(self, key) for key in SETTINGS}

    def add_param_group(self, param_group: dict) -> None:
        """torch's add_param_group with the constructor's per-group checks (DESIGN.md §3.3, Parameter groups).

        Line-search knobs (c, lr, shrink, ...) are shared by all groups and rejected in a group dict; weight_decay,
        betas and eps are range-checked. A group added after the first step starts at the current eta.
        """
        bad = [k for k in param_group if k in LINE_SEARCH_KNOBS or (k in ("betas", "eps") and not self.moments)]
        if bad:
            raise ValueError(f"param group keys {bad} are not per-group; one line search serves all groups")
        check_group_values(param_group)
        params = param_group["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        check_not_sharded(params)
        super().add_param_group({**param_group, "params": params})
        if len(self.param_groups) > 1:
            self.param_groups[-1]["lr"] = self.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        """torch's state_dict plus the "line_search" entry: scalars, counters, generator state and the settings."""
        sd = super().state_dict()
        ls = dict(self._ls)
        ls["version"] = STATE_VERSION
        ls["generator"] = self._generator.get_state()
        ls["settings"] = self.settings()
        sd["line_search"] = ls
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore parameters' state, the shared scalars and the line-search settings (as torch restores group
        hyperparameters); warns when the saved settings differ from this optimizer's. Version-1 states load too."""
        state_dict = dict(state_dict)
        ls = state_dict.pop("line_search", None)
        if ls is not None:
            ls = dict(ls)
            version = ls.pop("version", 1)
            if version not in (1, STATE_VERSION):
                raise ValueError(f"line_search state version {version!r} is not readable (known: 1, {STATE_VERSION})")
            if version == 1:
                ls = {_OLD_KEYS.get(k, k): v for k, v in ls.items()}
            unknown = sorted(set(ls) - set(self._ls) - {"generator", "settings"})
            if unknown:
                raise ValueError(f"line_search state has unknown keys {unknown}")
            saved = ls.pop("settings", None)
            if saved is not None:
                merged = {**self.settings(), **saved}
                validate_settings(merged)
        super().load_state_dict(state_dict)
        if ls is None:
            return
        if saved is not None:
            differ = {k: (getattr(self, k), v) for k, v in saved.items() if k in SETTINGS and getattr(self, k) != v}
            if differ:
                detail = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in differ.items())
                warnings.warn(f"load_state_dict restores the saved line-search settings ({detail})", stacklevel=2)
            self._apply_settings(merged)
        self._generator.set_state(ls.pop("generator"))
        self._ls.update(ls)

    @property
    def step_count(self) -> int:
        """Steps taken so far (t of (A1)); a skipped non-finite step does not count."""
        return int(self._ls["step"])

    @property
    def eta(self) -> float:
        """The current step size eta_k (mirrored in every group's 'lr')."""
        return float(self.param_groups[0]["lr"])

    def memory_footprint(self) -> dict[str, int]:
        """Bytes of persistent optimizer state (exp_avg, exp_avg_sq) and of the work buffers holding d."""
        tensors = [t for st in self.state.values() for t in st.values() if torch.is_tensor(t)]
        state = sum(t.numel() * t.element_size() for t in tensors)
        work = sum(t.numel() * t.element_size() for t in self._work.values())
        return {"state_bytes": int(state), "work_bytes": int(work)}

    # ------------------------------------------------------------------ helpers
    def _active(self) -> list[tuple[dict, list[torch.Tensor]]]:
        out = []
        for g in self.param_groups:
            ps = []
            for p in g["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Armijo line search optimizers do not support sparse gradients")
                ps.append(p)
            if ps:
                out.append((g, ps))
        return out

    def _reduce(self, loss: torch.Tensor) -> torch.Tensor:
        loss = loss.detach().reshape(()).to(torch.float64)
        if self.sync_losses and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            loss = loss.clone()
            dist.all_reduce(loss)
            loss = loss / dist.get_world_size()
        return loss

    def _buffers(self, ps: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for p in ps:
            b = self._work.get(p)
            if b is None:
                b = self._work[p] = torch.empty_like(p, memory_format=torch.preserve_format)
            out.append(b)
        return out

    def _update_moments(self, active) -> None:
        """(A1): m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2 (lazy zeros_like state)."""
        for g, ps in active:
            b1, b2 = g["betas"]
            ms, vs, grads = [], [], []
            for p in ps:
                st = self.state[p]
                if "exp_avg" not in st:
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                ms.append(st["exp_avg"])
                vs.append(st["exp_avg_sq"])
                grads.append(p.grad)
            torch._foreach_mul_(ms, b1)
            torch._foreach_add_(ms, grads, alpha=1.0 - b1)
            torch._foreach_mul_(vs, b2)
            torch._foreach_addcmul_(vs, grads, grads, value=1.0 - b2)

    def _fill(self, kind: str, g: dict, ps: list[torch.Tensor], t: int) -> list[torch.Tensor]:
        """Write d into the work buffers: "precond" P*g, "momentum" P*m_hat (A1, A3); "sgd" returns the grads."""
        grads = [p.grad for p in ps]
        if kind == "sgd":
            return grads
        b1, b2 = g["betas"]
        bc1, bc2 = 1.0 - b1**t, 1.0 - b2**t
        bufs = self._buffers(ps)
        for b, p in zip(bufs, ps):
            torch.sqrt(self.state[p]["exp_avg_sq"], out=b)
        if kind == "precond":  # d = g / (sqrt(v / bc2) + eps)
            torch._foreach_div_(bufs, math.sqrt(bc2))
            torch._foreach_add_(bufs, g["eps"])
            for b, gr in zip(bufs, grads):
                torch.div(gr, b, out=b)
        elif kind != "momentum":
            raise ValueError(f"unknown direction {kind!r}")
        else:  # d = m / (bc1 * (sqrt(v / bc2) + eps)) = m_hat * P
            torch._foreach_mul_(bufs, bc1 / math.sqrt(bc2))
            torch._foreach_add_(bufs, g["eps"] * bc1)
            for b, p in zip(bufs, ps):
                torch.div(self.state[p]["exp_avg"], b, out=b)
        return bufs

    @staticmethod
    def _slope_terms(active, dirs) -> list[torch.Tensor]:
        return [torch.sum(p.grad * d, dtype=torch.float64) for (_, ps), ds in zip(active, dirs) for p, d in zip(ps, ds)]

    def _to_host(self, tensors: list[torch.Tensor]) -> list[float]:
        if not tensors:
            return []
        dev = tensors[0].device
        return torch.stack([x.to(dev, torch.float64).reshape(()) for x in tensors]).tolist()

    def _cuda_devices(self) -> list[int]:
        return sorted({p.device.index or 0 for g in self.param_groups for p in g["params"] if p.is_cuda})

    def _reseed(self, seed: int) -> None:
        """Seed the CPU generator and those of the CUDA devices holding parameters (cheaper than manual_seed)."""
        torch.random.default_generator.manual_seed(seed)
        for idx in self._cuda_devices():
            torch.cuda.default_generators[idx].manual_seed(seed)

    def _set_lr(self, eta: float) -> None:
        for g in self.param_groups:
            g["lr"] = float(eta)

    # ------------------------------------------------------------------ step
    def step(self, closure=None):
        """One step k of (A1)-(A9). Returns the closure's loss at the pre-step weights w0."""
        call = normalize_closure(closure)
        gen_state = self._generator.get_state()
        seed = int(torch.randint(0, 2**62, (1,), generator=self._generator)) if self.replay_rng else None
        with torch.random.fork_rng(devices=self._cuda_devices(), enabled=self.replay_rng):
            if seed is not None:
                self._reseed(seed)
            loss = call(True)
            return self._step_after_backward(call, loss, seed, gen_state)

    @torch.no_grad()
    def _step_after_backward(self, call, loss: torch.Tensor, seed, gen_state):
        ls = self._ls
        k = ls["step"] + 1
        active = self._active()
        f0 = self._checked_loss(active, loss, k, gen_state)
        diag = {"step": k, "searched": False, "trials": 0, "forwards": 1, "backtracks": 0, "fallback": False}
        diag.update(slope=math.nan, loss_decrease=math.nan)
        if f0 is None:  # non-finite loss or gradient with nan_policy="skip": no update
            ls["n_nonfinite"] += 1
            ls["n_forwards"] += 1
            diag.update(eta=self.eta, eta_cand=self.eta, nonfinite=True)
            self._finish_diag(diag)
            return loss
        ls["step"] = k
        ls["n_steps"] += 1
        if self.moments:
            self._update_moments(active)
        eta_prev = self.eta
        eta_cand = candidate_step_size(
            eta_prev, self.grow, self.init_step_size, self.eta_min, self.eta_max, self.reset_option
        )
        since = k - ls["last_search"]
        if not self.line_search or (self.speed_up and not should_search(k, since, ls["search_interval"])):
            self._untested_step(active, k, eta_cand)
            diag.update(eta=eta_prev, eta_cand=eta_cand)
        else:
            self._search_step(call, active, k, f0, eta_cand, seed, diag)
        self._finish_diag(diag)
        return loss

    def _checked_loss(self, active, loss: torch.Tensor, k: int, gen_state) -> float | None:
        """f0 (mean over ranks) after one host sync that also checks every gradient; None: skip this step."""
        f0_t = self._reduce(loss)
        # one pass per gradient: a NaN or inf anywhere makes its norm non-finite
        norms = [n for _, ps in active for n in torch._foreach_norm([p.grad for p in ps])]
        host = self._to_host([f0_t, *norms])
        if all(math.isfinite(x) for x in host):
            return host[0]
        if self.nan_policy == "raise":
            self._generator.set_state(gen_state)
            raise FloatingPointError(f"step {k}: non-finite loss ({host[0]}) or gradient at w0; parameters unchanged")
        return None

    def _untested_step(self, active, k: int, eta_cand: float) -> None:
        """(A9) step without a search along the Adam step (SLS: g) with eta_cand; the stored eta stays."""
        step_kind = "momentum" if self.moments else "sgd"
        for g, ps in active:
            d = self._fill(step_kind, g, ps, k)
            if g["weight_decay"]:
                torch._foreach_mul_(ps, 1.0 - eta_cand * g["weight_decay"])
            torch._foreach_add_(ps, d, alpha=-eta_cand)
        self._ls["n_forwards"] += 1

    def _direction(self, active, k: int) -> tuple[list[list[torch.Tensor]], float, bool]:
        """(A3): the tested direction per group and its slope phi (one host sync); KenSLS falls back to P*g."""
        dirs = [self._fill(self.search_direction, g, ps, k) for g, ps in active]
        phi = sum(self._to_host(self._slope_terms(active, dirs)))
        if self.search_direction == "momentum" and not (phi > 0.0 and math.isfinite(phi)):
            self._ls["n_fallback"] += 1
            dirs = [self._fill("precond", g, ps, k) for g, ps in active]
            return dirs, sum(self._to_host(self._slope_terms(active, dirs))), True
        return dirs, phi, False

    def _trials(self, call, params, flat_dirs, f0: float, eta_cand: float, s_k: float, seed) -> tuple:
        """(A5)/(A6): backtrack from eta_cand; returns (eta, trials, accepted, loss decrease, distance moved)."""
        ls = self._ls
        moved, eta, delta = 0.0, eta_cand, math.nan
        with preserve_running_stats(self.model):
            for j in range(self.max_trials):
                eta = trial_step_size(eta_cand, self.shrink, j, self.eta_min)
                torch._foreach_add_(params, flat_dirs, alpha=-(eta - moved))
                moved = eta
                if seed is not None:
                    self._reseed(seed)
                f_j = self._reduce(call(False)).item()
                res = armijo_test(f0, f_j, eta, s_k, ls["smoothed_decrease"], self.c, self.beta_s, self.accept_ties)
                if res.accepted:
                    ls["smoothed_decrease"] = res.h
                    return eta, j + 1, True, res.delta, moved
                if eta <= self.eta_min:
                    return eta, j + 1, False, delta, moved
        return eta, self.max_trials, False, delta, moved

    def _search_step(self, call, active, k: int, f0: float, eta_cand: float, seed, diag: dict) -> None:
        """(A3)-(A8): direction, smoothed slope, trials (or the untested (A8) step), the step taken, (A9) EMAs."""
        ls = self._ls
        dirs, phi, fallback = self._direction(active, k)
        s_k = smoothed_slope(ls["smoothed_slope"], phi, self.beta_s)  # (A4)
        ls["smoothed_slope"] = s_k
        params = [p for _, ps in active for p in ps]
        flat_dirs = [d for ds in dirs for d in ds]
        trials, accepted, eta, delta = 0, False, eta_cand, math.nan
        if not (s_k > self.min_slope and math.isfinite(s_k)):  # (A8) untested step
            ls["n_untested"] += 1
            torch._foreach_add_(params, flat_dirs, alpha=-eta)
            moved = eta
        else:
            eta, trials, accepted, delta, moved = self._trials(call, params, flat_dirs, f0, eta_cand, s_k, seed)
            if not accepted:  # (A6) the last trial's eta is taken
                ls["n_fail"] += 1
            ls["n_backtracks"] += trials - 1
        self._take_step(active, dirs, params, flat_dirs, k, eta, moved)
        self._set_lr(eta)
        ls["e_fast"], ls["e_slow"] = speedup_emas(ls["e_fast"], ls["e_slow"], eta)  # (A9)
        ls["search_interval"] = search_interval(ls["e_fast"], ls["e_slow"])
        ls["last_search"] = k
        ls["n_searches"] += 1 if trials else 0
        ls["n_forwards"] += 1 + trials
        diag.update(searched=trials > 0, untested=trials == 0, trials=trials, forwards=1 + trials)
        diag.update(backtracks=max(trials - 1, 0), eta=eta, eta_cand=eta_cand, slope=phi, fallback=fallback)
        diag.update(loss_decrease=delta, accepted=accepted)

    def _take_step(self, active, dirs, params, flat_dirs, k: int, eta: float, moved: float) -> None:
        """(A7): keep the trial point, or go back to w0 and take the Adam step; decoupled weight decay."""
        if self.step_direction != "momentum" and not any(g["weight_decay"] for g, _ in active):
            return
        torch._foreach_add_(params, flat_dirs, alpha=moved)  # back to w0 (up to rounding)
        for (g, ps), d in zip(active, dirs):
            if g["weight_decay"]:
                torch._foreach_mul_(ps, 1.0 - eta * g["weight_decay"])
            if self.step_direction == "momentum":
                d = self._fill("momentum", g, ps, k)
            torch._foreach_add_(ps, d, alpha=-eta)

    def _finish_diag(self, diag: dict) -> None:
        ls = self._ls
        diag.update(s=ls["smoothed_slope"], h=ls["smoothed_decrease"], L=ls["search_interval"])
        diag.setdefault("nonfinite", False)
        diag.setdefault("untested", False)
        diag.setdefault("accepted", False)
        diag.update({k: self._ls[k] for k in _COUNTERS})
        self.diagnostics = diag
