"""Four regimes with series of runs: R network runs, R linearized runs, the exact batch average ("full") and SD
curves for a list of tau, over a grid of (b, alpha, beta).

Example (seed README): python sgd_genfunc/train_4_regimes_serial.py --dataset sgemm_product --N 3000 --lr 1.1 \
    --momentum 0.0 --batch_size 10 100 --aggr_type zip --nn_runs 100 --linearized_runs 100 --n_steps 100 \
    --tau -2 -1 0 1 2
Outputs: loss_curves_4_regimes.pth {(b, alpha, beta): {mlp/i, sd/tau=x, full, linearized/i}}, data.pth (adds tau,
nn_runs, linearized_runs), eig.png, metrics.csv, loss.png, summary.json.
"""

from __future__ import annotations

from common.cli import nonneg_int, positive_int, run_main
from sgd_genfunc.train_4_regimes import build_parser as base_parser
from sgd_genfunc.train_4_regimes import run_script


def build_parser():
    p = base_parser(__doc__)
    s = p.add_argument_group("series")
    s.add_argument("--tau", type=float, nargs="+", default=[-1.0, 1.0], metavar="TAU", help="SD parameters")
    s.add_argument("--nn_runs", type=positive_int, default=1, metavar="R", help="network runs (batch streams 0..R-1)")
    s.add_argument("--linearized_runs", type=positive_int, default=1, metavar="R", help="linearized runs")
    s.add_argument("--full_steps", type=nonneg_int, default=None, metavar="T", help="steps of full (0: skip)")
    return p


def split_runs(out: dict) -> dict:
    """{key: {mlp: (R, T+1), ...}} -> the reference's flat keys mlp/i and linearized/i."""
    flat = {}
    for key, res in out.items():
        row = {}
        for regime, curve in res.items():
            if regime in ("mlp", "linearized"):
                row.update({f"{regime}/{i}": curve[i].clone() for i in range(curve.shape[0])})
            else:
                row[regime] = curve
        flat[key] = row
    return flat


def main(argv=None):
    args = build_parser().parse_args(argv)
    regimes = ["mlp", "linearized", "full"] + [f"sd/tau={t}" for t in args.tau]
    runs = {"mlp": args.nn_runs, "linearized": args.linearized_runs}
    extra = {"tau": list(args.tau), "nn_runs": args.nn_runs, "linearized_runs": args.linearized_runs}
    return run_script(
        args, "train_4_regimes_serial", regimes, runs, args.full_steps, "loss_curves_4_regimes.pth", extra, split_runs
    )


if __name__ == "__main__":
    run_main(main)
