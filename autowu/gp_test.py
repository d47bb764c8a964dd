"""The epoch-end Gaussian-process test of AutoWU (DESIGN.md §3.2), in CPU float64 with lean numerics.

Model (the same as gpytorch's ExactGP with ConstantMean, ScaleKernel(RBFKernel) and GaussianLikelihood):
    y_i = c + f(x_i) + e_i,  f ~ GP(0, sigma_f^2 exp(-(x - x')^2 / (2 l^2))),  e_i ~ N(0, sigma_n^2),
with x_i = i/n over the whole warmup history, l = `lengthscale` fixed, sigma_f^2 = softplus(raw_os) and
sigma_n^2 = softplus(raw_noise) + noise_floor (gpytorch's parametrisation, so raw values carry over).

Per test:
  fit       c <- mean(valid y); clip sigma_f^2 into [1e-6, 1e4] and sigma_n^2 - floor into [1e-8, 1e4] (raw params);
            L-BFGS (lr 1, strong Wolfe, `gp_fit_iters` iterations) on -log p(y)/m over <= fit_points sampled points.
            gp_fit='adam' is the reference fit: persistent Adam, lr 0.01, 100 iterations, no clip.
  posterior on the grid z_j = j/(G-1), K = G-1 ("now"), with A = sigma_f^2 k(x, x) + sigma_n^2 I = L L^T,
            alpha = A^-1 (y - c), V = L^-1 k(x, z):
            mu = c + k(z, x) alpha,  Sigma_jj = sigma_f^2 - |V_:j|^2,  Sigma_jK = sigma_f^2 k(z_j, z_K) - V_:j^T V_:K.
  test      p_r = max_{j<K} Phi(-(mu_j - mu_K) / sqrt(Sigma_jj + Sigma_KK - 2 Sigma_jK + var_floor)),
            vote v_r = [p_r > confidence], verdict = sum_r v_r >= votes; z*_r = z[argmin_j mu_r,j].

Notes: the exact marginal likelihood is evaluated in closed form (Cholesky) rather than through gpytorch objects;
it is the quantity gpytorch's ExactMarginalLogLikelihood returns under fast_computations(False, False, False), and
DESIGN.md §7.12 compares the posterior with gpytorch's. The reference forms the 500x500 covariance; we never do.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch

__all__ = ["GPConfig", "TestOutcome", "GPTest", "posterior_parts", "min_in_past_prob", "inv_softplus", "subsample"]

_JITTERS = (1e-10, 1e-8, 1e-6)


def inv_softplus(v: float) -> float:
    """raw such that softplus(raw) = v (v > 0)."""
    return v + math.log(-math.expm1(-v))


@dataclass(frozen=True)
class GPConfig:
    """Settings of the DESIGN.md §3.2 test (defaults: DESIGN.md §3.3)."""

    lengthscale: float = 0.2
    noise_floor: float = 1e-4
    var_floor: float = 1e-4
    fit_points: int = 100
    pred_points: int = 500
    n_preds: int = 5
    grid_size: int = 500
    confidence: float = 0.95
    votes: int = 3
    gp_fit: str = "lbfgs"
    gp_fit_iters: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        """Validate (ValueError naming the argument) and normalise the number types, so equal settings compare equal."""
        if not self.lengthscale > 0:
            raise ValueError(f"lengthscale must be > 0; got {self.lengthscale}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must lie in (0, 1); got {self.confidence}")
        for name in ("n_preds", "fit_points", "pred_points"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if not 1 <= self.votes <= self.n_preds:
            raise ValueError(f"votes must satisfy 1 <= votes <= n_preds ({self.n_preds}); got {self.votes}")
        if int(self.grid_size) < 2:
            raise ValueError(f"grid_size must be >= 2; got {self.grid_size}")
        if self.gp_fit not in ("lbfgs", "adam"):
            raise ValueError(f"gp_fit must be one of ['lbfgs', 'adam']; got {self.gp_fit!r}")
        if self.gp_fit_iters is not None and int(self.gp_fit_iters) < 1:
            raise ValueError(f"gp_fit_iters must be >= 1; got {self.gp_fit_iters}")
        for name in ("lengthscale", "noise_floor", "var_floor", "confidence"):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in ("fit_points", "pred_points", "n_preds", "grid_size", "votes", "seed"):
            object.__setattr__(self, name, int(getattr(self, name)))
        if self.gp_fit_iters is not None:
            object.__setattr__(self, "gp_fit_iters", int(self.gp_fit_iters))

    @property
    def fit_iters(self) -> int:
        if self.gp_fit_iters is not None:
            return self.gp_fit_iters
        return 5 if self.gp_fit == "lbfgs" else 100


class TestOutcome(NamedTuple):
    """One epoch-end test: per-repeat probabilities p_r and minimisers z*_r, the vote count and verdict."""

    probs: tuple
    z_star: tuple
    votes: int
    verdict: bool
    c: float
    outputscale: float
    noise: float
    n: int
    n_valid: int
    failures: int
    seconds: float


def subsample(n: int, m: int, generator: torch.Generator) -> torch.Tensor | None:
    """Sorted indices of m of n points drawn without replacement (uniform float32 weights); None if n <= m."""
    if n <= m:
        return None
    idx = torch.multinomial(torch.ones(n, dtype=torch.float32), m, replacement=False, generator=generator)
    return idx.sort().values


def _rbf(a: torch.Tensor, b: torch.Tensor, lengthscale: float) -> torch.Tensor:
    return torch.exp(-((a[:, None] - b[None, :]) ** 2) / (2.0 * lengthscale**2))


def _cholesky(a: torch.Tensor, scale: float) -> torch.Tensor | None:
    """Cholesky factor of a; on failure retry with jitter 1e-10, 1e-8, 1e-6 times `scale`; None if all fail."""
    chol, info = torch.linalg.cholesky_ex(a)
    if int(info) == 0:
        return chol
    eye = torch.eye(a.shape[0], dtype=a.dtype)
    for jit in _JITTERS:
        chol, info = torch.linalg.cholesky_ex(a + (jit * scale) * eye)
        if int(info) == 0:
            return chol
    return None


def _neg_mll(x, y, c, outputscale, noise, lengthscale):
    """-log N(y; c, sigma_f^2 k(x, x) + sigma_n^2 I) / m, as gpytorch's ExactMarginalLogLikelihood (negated)."""
    m = x.shape[0]
    eye = torch.eye(m, dtype=x.dtype)
    a = outputscale * _rbf(x, x, lengthscale) + noise * eye
    scale = float(outputscale.detach() + noise.detach())
    for jit in (0.0, *_JITTERS):
        chol, info = torch.linalg.cholesky_ex(a + (jit * scale) * eye if jit else a)
        if int(info) == 0:
            break
    else:
        raise FloatingPointError("GP fit: Cholesky failed")
    r = (y - c)[:, None]
    alpha = torch.cholesky_solve(r, chol)
    logdet = 2.0 * torch.log(torch.diagonal(chol)).sum()
    return 0.5 * ((r * alpha).sum() + logdet + m * math.log(2.0 * math.pi)) / m


def posterior_parts(x, y, z, c, outputscale, noise, lengthscale, now_index=-1):
    """mu, diag(Sigma) and column K of Sigma of the posterior on grid z (DESIGN.md §3.2); None if Cholesky fails."""
    n = x.shape[0]
    a = outputscale * _rbf(x, x, lengthscale) + noise * torch.eye(n, dtype=x.dtype)
    chol = _cholesky(a, outputscale + noise)
    if chol is None:
        return None
    kxz = outputscale * _rbf(x, z, lengthscale)
    alpha = torch.cholesky_solve((y - c)[:, None], chol)[:, 0]
    mu = c + kxz.T @ alpha
    v = torch.linalg.solve_triangular(chol, kxz, upper=False)
    diag = outputscale - (v * v).sum(0)
    zk = z[now_index]
    col = outputscale * torch.exp(-((z - zk) ** 2) / (2.0 * lengthscale**2)) - v.T @ v[:, now_index]
    return mu, diag, col


def min_in_past_prob(mu, diag, col, var_floor):
    """p = max_{j<K} Phi(-(mu_j - mu_K)/sqrt(Sigma_jj + Sigma_KK - 2 Sigma_jK + var_floor)) with K the last index."""
    d = mu[:-1] - mu[-1]
    var = (diag[:-1] + diag[-1] - 2.0 * col[:-1]).clamp_min(0.0) + var_floor
    return float(torch.special.ndtr(-d / torch.sqrt(var)).max())


class GPTest:
    """Stateful DESIGN.md §3.2 test: warm-started GP hyperparameters, the seeded generator and (adam) moments.

    Call with the full history y (CPU float64, length n) and a boolean mask of the values the GP may use.
    """

    def __init__(self, config: GPConfig | None = None):
        self.config = config or GPConfig()
        cfg = self.config
        self.generator = torch.Generator().manual_seed(int(cfg.seed))
        self.raw_c = torch.zeros((), dtype=torch.float64)
        self.raw_os = torch.zeros((), dtype=torch.float64)  # softplus(0) = 0.693
        self.raw_noise = torch.tensor(inv_softplus(1e-3 - cfg.noise_floor), dtype=torch.float64)
        self._adam_state: dict | None = None
        self.grid = torch.linspace(0.0, 1.0, cfg.grid_size, dtype=torch.float64)

    # ---- hyperparameters -------------------------------------------------------------------------------------
    @property
    def outputscale(self) -> float:
        return float(torch.nn.functional.softplus(self.raw_os))

    @property
    def noise(self) -> float:
        return float(torch.nn.functional.softplus(self.raw_noise)) + self.config.noise_floor

    def _clip(self) -> None:
        lo, hi = inv_softplus(1e-6), inv_softplus(1e4)
        self.raw_os.clamp_(lo, hi)
        self.raw_noise.clamp_(inv_softplus(1e-8), inv_softplus(1e4))

    def _fit(self, x: torch.Tensor, y: torch.Tensor) -> None:
        cfg = self.config
        params = [self.raw_c.clone().requires_grad_(True), self.raw_os.clone(), self.raw_noise.clone()]
        params[1].requires_grad_(True)
        params[2].requires_grad_(True)

        def loss_fn():
            os_ = torch.nn.functional.softplus(params[1])
            nz = torch.nn.functional.softplus(params[2]) + cfg.noise_floor
            return _neg_mll(x, y, params[0], os_, nz, cfg.lengthscale)

        backup = [p.detach().clone() for p in params]
        try:
            if cfg.gp_fit == "lbfgs":
                opt = torch.optim.LBFGS(
                    params,
                    lr=1.0,
                    max_iter=cfg.fit_iters,
                    history_size=10,
                    tolerance_grad=1e-5,
                    tolerance_change=1e-9,
                    line_search_fn="strong_wolfe",
                )

                def closure():
                    opt.zero_grad()
                    loss = loss_fn()
                    loss.backward()
                    return loss

                opt.step(closure)
            else:
                opt = torch.optim.Adam(params, lr=0.01)
                if self._adam_state is not None:
                    opt.load_state_dict(self._adam_state)
                for _ in range(cfg.fit_iters):
                    opt.zero_grad()
                    loss = loss_fn()
                    loss.backward()
                    opt.step()
                self._adam_state = opt.state_dict()
            new = [p.detach() for p in params]
            if not all(bool(torch.isfinite(p)) for p in new):
                raise FloatingPointError("GP fit produced non-finite hyperparameters")
        except (FloatingPointError, RuntimeError) as exc:
            warnings.warn(f"AutoWU GP fit failed ({exc}); keeping the previous hyperparameters", stacklevel=3)
            new = backup
        self.raw_c, self.raw_os, self.raw_noise = (p.clone() for p in new)

    # ---- the test --------------------------------------------------------------------------------------------
    def __call__(self, y: torch.Tensor, valid: torch.Tensor) -> TestOutcome:
        t0 = time.perf_counter()
        prev_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._run(y, valid, t0)
        finally:
            torch.set_num_threads(prev_threads)

    def _run(self, y: torch.Tensor, valid: torch.Tensor, t0: float) -> TestOutcome:
        cfg = self.config
        n = int(y.shape[0])
        x_all = torch.arange(n, dtype=torch.float64) / n
        xv, yv = x_all[valid], y[valid]
        nv = int(yv.shape[0])
        if nv < 3:
            return TestOutcome(
                (), (), 0, False, float(self.raw_c), self.outputscale, self.noise, n, nv, 0, time.perf_counter() - t0
            )
        with torch.no_grad():
            self.raw_c.fill_(yv.mean())
            if cfg.gp_fit == "lbfgs":
                self._clip()
        idx = subsample(nv, cfg.fit_points, self.generator)
        xf, yf = (xv, yv) if idx is None else (xv[idx], yv[idx])
        with torch.enable_grad():
            self._fit(xf, yf)
        c, os_, nz = float(self.raw_c), self.outputscale, self.noise
        probs, zs, failures = [], [], 0
        n_rep = cfg.n_preds
        once = nv <= cfg.pred_points
        with torch.no_grad():
            for _ in range(1 if once else n_rep):
                idx = subsample(nv, cfg.pred_points, self.generator)
                xp, yp = (xv, yv) if idx is None else (xv[idx], yv[idx])
                parts = posterior_parts(xp, yp, self.grid, c, os_, nz, cfg.lengthscale)
                if parts is None:
                    warnings.warn("AutoWU GP posterior: Cholesky failed after jitter; negative vote", stacklevel=3)
                    failures += 1
                    probs.append(float("nan"))
                    zs.append(float("nan"))
                    continue
                mu, diag, col = parts
                probs.append(min_in_past_prob(mu, diag, col, cfg.var_floor))
                zs.append(float(self.grid[int(torch.argmin(mu))]))
        if once:
            probs, zs, failures = probs * n_rep, zs * n_rep, failures * n_rep
        votes = sum(1 for p in probs if p > cfg.confidence)
        return TestOutcome(
            tuple(probs), tuple(zs), votes, votes >= cfg.votes, c, os_, nz, n, nv, failures, time.perf_counter() - t0
        )

    # ---- state -----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        st = {
            "config": asdict(self.config),
            "generator": self.generator.get_state(),
            "raw_c": self.raw_c.clone(),
            "raw_os": self.raw_os.clone(),
            "raw_noise": self.raw_noise.clone(),
        }
        if self._adam_state is not None:
            st["adam"] = _plain_adam(self._adam_state)
        return st

    def load_state_dict(self, st: dict) -> None:
        self.generator.set_state(st["generator"])
        self.raw_c = st["raw_c"].clone().to(torch.float64)
        self.raw_os = st["raw_os"].clone().to(torch.float64)
        self.raw_noise = st["raw_noise"].clone().to(torch.float64)
        self._adam_state = _adam_from_plain(st["adam"]) if "adam" in st else None


def _plain_adam(sd: dict) -> dict:
    """Adam state_dict with int keys turned to plain lists (weights_only-loadable)."""
    state = [
        {k: (v.clone() if torch.is_tensor(v) else v) for k, v in sd["state"][i].items()} for i in sorted(sd["state"])
    ]
    return {"state": state, "param_groups": [dict(g) for g in sd["param_groups"]]}


def _adam_from_plain(st: dict) -> dict:
    return {
        "state": {
            i: {k: (v.clone() if torch.is_tensor(v) else v) for k, v in s.items()} for i, s in enumerate(st["state"])
        },
        "param_groups": [dict(g) for g in st["param_groups"]],
    }
