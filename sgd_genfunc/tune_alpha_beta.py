"""Optimal step size at beta = 0, then optimal momentum at that step size, for (nu, kappa) pairs (SD, E10).

Example: python sgd_genfunc/tune_alpha_beta.py --pairs 1.5,4 2,8 --N 3000 --n_steps 3000
Outputs: loss_optimum_alpha.csv, loss_optimum_beta.csv, hparam_dict.json {"nu,kappa": alpha_opt}, L_beta.png,
summary.json (alpha_opt, beta_opt, gain L(0)/L(beta_opt), E10 condition per pair).
"""

from __future__ import annotations

import time

import numpy as np

from common.cli import UsageError, csv_list, nonneg_int, positive_int, run_main
from common.runtime import resolve_device
from sgd_genfunc import scripting
from sgd_genfunc.claims import Reproduction
from sgd_genfunc.hparams import write_hparam_dict
from sgd_genfunc.plots import plot_r4
from sgd_genfunc.problems import power_law_coefficients, power_law_spectrum
from sgd_genfunc.theory import batch_noise_factor, negative_momentum_condition, optimal_alpha, optimal_beta


def beta_grid(text: str) -> np.ndarray:
    """'-0.6:0.6:0.05' -> the inclusive grid."""
    try:
        lo, hi, step = (float(x) for x in text.split(":"))
    except ValueError:
        raise UsageError(f"--betas must read lo:hi:step, got {text!r}") from None
    if step <= 0 or hi < lo:
        raise UsageError(f"--betas needs lo <= hi and step > 0, got {text!r}")
    return np.round(np.arange(lo, hi + step / 2, step), 10)


def build_parser():
    p = scripting.make_parser(__doc__.split("\n")[0])
    p.add_argument(
        "--pairs",
        type=csv_list(float),
        nargs="+",
        default=[[1.5, 4], [2, 8], [1.5, 2.5], [2, 3]],
        metavar="NU,KAPPA",
        help="(nu, kappa) pairs",
    )
    p.add_argument("--N", type=int, default=10000, metavar="N", help="modes")
    p.add_argument("--n_steps", type=nonneg_int, default=10000, metavar="T", help="budget T")
    p.add_argument("--batch_size", type=positive_int, default=1, metavar="B", help="batch size")
    p.add_argument("--tau", type=float, default=1.0, metavar="TAU", help="SD parameter")
    p.add_argument("--betas", default="-0.6:0.6:0.05", metavar="LO:HI:STEP", help="momentum grid")
    scripting.add_run_block(p)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.N < 2:
        raise UsageError(f"--N must be >= 2, got {args.N}")
    if args.batch_size > args.N:
        raise UsageError(f"--batch_size must lie in [1, N={args.N}], got {args.batch_size}")
    for pair in args.pairs:
        if len(pair) != 2 or pair[0] <= 0 or pair[1] <= 0:
            raise UsageError(f"--pairs entries must be nu,kappa with both > 0, got {pair}")
    betas = beta_grid(args.betas)
    device = resolve_device(args.device)
    g = batch_noise_factor(args.N, args.batch_size)
    t0 = time.time()
    run = scripting.open_script_run("tune_alpha_beta", args)
    rows, hp, pairs, alpha_rows, beta_rows = [], {}, {}, [], []
    bar = scripting.progress_bar(args, len(args.pairs), "(nu, kappa) pairs")
    for nu, kappa in args.pairs:
        lam = power_law_spectrum(args.N, nu).to(device)
        c = power_law_coefficients(args.N, kappa).to(device)
        a = optimal_alpha(lam, c, args.n_steps, 0.0, g, args.tau)
        bo = optimal_beta(lam, c, args.n_steps, a.value, betas, g, args.tau)
        alpha_rows += [dict(nu=nu, kappa=kappa, alpha=x, L_T=y) for x, y in zip(a.grid, a.losses)]
        beta_rows += [dict(nu=nu, kappa=kappa, alpha=a.value, beta=x, L_T=y) for x, y in zip(bo.grid, bo.losses)]
        L0 = float(bo.losses[np.argmin(np.abs(bo.grid))])
        cond = negative_momentum_condition(nu, kappa, args.N)
        hp[(nu, kappa)] = a.value
        pairs[(nu, kappa)] = dict(
            alpha_opt=a.value, beta_opt=bo.value, gain=L0 / bo.loss, E10=cond, betas=bo.grid, losses=bo.losses
        )
        rows.append(
            {
                "nu": nu,
                "kappa": kappa,
                "alpha_opt": a.value,
                "beta_opt": bo.value,
                "gain": L0 / bo.loss,
                "E10": cond,
                "E10_predicts_negative": cond > 0,
            }
        )
        bar.update(1)
        bar.write(f"(nu, kappa) = ({nu}, {kappa}): alpha_opt {a.value:.4f}, beta_opt {bo.value:+.2f}")
    bar.close()
    scripting.log_table(run, "loss_optimum_alpha", alpha_rows)
    scripting.log_table(run, "loss_optimum_beta", beta_rows)
    write_hparam_dict(run.path / "hparam_dict.json", hp)
    rep = Reproduction("R4", "", "", "")
    rep.data["pairs"] = pairs
    plot_r4(rep, run.path / "L_beta.png")
    run.finish({"pairs": rows, "N": args.N, "n_steps": args.n_steps, "wall_time_s": scripting.wall(t0)})
    return 0


if __name__ == "__main__":
    run_main(main)
