"""SD loss curves for tuned step sizes read from a hyperparameter dict {(nu, kappa): alpha} (tune_alpha_beta.py).

Example: python sgd_genfunc/train_spectral_diagonal_from_hparam_dict.py --hparam_dict_path hparam_dict.json \
    --N 1000 --momentum -0.2 0.0 0.2 --n_steps 1000
The dict is a .pkl {(nu, kappa): alpha} or a .json {"nu,kappa": alpha}. Outputs: loss_curves.pth
{(nu, kappa, b, alpha, beta): curve}, metrics.csv, loss.png, summary.json.
"""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path

import torch

from common.cli import MissingInputError, UsageError, add_run_args, nonneg_int, positive_int, run_main
from sgd_genfunc import scripting as S
from sgd_genfunc.problems import power_law_coefficients, power_law_spectrum
from sgd_genfunc.theory import gamma, sd_run


def build_parser():
    p = S.make_parser(__doc__.split("\n")[0])
    p.add_argument("--hparam_dict_path", required=True, metavar="F", help=".pkl or .json {(nu, kappa): alpha}")
    p.add_argument("--N", type=int, default=1000, metavar="N", help="number of modes")
    p.add_argument("--tau", type=float, default=1.0, metavar="TAU", help="SD parameter")
    p.add_argument("--momentum", type=float, nargs="+", default=[0.0], metavar="BETA", help="momenta")
    p.add_argument("--batch_size", type=positive_int, default=1, metavar="B", help="batch size")
    p.add_argument("--n_steps", type=nonneg_int, default=10000, metavar="T", help="steps")
    add_run_args(p)
    p.set_defaults(seed=42)
    p.add_argument("--save_dir", default=None, metavar="DIR", help="run dir")
    return p


def load_hparams(path: str) -> dict[tuple[float, float], float]:
    """Read {(nu, kappa): alpha} from .pkl or {"nu,kappa": alpha} from .json; ValueError if malformed."""
    p = Path(path)
    if not p.is_file():
        raise MissingInputError(f"--hparam_dict_path not found: {path}")
    try:
        if p.suffix == ".json":
            raw = json.loads(p.read_text())
            out = {tuple(float(x) for x in k.split(",")): float(v) for k, v in raw.items()}
        else:
            with open(p, "rb") as fh:
                raw = pickle.load(fh)
            out = {(float(k[0]), float(k[1])): float(v) for k, v in raw.items()}
    except Exception as exc:  # noqa: BLE001 - any parse failure is bad input
        raise UsageError(f"malformed --hparam_dict_path {path}: {type(exc).__name__}: {exc}") from None
    if not out or any(len(k) != 2 for k in out):
        raise UsageError(f"malformed --hparam_dict_path {path}: need a non-empty {{(nu, kappa): alpha}} mapping")
    return out


def main(argv=None):
    args = build_parser().parse_args(argv)
    hp = load_hparams(args.hparam_dict_path)
    if args.N < 2:
        raise UsageError(f"--N must be >= 2, got {args.N}")
    g = gamma(args.N, args.batch_size)
    t0 = time.time()
    args.resume = False
    run = S.open_script_run("train_spectral_diagonal_from_hparam_dict", args)
    curves, rows, summary = {}, [], []
    for (nu, kappa), alpha in hp.items():
        lam, c = power_law_spectrum(args.N, nu), power_law_coefficients(args.N, kappa)
        res = sd_run(lam, c, args.n_steps, alpha, torch.tensor(args.momentum, dtype=torch.float64), g, args.tau)
        for i, beta in enumerate(args.momentum):
            key = (nu, kappa, args.batch_size, alpha, beta)
            curves[key] = res.loss[i].clone()
            rows.append((key, f"sd/tau={args.tau}", 0, res.loss[i]))
            summary.append(
                {
                    "key": list(key),
                    "final_loss": S.finite(float(res.loss[i, -1])),
                    "diverged_at": int(res.diverged_at[i]),
                }
            )
    S.save_pth(run, "loss_curves.pth", curves)
    S.write_metrics(run, rows, ["nu", "kappa", "b", "alpha", "beta"], args.n_steps)
    S.plot_losses(run, {k: {"SD": v} for k, v in curves.items()}, "SD curves at tuned alpha")
    run.finish(
        {
            "configs": summary,
            "diverged": [r["key"] for r in summary if r["diverged_at"] >= 0],
            "wall_time_s": S.wall(t0),
        }
    )
    return 0


if __name__ == "__main__":
    run_main(main)
