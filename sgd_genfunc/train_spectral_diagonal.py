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
from sgd_genfunc import scripting as S
from sgd_genfunc.schedules import JacobiScheduleA, JacobiScheduleB
from sgd_genfunc.theory import classify_phase, gamma, sd_run


def build_parser():
    p = S.make_parser(__doc__.split("\n")[0])
    S.add_common_args(p)
    S.add_data_args(p)
    p.add_argument("--tau", type=float, default=1.0, metavar="TAU", help="SD parameter (+1 mean field, -1 Gauss)")
    S.add_schedule_args(p)
    S.add_tracking_args(p)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    device = S.setup(args)
    t0 = time.time()
    run = S.open_script_run("train_spectral_diagonal", args)
    prob = S.build_problem(args, device)
    N = prob.lam.shape[0]
    store = S.ConfigStore(run, args.resume)
    cfgs = S.configs(args)
    curves, diag, summary_rows, rows = {}, {}, [], []
    todo = [c for c in cfgs if store.get(S.config_key(c, args)) is None]
    done = {S.config_key(c, args): store.get(S.config_key(c, args)) for c in cfgs if c not in todo}
    track = args.track_freq if args.track_diag_err else 0
    if todo and args.sched == "constant":
        a = torch.tensor([c["alpha"] for c in todo], dtype=torch.float64, device=device)
        bt = torch.tensor([c["beta"] for c in todo], dtype=torch.float64, device=device)
        g = torch.tensor([gamma(N, c["b"], args.replacement) for c in todo], dtype=torch.float64, device=device)
        res = sd_run(prob.lam, prob.c, args.n_steps, a, bt, g, args.tau, track_every=track)
        for i, c in enumerate(todo):
            val = {"loss": res.loss[i].cpu().clone(), "diverged_at": int(res.diverged_at[i])}
            if track:
                val["diag"] = res.tracked[i].cpu().clone()
            store.put(S.config_key(c, args), val)
            done[S.config_key(c, args)] = val
    for c in todo if args.sched == "jacobi" else []:
        A, B = JacobiScheduleA(c["alpha"], args.a, args.b), JacobiScheduleB(args.a, args.b)
        res = sd_run(prob.lam, prob.c, args.n_steps, A, B, gamma(N, c["b"], args.replacement), args.tau, track)
        val = {"loss": res.loss[0].cpu() if res.loss.ndim > 1 else res.loss.cpu(), "diverged_at": int(res.diverged_at)}
        if track:
            val["diag"] = res.tracked.cpu()
        store.put(S.config_key(c, args), val)
        done[S.config_key(c, args)] = val
    for c in cfgs:
        key = S.config_key(c, args)
        val = done[key]
        curves[key] = val["loss"]
        if track:
            diag[key] = val["diag"]
        rows.append((key, f"sd/tau={args.tau}", 0, val["loss"]))
        g = gamma(N, c["b"], args.replacement)
        summary_rows.append(S.sd_summary(key, val["loss"], val["diverged_at"], prob, c, g, args.tau))
        row = summary_rows[-1]
        print(f"{key}: L_T = {float(val['loss'][-1]):.4g}, alpha_c = {row['alpha_c']:.4g}, U~(1) = {row['U1']:.4g}")
    S.save_pth(run, "loss_curves.pth", curves)
    if track:
        S.save_pth(run, "diag_errs.pth", diag)
    S.write_metrics(
        run, rows, ["b", "lr", "beta"] if args.sched == "constant" else ["b", "lr", "a", "b_jacobi"], args.n_steps
    )
    S.plot_losses(run, {k: {f"SD tau={args.tau}": v} for k, v in curves.items()}, "SD loss curves")
    summary = {
        "configs": summary_rows,
        "diverged": [r["key"] for r in summary_rows if r["diverged_at"] >= 0],
        "N": N,
        "tau": args.tau,
        "wall_time_s": S.wall(t0),
    }
    if args.dataset == "synthetic" and not args.from_saved:
        summary["phase"] = classify_phase(args.nu, args.kappa)
    run.finish(summary)
    return 0


if __name__ == "__main__":
    run_main(main)
