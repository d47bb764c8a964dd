"""AdamSLS: ADAM+SLS (Vaswani et al. 2021), the baseline with the tested/taken direction mismatch; DESIGN.md §3.2.

The Armijo test runs along the preconditioned gradient d = P*g with phi = sum(P*g^2) (A3), but the step taken is the
Adam step w0 - eta*P*m_hat (A7, step_direction="momentum"). DESIGN.md §3.3 keeps this mismatch on purpose: it is the
baseline that KenSLS fixes. This module also re-exports KenSLS, as the seed imports it from here.
"""

from __future__ import annotations

from line_search.sls.base import UNSET, ArmijoLineSearch, pick, resolve_betas, resolve_grow
from line_search.sls.ken_sls import KenSLS

__all__ = ["AdamSLS", "KenSLS"]


class AdamSLS(ArmijoLineSearch):
    """ADAM+SLS: (A1)-(A9) with d = P*g tested and P*m_hat taken.

    Defaults (DESIGN.md §3.2): c = 0.1, init_step_size = 0.1, grow = 2^(1/500), shrink (`beta_b`) = 0.9,
    max_trials = 200, beta_s = 0 (0.99 with smooth=True; an explicit beta_s wins), betas = (`momentum` 0.9,
    `beta` 0.999), eps = 1e-8,
    eta_min = 1e-8, eta_max = None, reset_option = 1. Reference aliases: beta_b = shrink, momentum = b1, beta = b2.
    """

    def __init__(
        self,
        params,
        c: float = 0.1,
        init_step_size: float = 0.1,
        grow=UNSET,
        shrink=UNSET,
        max_trials: int = 200,
        beta_s=UNSET,
        betas=UNSET,
        eps: float = 1e-8,
        eta_min: float = 1e-8,
        eta_max: float | None = None,
        weight_decay: float = 0.0,
        smooth: bool = False,
        reset_option: int = 1,
        *,
        beta_b=UNSET,
        momentum=UNSET,
        beta=UNSET,
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
            beta_s=(0.99 if smooth else 0.0) if beta_s is UNSET else beta_s,
            betas=resolve_betas(betas, momentum, beta),
            eps=eps,
            eta_min=eta_min,
            eta_max=eta_max,
            weight_decay=weight_decay,
            reset_option=reset_option,
            search_direction="precond",
            step_direction=kwargs.pop("step_direction", "momentum"),
            moments=True,
            **kwargs,
        )
