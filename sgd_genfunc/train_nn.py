"""Mini-batch SGD of the real network (one-hidden-layer MLP in NTK parametrization, or cnn/resnet18 from common).

Example (seed README): python sgd_genfunc/train_nn.py --dataset mnist --N 10000 --lr 1.2 --batch_size 1 10 100 \
    --lr_scale 0.85 --val_frequency 100
--lr is alpha in (E2) units: torch SGD runs at lr = alpha * lr_scale, lr_scale = N / lambda_max(K_emp) by default
(spec 3.9; `--lr_scale 1` gives the reference's lr = alpha). Outputs: histories.pth {(b, lr, beta): {train/loss,
train/acc, val/loss, val/acc}}, metrics.csv, loss.png, summary.json; checkpoints every --ckpt_every steps.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch

from common.cli import UsageError, positive_float, positive_int, run_main
from common.runs import progress
from sgd_genfunc import scripting as S
from sgd_genfunc.ntk import NTKTwoLayerMLP, empirical_ntk, lr_scale, ntk_mlp1
from sgd_genfunc.problems import regression_data
from sgd_genfunc.training import batch_streams, train_nn

IMAGE_SHAPES = {
    "digits": (1, 8, 8),
    "mnist5k": (1, 28, 28),
    "mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "olivetti_faces": (1, 64, 64),
}


def build_parser():
    p = S.make_parser(__doc__.split("\n")[0])
    S.add_common_args(p)
    S.add_data_args(p, S.NET_DATASETS, default="digits", synthetic=False)
    m = p.add_argument_group("model and optimizer")
    m.add_argument("--model", choices=("mlp", "cnn", "resnet18"), default="mlp", help="network")
    m.add_argument("--opt", choices=("sgd",), default="sgd", help="optimizer (torch.optim.SGD with momentum)")
    m.add_argument(
        "--lr_scale",
        type=positive_float,
        default=None,
        metavar="S",
        help="torch lr = alpha * S (default N / lambda_max of the initial empirical NTK)",
    )
    m.add_argument("--n_val", type=int, default=1000, metavar="N", help="validation points from the complement")
    m.add_argument("--sched", choices=("constant",), default="constant", help="constant (Jacobi: theory scripts)")
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


def main(argv=None):
    args = build_parser().parse_args(argv)
    device = S.setup(args)
    t0 = time.time()
    run = S.open_script_run("train_nn", args)
    data = regression_data(args.dataset, args.N, args.data_root, args.seed, n_val=args.n_val)
    X, y = data.X.to(device), data.y.to(device)
    model0 = build_model(args, data.X).to(device)
    scale = args.lr_scale
    if scale is None:
        K = ntk_mlp1(model0, X) if args.model == "mlp" else empirical_ntk(model0, X)
        scale = lr_scale(K)
    store = S.ConfigStore(run, args.resume)
    hists, curves, rows, summary_rows = {}, {}, [], []
    for c in S.configs(args):
        key = S.config_key(c, args)
        val = store.get(key)
        if val is None:
            ckpt = Path(run.path) / "configs" / ("nn_" + "_".join(map(str, key)) + ".ckpt")
            if not args.resume and ckpt.exists():
                ckpt.unlink()
            model = copy.deepcopy(model0)
            opt = torch.optim.SGD(model.parameters(), lr=c["alpha"] * scale, momentum=c["beta"])
            sched = None
            rng = batch_streams(args.seed, 1)[0]
            bar = None if args.no_progress else (lambda it, k=key: progress(it, desc=str(k)))
            val = train_nn(
                model,
                opt,
                X,
                y,
                args.n_steps,
                c["b"],
                rng,
                data.X_val.to(device) if data.X_val is not None else None,
                data.y_val.to(device) if data.y_val is not None else None,
                args.log_frequency,
                args.val_frequency,
                data.labels,
                data.labels_val,
                data.mean_y,
                data.std_y,
                sched,
                ckpt,
                args.ckpt_every,
                bar,
            )
            store.put(key, val)
        hists[key] = {k: val[k] for k in ("train/loss", "train/acc", "val/loss", "val/acc")}
        curves[key] = val["train/loss"]
        rows.append((key, "mlp", 0, val["train/loss"]))
        summary_rows.append(
            {
                "key": list(key),
                "final_loss": S.finite(float(val["train/loss"][-1])),
                "final_val_loss": S.finite(float(val["val/loss"][-1])) if len(val["val/loss"]) else None,
                "final_val_acc": S.finite(float(val["val/acc"][-1])) if len(val["val/acc"]) else None,
                "diverged_at": int(val["diverged_at"]),
            }
        )
        if args.verbose:
            print(f"{key}: train loss {float(val['train/loss'][-1]):.5g}")
    S.save_pth(run, "histories.pth", hists)
    S.write_metrics(run, rows, ["b", "lr", "beta"], args.n_steps if args.log_frequency == 1 else len(rows[0][3]) - 1)
    S.plot_losses(run, {k: {"NN train": v} for k, v in curves.items()}, "network train loss")
    run.finish(
        {
            "configs": summary_rows,
            "diverged": [r["key"] for r in summary_rows if r["diverged_at"] >= 0],
            "N": args.N,
            "lr_scale": scale,
            "wall_time_s": S.wall(t0),
        }
    )
    return 0


if __name__ == "__main__":
    run_main(main)
