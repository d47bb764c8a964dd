"""SGD loss curves in the Spectrally Diagonal approximation (E4) with any tau, over a grid of (b, alpha, beta).

Example (seed README): python sgd_genfunc/train_spectral_diagonal.py --nu 1.5 --kappa 4 --lr 0.1 0.2 \
    --momentum -0.2 0.0 0.2 --batch_size 1
Outputs: loss_curves.pth {(b, lr, beta) or (b, lr, a, b): curve}, diag_errs.pth (with --track_diag_err),
metrics.csv, loss.png, summary.json.
"""

from __future__ import annotations

import time

import torch

from common.cli import run_main
from sgd_genfunc import scripting
from sgd_genfunc.theory import batch_noise_factor, classify_phase, sd_run


def build_parser():
    p = scripting.make_parser(__doc__.split("\n")[0])
    scripting.add_common_args(p)
    scripting.add_data_args(p)
    p.add_argument("--tau", type=float, default=1.0, metavar="TAU", help="SD parameter (+1 mean field, -1 Gauss)")
    scripting.add_schedule_args(p)
    scripting.add_tracking_args(p)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    device = scripting.setup(args)
    t0 = time.time()
    run = scripting.open_script_run("train_spectral_diagonal", args)
    prob = scripting.build_problem(args, device)
    N = prob.lam.shape[0]
    store = scripting.ConfigStore(run, args.resume)
    cfgs = scripting.configs(args)
    curves, diag, summary_rows, rows = {}, {}, [], []
    todo = [c for c in cfgs if store.get(scripting.config_key(c, args)) is None]
    done = {scripting.config_key(c, args): store.get(scripting.config_key(c, args)) for c in cfgs if c not in todo}
    track = args.track_freq if args.track_diag_err else 0
    # constant configs advance together in one vectorized run; each Jacobi config is its own scheduled run
    groups = [todo] if args.sched == "constant" else [[c] for c in todo]
    with scripting.progress_bar(args, args.n_steps * len(groups), "SD steps") as bar:
        for group in groups:
            alpha, beta = scripting.step_schedules(group[0], args)
            if args.sched == "constant":
                alpha = torch.tensor([c["alpha"] for c in group], dtype=torch.float64, device=device)
                beta = torch.tensor([c["beta"] for c in group], dtype=torch.float64, device=device)
            g = torch.tensor(
                [batch_noise_factor(N, c["b"], args.replacement) for c in group], dtype=torch.float64, device=device
            )
            g = g if args.sched == "constant" else float(g[0])
            res = sd_run(prob.lam, prob.c, args.n_steps, alpha, beta, g, args.tau, track, on_steps=bar.update)
            loss, div = res.loss.reshape(-1, args.n_steps + 1), res.diverged_at.reshape(-1)
            for i, c in enumerate(group):
                val = {"loss": loss[i].cpu().clone(), "diverged_at": int(div[i])}
                if track:
                    val["diag"] = res.tracked.reshape(-1, *res.tracked.shape[-2:])[i].cpu().clone()
                store.put(scripting.config_key(c, args), val)
                done[scripting.config_key(c, args)] = val
    for c in cfgs:
        key = scripting.config_key(c, args)
        val = done[key]
        curves[key] = val["loss"]
        if track:
            diag[key] = val["diag"]
        rows.append((key, f"sd/tau={args.tau}", 0, val["loss"]))
        g = batch_noise_factor(N, c["b"], args.replacement)
        summary_rows.append(scripting.sd_summary(key, val["loss"], val["diverged_at"], prob, c, g, args.tau))
        row = summary_rows[-1]
        print(f"{key}: L_T = {float(val['loss'][-1]):.4g}, alpha_c = {row['alpha_c']:.4g}, U~(1) = {row['U1']:.4g}")
    scripting.save_pth(run, "loss_curves.pth", curves)
    if track:
        scripting.save_pth(run, "diag_errs.pth", diag)
    scripting.write_metrics(
        run, rows, ["b", "lr", "beta"] if args.sched == "constant" else ["b", "lr", "a", "b_jacobi"], args.n_steps
    )
    scripting.plot_losses(run, {k: {f"SD tau={args.tau}": v} for k, v in curves.items()}, "SD loss curves")
    summary = {
        "configs": summary_rows,
        "diverged": [r["key"] for r in summary_rows if r["diverged_at"] >= 0],
        "N": N,
        "tau": args.tau,
        "wall_time_s": scripting.wall(t0),
    }
    if args.dataset == "synthetic" and not args.from_saved:
        summary["phase"] = classify_phase(args.nu, args.kappa)
    run.finish(summary)
    return 0


if __name__ == "__main__":
    run_main(main)
