"""SLS: Armijo line search along the SGD direction (Vaswani et al., NeurIPS 2019), DESIGN.md §3.2 first column.

Tested direction d = g with slope phi = ||g||^2 (A3; the references' scalar variant used ||g||), step taken = the trial
(A7). No Adam moments, so no optimizer state and no work buffer: d is p.grad.
"""

from __future__ import annotations

from line_search.sls.base import UNSET, ArmijoLineSearch, pick, resolve_grow

__all__ = ["SLS"]


class SLS(ArmijoLineSearch):
    """Stochastic Armijo line search on the SGD direction, (A2)-(A9) with d = g.

    Defaults (DESIGN.md §3.2): c = 0.1, init_step_size = 1.0, grow = gamma^(1/n_batches_per_epoch) = 2^(1/500),
    shrink (`beta_b`) = 0.9, max_trials = 100, beta_s = 0, eta_min = 1e-6, eta_max = None, reset_option = 1
    (0 keep, 1 grow, 2 reset). Other keywords: see ArmijoLineSearch. `grow` and (`gamma`, `n_batches_per_epoch`) are
    two spellings of one knob, as are `shrink` and `beta_b`; giving both is a TypeError.
    """

    def __init__(
        self,
        params,
        c: float = 0.1,
        init_step_size: float = 1.0,
        grow=UNSET,
        shrink=UNSET,
        max_trials: int = 100,
        beta_s: float = 0.0,
        eta_min: float = 1e-6,
        eta_max: float | None = None,
        weight_decay: float = 0.0,
        reset_option: int = 1,
        *,
        beta_b=UNSET,
        gamma=UNSET,
        n_batches_per_epoch=UNSET,
        **kwargs,
    ):
        super().__init__(
            params,
            c=c,
            init_step_size=init_step_size,
            grow=resolve_grow(grow, gamma, n_batches_per_epoch, 2.0 ** (1.0 / 500)),
            shrink=pick("shrink", shrink, "beta_b", beta_b, 0.9),
            max_trials=max_trials,
            beta_s=beta_s,
            eta_min=eta_min,
            eta_max=eta_max,
            weight_decay=weight_decay,
            reset_option=reset_option,
            search_direction="sgd",
            step_direction=kwargs.pop("step_direction", "trial"),
            moments=False,
            **kwargs,
        )
