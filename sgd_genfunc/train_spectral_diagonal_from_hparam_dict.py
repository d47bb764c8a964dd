"""SD loss curves for tuned step sizes read from a hyperparameter dict {(nu, kappa): alpha} (tune_alpha_beta.py).

Example: python sgd_genfunc/train_spectral_diagonal_from_hparam_dict.py --hparam_dict_path hparam_dict.json \
    --N 1000 --momentum -0.2 0.0 0.2 --n_steps 1000
The dict is a .pkl {(nu, kappa): alpha} or a .json {"nu,kappa": alpha}. Outputs: loss_curves.pth
{(nu, kappa, b, alpha, beta): curve}, metrics.csv, loss.png, summary.json.
"""

from __future__ import annotations

import time

import torch

from common.cli import UsageError, nonneg_int, positive_int, run_main
from common.runtime import resolve_device
from sgd_genfunc import scripting
from sgd_genfunc.hparams import read_hparam_dict
from sgd_genfunc.problems import power_law_coefficients, power_law_spectrum
from sgd_genfunc.theory import batch_noise_factor, sd_run


def build_parser():
    p = scripting.make_parser(__doc__.split("\n")[0])
    p.add_argument("--hparam_dict_path", required=True, metavar="F", help=".pkl or .json {(nu, kappa): alpha}")
    p.add_argument("--N", type=int, default=1000, metavar="N", help="number of modes")
    p.add_argument("--tau", type=float, default=1.0, metavar="TAU", help="SD parameter")
    p.add_argument("--momentum", type=float, nargs="+", default=[0.0], metavar="BETA", help="momenta")
    p.add_argument("--batch_size", type=positive_int, default=1, metavar="B", help="batch size")
    p.add_argument("--n_steps", type=nonneg_int, default=10000, metavar="T", help="steps")
    scripting.add_run_block(p)
    return p


def load_hparams(path: str) -> dict[tuple[float, float], float]:
    """{(nu, kappa): alpha} from .json or the seed's .pkl (read without running code: `sgd_genfunc.hparams`)."""
    return read_hparam_dict(path)


def main(argv=None):
    args = build_parser().parse_args(argv)
    hp = load_hparams(args.hparam_dict_path)
    if args.N < 2:
        raise UsageError(f"--N must be >= 2, got {args.N}")
    if args.batch_size > args.N:
        raise UsageError(f"--batch_size must lie in [1, N={args.N}], got {args.batch_size}")
    device = resolve_device(args.device)
    g = batch_noise_factor(args.N, args.batch_size)
    t0 = time.time()
    run = scripting.open_script_run("train_spectral_diagonal_from_hparam_dict", args)
    curves, rows, summary = {}, [], []
    bar = scripting.progress_bar(args, args.n_steps * len(hp), "SD steps")
    for (nu, kappa), alpha in hp.items():
        lam = power_law_spectrum(args.N, nu).to(device)
        c = power_law_coefficients(args.N, kappa).to(device)
        betas = torch.tensor(args.momentum, dtype=torch.float64)
        res = sd_run(lam, c, args.n_steps, alpha, betas, g, args.tau, on_steps=bar.update)
        res = res._replace(loss=res.loss.cpu(), diverged_at=res.diverged_at.cpu())
        for i, beta in enumerate(args.momentum):
            key = (nu, kappa, args.batch_size, alpha, beta)
            curves[key] = res.loss[i].clone()
            rows.append((key, f"sd/tau={args.tau}", 0, res.loss[i]))
            summary.append(
                {
                    "key": list(key),
                    "final_loss": scripting.finite(float(res.loss[i, -1])),
                    "diverged_at": int(res.diverged_at[i]),
                }
            )
    bar.close()
    scripting.save_pth(run, "loss_curves.pth", curves)
    scripting.write_metrics(run, rows, ["nu", "kappa", "b", "alpha", "beta"], args.n_steps)
    scripting.plot_losses(run, {k: {"SD": v} for k, v in curves.items()}, "SD curves at tuned alpha")
    run.finish(
        {
            "configs": summary,
            "diverged": [r["key"] for r in summary if r["diverged_at"] >= 0],
            "wall_time_s": scripting.wall(t0),
        }
    )
    return 0


if __name__ == "__main__":
    run_main(main)
