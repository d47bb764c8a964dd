"""Sampled linearized SGD in function space (E2): R runs at once, over a grid of (b, alpha, beta).

Example: python sgd_genfunc/train_linearized.py --nu 1.5 --kappa 1 --lr 0.5 --batch_size 10 --runs 20
Run r draws batches from stream r of SeedSequence(--seed) (the same stream as NN run r). Outputs: loss_curves.pth
{(b, lr, beta): (R, n_steps+1)}, diag_errs.pth (run mean of (u_k^T d)^2, with --track_diag_err), metrics.csv,
loss.png, summary.json.
"""

from __future__ import annotations

import time

import torch

from common.cli import nonneg_float, positive_int, run_main
from sgd_genfunc import scripting
from sgd_genfunc.theory import batch_noise_factor
from sgd_genfunc.training import ResidualAdam, ResidualSGD, batch_streams, train_linearized


def build_parser():
    p = scripting.make_parser(__doc__.split("\n")[0])
    scripting.add_common_args(p)
    scripting.add_data_args(p)
    k = p.add_argument_group("linearized dynamics")
    scripting.add_basis_arg(k)
    k.add_argument("--opt", choices=("sgd", "adam"), default="sgd", help="residual optimizer")
    k.add_argument("--b1", type=nonneg_float, default=0.9, metavar="B1", help="Adam beta1")
    k.add_argument("--b2", type=nonneg_float, default=0.999, metavar="B2", help="Adam beta2")
    k.add_argument("--eps", type=nonneg_float, default=1e-8, metavar="EPS", help="Adam epsilon")
    k.add_argument("--runs", type=positive_int, default=1, metavar="R", help="independent runs")
    k.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="residual dtype")
    scripting.add_schedule_args(p)
    scripting.add_tracking_args(p)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    device = scripting.setup(args)
    t0 = time.time()
    run = scripting.open_script_run("train_linearized", args)
    prob = scripting.build_problem(args, device)
    dtype = getattr(torch, args.dtype)
    N = prob.lam.shape[0]
    store = scripting.ConfigStore(run, args.resume)
    track = args.track_freq if args.track_diag_err else 0
    curves, diag, rows, summary_rows = {}, {}, [], []
    cfgs = scripting.configs(args)
    bar = scripting.progress_bar(args, len(cfgs), "configs")
    for c in cfgs:
        key = scripting.config_key(c, args)
        val = store.get(key)
        if val is None:
            alpha, beta = scripting.step_schedules(c, args)
            opt = ResidualSGD(alpha, beta) if args.opt == "sgd" else ResidualAdam(alpha, args.b1, args.b2, args.eps)
            res = train_linearized(
                opt,
                prob.d0.to(dtype),
                prob.K_tilde.to(dtype),
                args.n_steps,
                c["b"],
                args.runs,
                batch_streams(args.seed, args.runs),
                track,
                prob.U.to(dtype),
                args.replacement,
            )
            val = {"loss": res.loss.double().cpu(), "diverged_at": res.diverged_at.cpu().tolist()}
            if track:
                val["diag"] = res.tracked.double().cpu()
            store.put(key, val)
        bar.update(1)
        curves[key] = val["loss"]
        if track:
            diag[key] = val["diag"]
        rows += [(key, "linearized", r, val["loss"][r]) for r in range(val["loss"].shape[0])]
        g = batch_noise_factor(N, c["b"], args.replacement)
        row = scripting.sd_summary(key, val["loss"].mean(0), max(val["diverged_at"]), prob, c, g, 1.0)
        row["diverged_runs"] = sum(d >= 0 for d in val["diverged_at"])
        summary_rows.append(row)
    bar.close()
    scripting.save_pth(run, "loss_curves.pth", curves)
    if track:
        scripting.save_pth(run, "diag_errs.pth", diag)
    scripting.write_metrics(
        run, rows, ["b", "lr", "beta"] if args.sched == "constant" else ["b", "lr", "a", "b_jacobi"], args.n_steps
    )
    scripting.plot_losses(run, {k: {"linearized (run mean)": v} for k, v in curves.items()}, "linearized loss curves")
    run.finish(
        {
            "configs": summary_rows,
            "diverged": [r["key"] for r in summary_rows if r["diverged_runs"]],
            "N": N,
            "runs": args.runs,
            "wall_time_s": scripting.wall(t0),
        }
    )
    return 0


if __name__ == "__main__":
    run_main(main)
