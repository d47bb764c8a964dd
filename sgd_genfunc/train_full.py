"""SGD loss curves averaged exactly over all batch samplings ("full" regime, E3), over a grid of (b, alpha, beta).

Example: python sgd_genfunc/train_full.py --N 64 --nu 1.5 --n_steps 1000 --basis hadamard --init diagonal
Runs in float64 with C and P symmetrized every step (DESIGN.md §3.9). Outputs: loss_curves.pth {(b, lr, beta): curve},
metrics.csv, loss.png, summary.json.
"""

from __future__ import annotations

import time

import torch

from common.cli import run_main
from sgd_genfunc import scripting
from sgd_genfunc.theory import batch_noise_factor, full_run


def build_parser():
    p = scripting.make_parser(__doc__.split("\n")[0])
    scripting.add_common_args(p)
    scripting.add_data_args(p)
    k = p.add_argument_group("full dynamics")
    scripting.add_basis_arg(k)
    k.add_argument(
        "--init",
        choices=("rank1", "diagonal"),
        default="rank1",
        help="C_0 = d_0 d_0^T (rank1) or U diag(c) U^T (diagonal)",
    )
    k.add_argument("--form", choices=("eig", "naive"), default="eig", help="eigenbasis (2 matmuls) or naive (5)")
    scripting.add_schedule_args(p)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    device = scripting.setup(args)
    t0 = time.time()
    run = scripting.open_script_run("train_full", args)
    prob = scripting.build_problem(args, device)
    N = prob.lam.shape[0]
    C0 = torch.outer(prob.d0, prob.d0) if args.init == "rank1" else (prob.U * prob.c) @ prob.U.T
    store = scripting.ConfigStore(run, args.resume)
    curves, rows, summary_rows = {}, [], []
    cfgs = scripting.configs(args)
    bar = scripting.progress_bar(args, args.n_steps * len(cfgs), "full steps")
    for c in cfgs:
        key = scripting.config_key(c, args)
        g = batch_noise_factor(N, c["b"], args.replacement)
        val = store.get(key)
        if val is None:
            alpha, beta = scripting.step_schedules(c, args)
            res = full_run(prob.lam, prob.U, C0, args.n_steps, alpha, beta, g, form=args.form, on_steps=bar.update)
            val = {"loss": res.loss.cpu(), "diverged_at": res.diverged_at}
            store.put(key, val)
        curves[key] = val["loss"]
        rows.append((key, "full", 0, val["loss"]))
        summary_rows.append(scripting.sd_summary(key, val["loss"], val["diverged_at"], prob, c, g, 1.0))
    bar.close()
    scripting.save_pth(run, "loss_curves.pth", curves)
    scripting.write_metrics(
        run, rows, ["b", "lr", "beta"] if args.sched == "constant" else ["b", "lr", "a", "b_jacobi"], args.n_steps
    )
    scripting.plot_losses(run, {k: {"full": v} for k, v in curves.items()}, "full (batch-averaged) loss curves")
    run.finish(
        {
            "configs": summary_rows,
            "diverged": [r["key"] for r in summary_rows if r["diverged_at"] >= 0],
            "N": N,
            "form": args.form,
            "wall_time_s": scripting.wall(t0),
        }
    )
    return 0


if __name__ == "__main__":
    run_main(main)
