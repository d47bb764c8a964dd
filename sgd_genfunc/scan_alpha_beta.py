"""SD final loss over a grid of (alpha, beta) for each batch size: the stability map with the U~(1) = 1 curve.

Example: python sgd_genfunc/scan_alpha_beta.py --N 1000 --batch_size 1 10 --n_steps 2000
alphas = alpha_max * i / n_alpha (i = 1..n_alpha); betas = midpoints of n_beta bins of [beta_min, beta_max].
Outputs: losses_2d.npz (alphas, betas, b, L_T/L_0 with shape (len(b), n_alpha, n_beta), alpha_c(beta)),
heatmap_b<b>.png, summary.json (grid minimum per b).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from common.cli import UsageError, check_range, nonneg_int, positive_float, positive_int, run_main
from common.runtime import resolve_device
from sgd_genfunc import scripting
from sgd_genfunc.claims import Reproduction
from sgd_genfunc.theory import batch_noise_factor, critical_alpha, sd_run


def build_parser():
    p = scripting.make_parser(__doc__.split("\n")[0])
    p.add_argument("--nu", type=float, default=1.5, metavar="NU", help="spectral exponent")
    p.add_argument("--kappa", type=float, default=3.0, metavar="KAPPA", help="target exponent")
    p.add_argument("--tau", type=float, default=1.0, metavar="TAU", help="SD parameter")
    p.add_argument("--batch_size", type=positive_int, nargs="+", default=[1, 10], metavar="B", help="batch sizes")
    p.add_argument("--alpha_max", type=positive_float, default=4.0, metavar="A", help="largest alpha")
    p.add_argument("--n_alpha", type=positive_int, default=40, metavar="K", help="alpha grid size")
    p.add_argument("--beta_min", type=float, default=-1.0, metavar="B", help="beta range start")
    p.add_argument("--beta_max", type=float, default=1.0, metavar="B", help="beta range end")
    p.add_argument("--n_beta", type=positive_int, default=40, metavar="K", help="beta bins")
    p.add_argument("--N", type=int, default=1000, metavar="N", help="modes")
    p.add_argument("--n_steps", type=nonneg_int, default=2000, metavar="T", help="steps")
    p.add_argument("--lambda_min", type=float, default=0.0, metavar="L", help="spectrum floor")
    scripting.add_run_block(p)
    return p


def main(argv=None):
    from sgd_genfunc.plots import plot_r6
    from sgd_genfunc.problems import power_law_coefficients, power_law_spectrum

    args = build_parser().parse_args(argv)
    if args.N < 2:
        raise UsageError(f"--N must be >= 2, got {args.N}")
    if args.nu <= 0 or args.kappa <= 0:
        raise UsageError(f"--nu and --kappa must be > 0, got {args.nu}, {args.kappa}")
    if any(b > args.N for b in args.batch_size):
        raise UsageError(f"--batch_size must lie in [1, N={args.N}], got {args.batch_size}")
    if not 0.0 <= args.lambda_min < 1.0:
        raise UsageError(f"--lambda_min must lie in [0, 1), got {args.lambda_min}")
    check_range(args.beta_min, args.beta_max, "--beta_min, --beta_max", strict=True)
    device = resolve_device(args.device)
    gs = [batch_noise_factor(args.N, b) for b in args.batch_size]
    t0 = time.time()
    args.resume = False
    run = scripting.open_script_run("scan_alpha_beta", args)
    lam = power_law_spectrum(args.N, args.nu, args.lambda_min)
    c = power_law_coefficients(args.N, args.kappa)
    lam_dev, c_dev = lam.to(device), c.to(device)
    alphas = args.alpha_max * np.arange(1, args.n_alpha + 1) / args.n_alpha
    edges = np.linspace(args.beta_min, args.beta_max, args.n_beta + 1)
    betas = 0.5 * (edges[1:] + edges[:-1])
    A, B = np.meshgrid(alphas, betas, indexing="ij")
    ratios, a_cs, summary = [], [], []
    bar = scripting.progress_bar(args, args.n_steps * len(gs), "SD steps")
    for b, g in zip(args.batch_size, gs):
        res = sd_run(
            lam_dev,
            c_dev,
            args.n_steps,
            torch.tensor(A.ravel()),
            torch.tensor(B.ravel()),
            g,
            args.tau,
            on_steps=bar.update,
        )
        r = (res.loss[:, -1] / res.loss[:, 0]).cpu().numpy().reshape(A.shape)
        a_c = critical_alpha(lam, betas, g, args.tau)
        ratios.append(r)
        a_cs.append(a_c)
        fin = np.where(np.isfinite(r), r, np.inf)
        i, j = np.unravel_index(np.argmin(fin), fin.shape)
        summary.append({"b": b, "best_alpha": alphas[i], "best_beta": betas[j], "best_ratio": float(fin[i, j])})
        rep = Reproduction("R6", "", "", "")
        rep.data.update(
            lam=lam, alphas=alphas, betas=betas, maps={b: dict(ratio=r, alpha_c=a_c, best=(alphas[i], betas[j]))}
        )
        plot_r6(rep, run.path / f"heatmap_b{b}.png")
    bar.close()
    np.savez(
        run.path / "losses_2d.npz",
        alphas=alphas,
        betas=betas,
        b=np.array(args.batch_size),
        ratio=np.stack(ratios),
        alpha_c=np.stack(a_cs),
    )
    run.finish({"minima": summary, "N": args.N, "nu": args.nu, "kappa": args.kappa, "wall_time_s": scripting.wall(t0)})
    return 0


if __name__ == "__main__":
    run_main(main)
