"""The paper's four regimes on one kernel problem (DESIGN.md §1, §3.9): the real net ("mlp"), sampled linearized
dynamics ("linearized"), the exact batch average ("full", E3) and the SD approximation (E4) with tau = +1
("mean_field"), tau = -1 ("gauss") or any tau ("sd/tau=x").

Every config is a dict with keys b (batch size), alpha (step in (E2) units), beta (momentum). NN runs use
lr = alpha * lr_scale with lr_scale = N / lambda_max(K_emp) unless given (DESIGN.md §3.9), start from the problem's
model (the same initial weights for every run) and draw batches from stream r of SeedSequence(seed), as
linearized run r does.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch

from sgd_genfunc.theory.full import full_run
from sgd_genfunc.theory.sampling import batch_noise_factor
from sgd_genfunc.theory.sd import sd_run
from sgd_genfunc.training.batches import batch_streams
from sgd_genfunc.training.linearized import ResidualSGD, train_linearized
from sgd_genfunc.training.nn import NNTrainOptions, train_nn

SD_NAMES = {"mean_field": 1.0, "gauss": -1.0}


def _tau_of(regime: str) -> float | None:
    if regime in SD_NAMES:
        return SD_NAMES[regime]
    if regime.startswith("sd/tau="):
        return float(regime.split("=", 1)[1])
    return None


@dataclass
class RegimeOptions:
    """How `run_regimes` runs its regimes (the same for every config).

    runs: {"mlp": R1, "linearized": R2} sampled runs (default 1 each); seed: root of the batch streams; n_steps:
    steps of every curve; full_steps: steps of "full" (None: n_steps, 0: skipped); lr_scale: NN lr per unit alpha
    (None: N / lambda_max); replacement: batches drawn with replacement; device: where to run (None: the problem's);
    progress: wraps the NN step iterable (a tqdm bar).
    """

    runs: dict[str, int] | None = None
    seed: int = 42
    n_steps: int = 1000
    full_steps: int | None = None
    lr_scale: float | None = None
    replacement: bool = False
    device: str | torch.device | None = None
    progress: Callable | None = None


def run_regimes(problem, configs: list[dict], regimes, options: RegimeOptions | None = None) -> dict:
    """Run every regime for every config; returns {(b, alpha, beta): {regime: curve}}.

    Curves have n_steps+1 entries: (R, n_steps+1) for the sampled regimes ("mlp", "linearized"), (n_steps+1,) for
    the theory ones; "full" runs min(full_steps, n_steps) steps.
    """
    o = options or RegimeOptions()
    runs = {"mlp": 1, "linearized": 1, **(o.runs or {})}
    seed, n_steps, full_steps, replacement = o.seed, o.n_steps, o.full_steps, o.replacement
    N = problem.lam.shape[0]
    dev = torch.device(o.device) if o.device is not None else problem.lam.device
    lam, U = problem.lam.to(dev), problem.U.to(dev)
    K_tilde, d0, c = problem.K_tilde.to(dev), problem.d0.to(dev), problem.c.to(dev)
    scale = o.lr_scale if o.lr_scale is not None else N / problem.lambda_max
    out = {}
    for cfg in configs:
        b, alpha, beta = int(cfg["b"]), float(cfg["alpha"]), float(cfg["beta"])
        g = batch_noise_factor(N, b, replacement)
        res = {}
        for regime in regimes:
            tau = _tau_of(regime)
            if tau is not None:
                res[regime] = sd_run(lam, c, n_steps, alpha, beta, g, tau).loss.cpu()
            elif regime == "full":
                T = n_steps if full_steps is None else min(full_steps, n_steps)
                if T > 0:
                    res["full"] = full_run(lam, U, torch.outer(d0, d0), T, alpha, beta, g).loss.cpu()
            elif regime == "linearized":
                R = runs["linearized"]
                r = train_linearized(
                    ResidualSGD(alpha, beta),
                    d0,
                    K_tilde,
                    n_steps,
                    b,
                    R,
                    batch_streams(seed, R),
                    replacement=replacement,
                )
                res["linearized"] = r.loss.cpu()
            elif regime == "mlp":
                if problem.model is None:
                    raise ValueError("regime 'mlp' needs a problem built with ntk_model='mlp'")
                curves = []
                for rng in batch_streams(seed, runs["mlp"]):
                    model = copy.deepcopy(problem.model).to(dev)
                    opt = torch.optim.SGD(model.parameters(), lr=alpha * scale, momentum=beta)
                    X, y = problem.X.to(dev), problem.y.to(dev)
                    hist = train_nn(model, opt, X, y, n_steps, b, rng, options=NNTrainOptions(progress=o.progress))
                    curves.append(hist["train/loss"])
                res["mlp"] = torch.stack(curves)
            else:
                raise ValueError(f"unknown regime {regime!r}")
        out[(b, alpha, beta)] = res
    return out
