"""The reference procedure for the epoch-end test (DESIGN.md §7.17): a baseline and an oracle for autowu.gp_test.

It follows the original implementation's statistics: a float32 gpytorch ExactGP (ConstantMean, ScaleKernel(RBF) with
lengthscale fixed, GaussianLikelihood), fitted by a persistent Adam (lr 0.01, 100 iterations, no clipping) on at most
`fit_points` sampled points, then `n_preds` posteriors on the 500-point grid with the full 500x500 covariance, tested
through the projection P = [I_499 | -1]: d = P mu, Var(d) = diag(P Sigma P^T).
The draws are the same as autowu.gp_test.GPTest's, so both give the same subsamples for one seed.
ReferenceGPTest has GPTest's interface: pass `test_factory=ReferenceGPTest` to AutoWU.
"""

from __future__ import annotations

import time
import warnings

import gpytorch
import torch

from autowu.gp_test import GPConfig, TestOutcome, _adam_from_plain, _plain_adam, subsample

__all__ = ["ReferenceGPTest", "ExactGPModel"]


class ExactGPModel(gpytorch.models.ExactGP):
    """ConstantMean + ScaleKernel(RBFKernel) with a fixed lengthscale."""

    def __init__(self, x, y, likelihood, lengthscale):
        super().__init__(x, y, likelihood)
        self.mean_module = gpytorch.means.ConstantMean()
        self.covar_module = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel())
        self.covar_module.base_kernel.lengthscale = lengthscale
        self.covar_module.base_kernel.raw_lengthscale.requires_grad_(False)

    def forward(self, x):
        return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))


class ReferenceGPTest:
    """Reference statistics of the DESIGN.md §3.2 test (float32, persistent Adam, full posterior covariance)."""

    def __init__(self, config: GPConfig | None = None, dtype=torch.float32):
        self.config = config or GPConfig()
        self.dtype = dtype
        self.generator = torch.Generator().manual_seed(int(self.config.seed))
        noise_constraint = gpytorch.constraints.GreaterThan(self.config.noise_floor)
        self.likelihood = gpytorch.likelihoods.GaussianLikelihood(noise_constraint=noise_constraint).to(dtype)
        self.likelihood.noise = 1e-3
        dummy = torch.zeros(1, dtype=dtype)
        self.model = ExactGPModel(dummy, dummy, self.likelihood, self.config.lengthscale).to(dtype)
        self._params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self._params, lr=0.01)
        self.grid = torch.linspace(0.0, 1.0, self.config.grid_size, dtype=dtype)
        g = self.config.grid_size
        self.projection = torch.cat([torch.eye(g - 1, dtype=dtype), -torch.ones(g - 1, 1, dtype=dtype)], dim=1)

    def _fit(self, x, y):
        cfg = self.config
        self.model.set_train_data(x, y, strict=False)
        self.model.train()
        self.likelihood.train()
        mll = gpytorch.mlls.ExactMarginalLogLikelihood(self.likelihood, self.model)
        iters = cfg.gp_fit_iters if cfg.gp_fit_iters is not None else 100
        with torch.enable_grad():
            for _ in range(iters):
                self.optimizer.zero_grad()
                loss = -mll(self.model(x), y)
                loss.backward()
                self.optimizer.step()

    def _posterior_prob(self, x, y):
        self.model.set_train_data(x, y, strict=False)
        self.model.eval()
        self.likelihood.eval()
        with torch.no_grad():
            post = self.model(self.grid)
            mu, cov = post.mean, post.covariance_matrix
        d = self.projection @ mu
        var = torch.diagonal(self.projection @ cov @ self.projection.T) + self.config.var_floor
        p = torch.special.ndtr(-d / torch.sqrt(var.clamp_min(self.config.var_floor))).max()
        return float(p), float(self.grid[int(torch.argmin(mu))])

    def __call__(self, y: torch.Tensor, valid: torch.Tensor) -> TestOutcome:
        cfg = self.config
        t0 = time.perf_counter()
        n = int(y.shape[0])
        x_all = (torch.arange(n, dtype=torch.float64) / n).to(self.dtype)
        xv, yv = x_all[valid], y[valid].to(self.dtype)
        nv = int(yv.shape[0])
        c0 = float(self.model.mean_module.constant.detach())
        if nv < 3:
            return TestOutcome((), (), 0, False, c0, 0.0, 0.0, n, nv, 0, time.perf_counter() - t0)
        with torch.no_grad():
            self.model.mean_module.constant.fill_(float(yv.to(torch.float64).mean()))
        idx = subsample(nv, cfg.fit_points, self.generator)
        xf, yf = (xv, yv) if idx is None else (xv[idx], yv[idx])
        self._fit(xf, yf)
        probs, zs, failures = [], [], 0
        once = nv <= cfg.pred_points
        for _ in range(1 if once else cfg.n_preds):
            idx = subsample(nv, cfg.pred_points, self.generator)
            xp, yp = (xv, yv) if idx is None else (xv[idx], yv[idx])
            try:
                p, z = self._posterior_prob(xp, yp)
            except Exception as exc:  # noqa: BLE001 - the reference treats a failed repeat as a negative vote
                warnings.warn(f"reference GP posterior failed ({exc}); negative vote", stacklevel=2)
                p, z, failures = float("nan"), float("nan"), failures + 1
            probs.append(p)
            zs.append(z)
        if once:
            probs, zs, failures = probs * cfg.n_preds, zs * cfg.n_preds, failures * cfg.n_preds
        votes = sum(1 for p in probs if p > cfg.confidence)
        c = float(self.model.mean_module.constant.detach())
        os_ = float(self.model.covar_module.outputscale.detach())
        nz = float(self.likelihood.noise.detach())
        return TestOutcome(
            tuple(probs), tuple(zs), votes, votes >= cfg.votes, c, os_, nz, n, nv, failures, time.perf_counter() - t0
        )

    def state_dict(self) -> dict:
        return {
            "generator": self.generator.get_state(),
            "model": {k: v.clone() for k, v in self.model.state_dict().items() if not k.startswith("train_")},
            "adam": _plain_adam(self.optimizer.state_dict()),
        }

    def load_state_dict(self, st: dict) -> None:
        self.generator.set_state(st["generator"])
        self.model.load_state_dict(st["model"], strict=False)
        self.optimizer.load_state_dict(_adam_from_plain(st["adam"]))
