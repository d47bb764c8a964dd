"""SGD loss curves in the paper's four regimes on one dataset: the real net, sampled linearized dynamics, and the
SD approximation with tau = +1 ("mean_field") and tau = -1 ("gauss"), over a grid of (b, alpha, beta).

Example (seed README): python sgd_genfunc/train_4_regimes.py --lr 1.2 --momentum 0.0 --batch_size 10 100
The kernel is the closed-form NTK of the initialized net (d_0 = f_0 - y); the net trains at lr = alpha * lr_scale,
lr_scale = N / lambda_max(K_emp) (DESIGN.md §3.9).
Outputs: loss_curves_4_regimes.pth {(b, alpha, beta): {mlp, mean_field,
gauss, linearized}}, data.pth {c_diag, eigv, lambda_max, lr_scale}, eig.png, metrics.csv, loss.png, summary.json.
"""

from __future__ import annotations

import time

from common.cli import run_main
from common.runs import progress
from sgd_genfunc import scripting
from sgd_genfunc.problems import fit_power_laws, real_problem
from sgd_genfunc.theory import batch_noise_factor, classify_phase
from sgd_genfunc.training import RegimeOptions, run_regimes

REGIMES = ("mlp", "mean_field", "gauss", "linearized")


def build_parser(doc=__doc__):
    p = scripting.make_parser(doc.split("\n")[0])
    scripting.add_common_args(p)
    scripting.add_data_args(p, scripting.NET_DATASETS, default="digits", synthetic=False)
    scripting.add_lr_scale_arg(p)
    return p


def plot_eig(run, prob, fit) -> None:
    import numpy as np

    from common.plotting import new_figure, use_style

    use_style()
    fig, ax = new_figure(f"NTK spectrum: nu = {fit.nu:.2f}, kappa = {fit.kappa:.2f}", "mode k", "value", ncols=1)
    k = np.arange(1, len(prob.lam) + 1)
    c = prob.c.cpu().numpy()
    ax.loglog(k, prob.lam.cpu().numpy(), label="lambda_k / lambda_max")
    ax.loglog(k, c / c.sum(), label="c_k / sum c", alpha=0.6)
    ax.loglog(k, np.cumsum(c[::-1])[::-1] / c.sum(), label="tail sum_{l>=k} c_l / sum c")
    ax.legend()
    run.save_figure(fig, "eig.png")


def run_script(
    args, script: str, regimes, runs: dict, full_steps: int | None, pth_name: str, extra_data: dict, transform=None
):
    device = scripting.setup(args)
    t0 = time.time()
    run = scripting.open_script_run(script, args)
    prob = real_problem(args.dataset, args.N, args.data_root, args.seed, args.hidden_dim, "mlp")
    N = prob.lam.shape[0]
    scale = args.lr_scale if args.lr_scale is not None else N / prob.lambda_max
    fit = fit_power_laws(prob.lam, prob.c)
    store = scripting.ConfigStore(run, args.resume)
    out, rows, summary_rows = {}, [], []
    bar = None if args.no_progress else (lambda it: progress(it, desc="NN steps", leave=False))
    options = RegimeOptions(
        runs=runs,
        seed=args.seed,
        n_steps=args.n_steps,
        full_steps=full_steps,
        lr_scale=scale,
        replacement=args.replacement,
        device=device,
        progress=bar,
    )
    for c in scripting.configs(args):
        key = scripting.config_key(c)
        res = store.get(key)
        if res is None:
            res = run_regimes(prob, [c], regimes, options)[key]
            store.put(key, res)
        out[key] = res
        for regime, curve in res.items():
            if curve.ndim == 2:
                rows += [(key, regime, r, curve[r]) for r in range(curve.shape[0])]
            else:
                rows.append((key, regime, 0, curve))
        g = batch_noise_factor(N, c["b"], args.replacement)
        row = scripting.sd_summary(key, next(v for v in res.values() if v.ndim == 1), -1, prob, c, g, 1.0)
        row["final_loss"] = {k: scripting.finite(float(v.reshape(-1, v.shape[-1]).mean(0)[-1])) for k, v in res.items()}
        row["diverged_at"] = {k: scripting.first_divergence(v.reshape(-1, v.shape[-1]).mean(0)) for k, v in res.items()}
        summary_rows.append(row)
    scripting.save_pth(run, pth_name, transform(out) if transform else out)
    scripting.save_pth(
        run,
        "data.pth",
        {
            "c_diag": prob.c.cpu(),
            "eigv": prob.lam.cpu() * prob.lambda_max,
            "lambda_max": prob.lambda_max,
            "lr_scale": scale,
            **extra_data,
        },
    )
    scripting.write_metrics(run, rows, ["b", "alpha", "beta"], args.n_steps)
    scripting.plot_losses(run, out, f"{script} on {args.dataset} (N = {N})")
    plot_eig(run, prob, fit)
    diverged = [r["key"] for r in summary_rows if any(v >= 0 for v in r["diverged_at"].values())]
    run.finish(
        {
            "configs": summary_rows,
            "diverged": diverged,
            "N": N,
            "lr_scale": scale,
            "fit": fit._asdict(),
            "phase": classify_phase(fit.nu, fit.kappa),
            "wall_time_s": scripting.wall(t0),
        }
    )
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    return run_script(args, "train_4_regimes", REGIMES, {"mlp": 1, "linearized": 1}, 0, "loss_curves_4_regimes.pth", {})


if __name__ == "__main__":
    run_main(main)
