"""Mini-batch SGD of the real network (one-hidden-layer MLP in NTK parametrization, or cnn/resnet18 from common).

Example (seed README): python sgd_genfunc/train_nn.py --dataset mnist --N 10000 --lr 1.2 --batch_size 1 10 100 \
    --lr_scale 0.85 --val_frequency 100
--lr is alpha in (E2) units: torch SGD runs at lr = alpha * lr_scale, lr_scale = N / lambda_max(K_emp) by default
(DESIGN.md §3.9; `--lr_scale 1` gives the reference's lr = alpha). `--sched jacobi` runs the Jacobi (non-stationary
heavy-ball) schedules alpha_n * lr_scale, beta_n with --lr as the base step (--a, --b as in the theory scripts).
Outputs: histories.pth {(b, lr, beta) or (b, lr, a, b): {train/loss, train/acc, val/loss, val/acc}}, metrics.csv,
loss.png, summary.json; checkpoints every --ckpt_every steps.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch

from common.checkpoint import load_checkpoint
from common.cli import UsageError, announce_resume, nonneg_int, positive_int, run_main
from common.runs import progress
from sgd_genfunc import scripting
from sgd_genfunc.ntk import NTKTwoLayerMLP, empirical_ntk, lr_scale, ntk_mlp1
from sgd_genfunc.problems import regression_data
from sgd_genfunc.training import NNTrainOptions, batch_streams, train_nn

IMAGE_SHAPES = {
    "digits": (1, 8, 8),
    "mnist5k": (1, 28, 28),
    "mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "olivetti_faces": (1, 64, 64),
}


def build_parser():
    p = scripting.make_parser(__doc__.split("\n")[0])
    scripting.add_common_args(p)
    scripting.add_data_args(p, scripting.NET_DATASETS, default="digits", synthetic=False)
    m = p.add_argument_group("model and optimizer")
    m.add_argument("--model", choices=("mlp", "cnn", "resnet18"), default="mlp", help="network")
    m.add_argument("--opt", choices=("sgd",), default="sgd", help="optimizer (torch.optim.SGD with momentum)")
    scripting.add_lr_scale_arg(m)
    m.add_argument("--n_val", type=nonneg_int, default=1000, metavar="N", help="validation points from the complement")
    scripting.add_schedule_args(p)
    lg = p.add_argument_group("logging")
    lg.add_argument("--verbose", action="store_true", help="print the final losses of every config")
    lg.add_argument("--log_frequency", type=positive_int, default=1, metavar="K", help="train-loss period (steps)")
    lg.add_argument("--val_frequency", type=positive_int, default=100, metavar="K", help="validation period (steps)")
    lg.add_argument("--ckpt_every", type=positive_int, default=1000, metavar="K", help="checkpoint period (steps)")
    return p


def build_model(args, X):
    torch.manual_seed(args.seed)
    if args.model == "mlp":
        return NTKTwoLayerMLP(X.shape[1], args.hidden_dim).double()
    if args.dataset not in IMAGE_SHAPES:
        raise UsageError(f"--model {args.model} needs an image dataset, got {args.dataset!r}")
    from common.models import get_model

    ch, h, _ = IMAGE_SHAPES[args.dataset]
    if args.model == "cnn":
        net = get_model("cnn", in_channels=ch, num_classes=1, image_size=h)
    else:
        net = get_model("resnet18", num_classes=1, in_channels=ch)
    shape = IMAGE_SHAPES[args.dataset]
    return torch.nn.Sequential(torch.nn.Unflatten(1, shape), net, torch.nn.Flatten(0)).double()


def train_config(args, cfg: dict, key: tuple, model0, data, scale: float, device, ckpt: Path) -> dict:
    """One (b, alpha, beta) config: a fresh copy of the initial net, batch stream 0, torch SGD at lr = alpha * scale
    (or the Jacobi schedules alpha_n * scale, beta_n with --sched jacobi)."""
    model = copy.deepcopy(model0)
    opt = torch.optim.SGD(model.parameters(), lr=cfg["alpha"] * scale, momentum=cfg["beta"])
    schedule = None
    if args.sched == "jacobi":
        alpha_fn, beta_fn = scripting.step_schedules(cfg, args)
        schedule = (lambda n: alpha_fn(n) * scale, beta_fn)
    options = NNTrainOptions(
        labels=data.labels,
        val_labels=data.labels_val,
        mean_y=data.mean_y,
        std_y=data.std_y,
        schedule=schedule,
        ckpt_path=ckpt,
        ckpt_every=args.ckpt_every,
        progress=None if args.no_progress else (lambda it: progress(it, desc=str(key), leave=False)),
    )
    X_val = data.X_val.to(device) if data.X_val is not None else None
    y_val = data.y_val.to(device) if data.y_val is not None else None
    X, y, rng = data.X.to(device), data.y.to(device), batch_streams(args.seed, 1)[0]
    return train_nn(
        model, opt, X, y, args.n_steps, cfg["b"], rng, X_val, y_val, args.log_frequency, args.val_frequency, options
    )


def main(argv=None):
    args = build_parser().parse_args(argv)
    device = scripting.setup(args)
    t0 = time.time()
    run = scripting.open_script_run("train_nn", args)
    data = regression_data(args.dataset, args.N, args.data_root, args.seed, n_val=args.n_val)
    model0 = build_model(args, data.X).to(device)
    scale = args.lr_scale
    if scale is None:
        X = data.X.to(device)
        scale = lr_scale(ntk_mlp1(model0, X) if args.model == "mlp" else empirical_ntk(model0, X))
    store = scripting.ConfigStore(run, args.resume)
    hists, curves, rows, summary_rows = {}, {}, [], []
    for c in scripting.configs(args):
        key = scripting.config_key(c, args)
        val = store.get(key)
        if val is None:
            ckpt = Path(run.path) / "configs" / ("nn_" + "_".join(map(str, key)) + ".ckpt")
            if not args.resume and ckpt.exists():
                ckpt.unlink()
            elif ckpt.exists():
                announce_resume(ckpt, f"step {load_checkpoint(ckpt)['step']} of config {key}")
            val = train_config(args, c, key, model0, data, scale, device, ckpt)
            store.put(key, val)
        hists[key] = {k: val[k] for k in ("train/loss", "train/acc", "val/loss", "val/acc")}
        curves[key] = val["train/loss"]
        rows.append((key, args.model, 0, val["train/loss"]))
        summary_rows.append(
            {
                "key": list(key),
                "final_loss": scripting.finite(float(val["train/loss"][-1])),
                "final_val_loss": scripting.finite(float(val["val/loss"][-1])) if len(val["val/loss"]) else None,
                "final_val_acc": scripting.finite(float(val["val/acc"][-1])) if len(val["val/acc"]) else None,
                "diverged_at": int(val["diverged_at"]),
            }
        )
        if args.verbose:
            print(f"{key}: train loss {float(val['train/loss'][-1]):.5g}")
    scripting.save_pth(run, "histories.pth", hists)
    key_names = ["b", "lr", "beta"] if args.sched == "constant" else ["b", "lr", "a", "b_jacobi"]
    logged = args.n_steps if args.log_frequency == 1 else len(rows[0][3]) - 1
    scripting.write_metrics(run, rows, key_names, logged)
    scripting.plot_losses(run, {k: {f"{args.model} train": v} for k, v in curves.items()}, "network train loss")
    run.finish(
        {
            "configs": summary_rows,
            "diverged": [r["key"] for r in summary_rows if r["diverged_at"] >= 0],
            "N": args.N,
            "model": args.model,
            "sched": args.sched,
            "lr_scale": scale,
            "wall_time_s": scripting.wall(t0),
        }
    )
    return 0


if __name__ == "__main__":
    run_main(main)
