"""SaLSa: Stable Armijo Line Search Adaptation (Kenneweg et al., IJCNN 2024); DESIGN.md §3.2 last column.

Smoothed Armijo criterion (A4, A5: EMAs of the slope and of the loss decrease, beta_s = 0.9), the Adam step P*m_hat
on every step (A7; the reference's search steps moved along P*g, which `step_direction="trial"` reproduces), and the
speed-up rule (A9) that searches only every L_k <= 10 steps once the step size settles.
`SaLSa(init_step_size=lr, grow=1, line_search=False)` is Adam with learning rate lr.
"""

from __future__ import annotations

from line_search.sls.base import UNSET, ArmijoLineSearch, pick

__all__ = ["SaLSa", "SaLSA"]


class SaLSa(ArmijoLineSearch):
    """Smoothed Armijo line search with the Adam step and speed-up, (A1)-(A9).

    Defaults (DESIGN.md §3.2): c = 0.5, init_step_size = 1.0, grow = 1.1, shrink (`beta_b`) = 0.8, max_trials = 100,
    beta_s = 0.9, betas = (0.9, 0.999) (reference: momentum=(b1, b2, beta_s) = (0.9, 0.999, 0.9)), eps = 1e-8,
    eta_min = 1e-8, eta_max = None, speed_up = True, use_mv = False (True: test along P*m_hat instead of P*g).
    """

    def __init__(
        self,
        params,
        c: float = 0.5,
        init_step_size: float = 1.0,
        grow: float = 1.1,
        shrink=UNSET,
        max_trials: int = 100,
        beta_s=UNSET,
        betas=UNSET,
        eps: float = 1e-8,
        eta_min: float = 1e-8,
        eta_max: float | None = None,
        weight_decay: float = 0.0,
        speed_up: bool = True,
        use_mv: bool = False,
        *,
        beta_b=UNSET,
        momentum=UNSET,
        **kwargs,
    ):
        if momentum is not UNSET:
            if betas is not UNSET or beta_s is not UNSET:
                raise TypeError("got both 'momentum' and 'betas'/'beta_s'; pass one")
            b1, b2, bs = momentum
            betas, beta_s = (b1, b2), bs
        super().__init__(
            params,
            c=c,
            init_step_size=init_step_size,
            grow=grow,
            shrink=pick("shrink", shrink, "beta_b", beta_b, 0.8),
            max_trials=max_trials,
            beta_s=0.9 if beta_s is UNSET else beta_s,
            betas=(0.9, 0.999) if betas is UNSET else tuple(betas),
            eps=eps,
            eta_min=eta_min,
            eta_max=eta_max,
            weight_decay=weight_decay,
            speed_up=speed_up,
            search_direction="momentum" if use_mv else "precond",
            step_direction=kwargs.pop("step_direction", "momentum"),
            moments=True,
            **kwargs,
        )


SaLSA = SaLSa
