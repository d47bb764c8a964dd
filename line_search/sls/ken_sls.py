"""KenSLS: the ACDSA 2024 method of Kenneweg et al., Armijo search along Adam's momentum direction; DESIGN.md §3.2.

The tested step is the step taken: d = P*m_hat with the exact slope phi = g.(P*m_hat) (A3), step = the trial (A7).
When phi <= 0 (or not finite) the step falls back to d = P*g (counter n_fallback), so s_k > 0 always (DESIGN.md §3.3
replaces
the reference's finite-difference slope and its c -> 1/c switch). beta_s is honoured (the reference hard-coded 0.99).
"""

from __future__ import annotations

from line_search.sls.base import UNSET, ArmijoLineSearch, pick, resolve_betas

__all__ = ["KenSLS"]


class KenSLS(ArmijoLineSearch):
    """Armijo line search on the Adam momentum direction, (A1)-(A9) with d = P*m_hat (fallback P*g).

    Defaults (DESIGN.md §3.2): c = 0.5, init_step_size = 0.1, grow = 1/0.999, shrink (`beta_b`) = 0.9, max_trials = 100,
    beta_s = 0.99 (smooth=False -> 0; an explicit beta_s wins), betas = (`momentum` 0.9, `beta` 0.999), eps = 1e-8,
    eta_min = 1e-8, eta_max = None.

    Usage (seed): optimizer = KenSLS([model.parameters()]); optimizer.zero_grad();
    loss = optimizer.step(closure=lambda: criterion(model(x), y)).
    """

    def __init__(
        self,
        params,
        c: float = 0.5,
        init_step_size: float = 0.1,
        grow: float = 1.0 / 0.999,
        shrink=UNSET,
        max_trials: int = 100,
        beta_s=UNSET,
        betas=UNSET,
        eps: float = 1e-8,
        eta_min: float = 1e-8,
        eta_max: float | None = None,
        weight_decay: float = 0.0,
        smooth: bool = True,
        *,
        beta_b=UNSET,
        momentum=UNSET,
        beta=UNSET,
        **kwargs,
    ):
        super().__init__(
            params,
            c=c,
            init_step_size=init_step_size,
            grow=grow,
            shrink=pick("shrink", shrink, "beta_b", beta_b, 0.9),
            max_trials=max_trials,
            beta_s=(0.99 if smooth else 0.0) if beta_s is UNSET else beta_s,
            betas=resolve_betas(betas, momentum, beta),
            eps=eps,
            eta_min=eta_min,
            eta_max=eta_max,
            weight_decay=weight_decay,
            search_direction="momentum",
            step_direction=kwargs.pop("step_direction", "trial"),
            moments=True,
            **kwargs,
        )
