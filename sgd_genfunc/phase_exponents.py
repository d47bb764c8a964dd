"""Loss exponents of SD curves against the prediction min(kappa/nu, 2 - 1/nu) (E9), one curve per kappa.

Example: python sgd_genfunc/phase_exponents.py --nu 1.5 --kappa 0.5 1 2 3 4 --N 20000 --n_steps 2000 --fit_min 100
Outputs: exponents.csv (fitted, predicted, phase, L_T/prediction), curves.png (with asymptotes), exponents.png,
summary.json.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from common.cli import UsageError, check_range, nonneg_int, positive_int, run_main
from common.runtime import resolve_device
from sgd_genfunc import scripting
from sgd_genfunc.problems import power_law_coefficients, power_law_spectrum
from sgd_genfunc.theory import (
    batch_noise_factor,
    classify_phase,
    effective_lr,
    fit_slope,
    loss_exponent,
    noise_asymptote,
    sd_run,
    signal_asymptote,
    u_tilde_at_1,
    v_tilde_at_1,
)


def build_parser():
    p = scripting.make_parser(__doc__.split("\n")[0])
    p.add_argument("--nu", type=float, default=1.5, metavar="NU", help="spectral exponent")
    p.add_argument("--kappa", type=float, nargs="+", default=[0.5, 1, 2, 3, 4], metavar="K", help="target exponents")
    p.add_argument("--N", type=int, default=100000, metavar="N", help="modes")
    p.add_argument("--n_steps", type=nonneg_int, default=10000, metavar="T", help="steps")
    p.add_argument("--lr", type=float, default=1.0, metavar="ALPHA", help="step size")
    p.add_argument("--momentum", type=float, default=0.0, metavar="BETA", help="momentum")
    p.add_argument("--batch_size", type=positive_int, default=10, metavar="B", help="batch size")
    p.add_argument("--tau", type=float, default=1.0, metavar="TAU", help="SD parameter")
    p.add_argument("--fit_min", type=float, default=300, metavar="T0", help="fit window start")
    p.add_argument("--fit_max", type=float, default=0, metavar="T1", help="fit window end (0: n_steps)")
    scripting.add_run_block(p)
    return p


def prediction(lam, c, kappa, nu, N, alpha, beta, g, tau, T):
    """(E9) asymptote at T: signal for kappa < 2 nu - 1, noise beyond; nan at the boundary."""
    u1 = u_tilde_at_1(lam, alpha, beta, g, tau)
    a_eff = effective_lr(alpha, beta)
    phase = classify_phase(nu, kappa)
    if phase == "signal":
        Z = float((torch.arange(1, N + 1, dtype=torch.float64) ** -(kappa + 1)).sum())
        return float(signal_asymptote(T, 1.0 / (kappa * Z) / (2 * N), kappa / nu, a_eff, u1))
    if phase == "noise" and kappa > 2 * nu - 1:
        return float(noise_asymptote(T, nu, g, a_eff, v_tilde_at_1(lam, c, alpha, beta, g, tau), u1, N))
    return math.nan


def main(argv=None):
    from common.plotting import new_figure, save_figure, use_style

    args = build_parser().parse_args(argv)
    if args.N < 2:
        raise UsageError(f"--N must be >= 2, got {args.N}")
    if args.nu <= 0 or any(k <= 0 for k in args.kappa):
        raise UsageError(f"--nu and --kappa must be > 0, got {args.nu}, {args.kappa}")
    if args.lr < 0:
        raise UsageError(f"--lr must be >= 0, got {args.lr}")
    if args.batch_size > args.N:
        raise UsageError(f"--batch_size must lie in [1, N={args.N}], got {args.batch_size}")
    t1 = args.fit_max or args.n_steps
    check_range(args.fit_min, t1, "--fit_min, --fit_max", strict=True)
    device = resolve_device(args.device)
    g = batch_noise_factor(args.N, args.batch_size)
    t0 = time.time()
    args.resume = False
    run = scripting.open_script_run("phase_exponents", args)
    lam = power_law_spectrum(args.N, args.nu)
    cs = torch.stack([power_law_coefficients(args.N, k) for k in args.kappa])
    with scripting.progress_bar(args, args.n_steps, "SD steps") as bar:
        loss = sd_run(
            lam.to(device), cs.to(device), args.n_steps, args.lr, args.momentum, g, args.tau, on_steps=bar.update
        )
    loss = loss.loss.cpu()
    t = np.arange(args.n_steps + 1)
    rows = []
    use_style()
    fig, ax = new_figure(f"SD curves, nu = {args.nu}", "step t", "L_t")
    for i, kappa in enumerate(args.kappa):
        L = loss[i].numpy()
        slope = fit_slope(t, L, args.fit_min, t1)
        pred = prediction(lam, cs[i], kappa, args.nu, args.N, args.lr, args.momentum, g, args.tau, args.n_steps)
        rows.append(
            {
                "kappa": kappa,
                "fitted": slope,
                "predicted": -loss_exponent(args.nu, kappa),
                "phase": classify_phase(args.nu, kappa),
                "L_T_over_prediction": L[-1] / pred,
            }
        )
        ax.loglog(t[1:], L[1:], label=f"kappa = {kappa}: slope {slope:.3f}")
    ax.legend(fontsize=7)
    save_figure(fig, run.path / "curves.png")
    fig, ax = new_figure("loss exponent vs kappa", "kappa", "xi")
    ks = np.linspace(min(args.kappa) * 0.5, max(args.kappa) * 1.1, 100)
    ax.plot(ks, [loss_exponent(args.nu, k) for k in ks], "k-", label="min(kappa/nu, 2-1/nu)")
    ax.plot(args.kappa, [-r["fitted"] for r in rows], "o", label="fitted")
    ax.legend()
    save_figure(fig, run.path / "exponents.png")
    scripting.log_table(run, "exponents", rows)
    run.finish(
        {
            "rows": [{k: scripting.finite(v) if isinstance(v, float) else v for k, v in r.items()} for r in rows],
            "N": args.N,
            "wall_time_s": scripting.wall(t0),
        }
    )
    return 0


if __name__ == "__main__":
    run_main(main)
