"""Train a network with backpropagation or (multi-tangent) forward gradients (paper sec. 4.4/4.5; DESIGN.md §4).

Defaults: --configfile INI < command line (both recorded in config.json). Each epoch writes a metrics.csv row
(train/val/test loss and accuracy, lr, seconds) and an atomic checkpoint (model, optimizer, data and tangent RNG
states, epoch); --resume continues from it. Epoch 0 is evaluation only; a loss >= 10 or NaN stops (diverged).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from common.cli import (
    ArgumentParser,
    MissingInputError,
    UsageError,
    add_run_args,
    announce_resume,
    nonneg_int,
    positive_int,
    run_main,
)

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "defaults.ini"
SECTION_OF = {"mnist": "MNIST", "fg": "FG", "frog": "FROG", "fc": "FC", "vit": "VIT", "mlpmixer": "MLPMIXER"}
SECTION_OF["plain_sgd"] = "PLAIN_SGD"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="train.py", description=__doc__)
    g = p.add_argument_group("data and model")
    g.add_argument("--dataset", default="mnist", choices=["mnist", "cifar10", "svhn", "mnist5k", "digits"])
    g.add_argument("--data_root", default="data", metavar="DIR", help="dataset folder")
    g.add_argument("--model", default="fc", choices=["fc", "lenet5", "resnet18", "vit", "mlpmixer"])
    g.add_argument("--model_hidden_size", type=positive_int, default=1024, metavar="W", help="fc width")
    g.add_argument("--vit_layers", type=positive_int, default=6, metavar="INT")
    g.add_argument("--vit_hidden", type=positive_int, default=256, metavar="INT")
    g.add_argument("--vit_mlp", type=positive_int, default=512, metavar="INT")
    g.add_argument("--vit_heads", type=positive_int, default=4, metavar="INT")
    g.add_argument("--mixer_hidden", type=positive_int, default=512, metavar="INT")
    g.add_argument("--mixer_blocks", type=positive_int, default=8, metavar="INT")
    g.add_argument("--print_model", action="store_true", help="print the block list")
    g = p.add_argument_group("gradient")
    g.add_argument("--gradient_computation", default="bp", choices=["bp", "fg", "frog"])
    g.add_argument("--perturbation_mode", default="node", choices=["node", "weight"])
    g.add_argument("--num_directions", type=positive_int, default=1, metavar="K", help="tangents per step")
    g.add_argument("--aggregation", default=None, metavar="AGG", help="default: mean for fg, frog for frog")
    g.add_argument("--tangent_sampler", default="normal", metavar="NAME", help="sampler of DESIGN.md §3.1")
    g.add_argument("--normalize_tangents", action="store_true")
    g.add_argument("--scaling_correction", action="store_true")
    g.add_argument("--frog_mode", default="qr", choices=["qr", "solve"])
    g.add_argument("--jvp_backend", default="vmap", choices=["vmap", "loop"])
    g.add_argument("--jvp_chunk_size", type=positive_int, default=None, metavar="INT", help="vmap lanes per call")
    g.add_argument("--track_additional_stats", action="store_true",
                   help="cos to the BP gradient per epoch's first batch (costs a backward)")  # fmt: skip
    g = p.add_argument_group("optimization")
    g.add_argument("--optimizer", default="plain_sgd", choices=["plain_sgd", "plain_adam"])
    g.add_argument("--initial_lr", default="0.1", metavar="FLOAT|table", help="LR, or `table` (lrs/*.csv)")
    g.add_argument("--epochs", type=positive_int, default=200, metavar="INT")
    g.add_argument("--batch_size", type=positive_int, default=None, metavar="INT", help="default: per dataset")
    g.add_argument("--early_stopping_patience", type=nonneg_int, default=10, metavar="INT", help="epochs")
    g.add_argument("--no_val_set", action="store_true", help="train on train + validation")
    g.add_argument("--max_batches", type=positive_int, default=None, metavar="INT", help="cap per epoch (smoke)")
    g = p.add_argument_group("bookkeeping")
    g.add_argument("--configfile", default=str(DEFAULT_CONFIG), metavar="INI", help="defaults file")
    g.add_argument("--experiment_id", default="train", metavar="NAME", help="experiment folder")
    g.add_argument("--output_name", default=None, metavar="NAME", help="alias of --name")
    g.add_argument("--resume", action="store_true", help="continue from the run dir's checkpoint")
    g.add_argument("--deterministic", action="store_true", help="torch.use_deterministic_algorithms")
    g.add_argument("--profile", action="store_true", help="print a torch.profiler table of the first epoch")
    add_run_args(p)
    return p


def parse_args(argv):
    """Two-stage parsing: --configfile's sections (common.config.read_ini: [DEFAULT], then the dataset, gradient,
    model and optimizer sections) become defaults, the command line overrides them. INI values pass through the
    option's own type, so they are validated like typed flags."""
    from common.config import read_ini

    parser = build_parser()
    first, _ = parser.parse_known_args(argv)
    wanted = [SECTION_OF[v] for v in (first.dataset, first.gradient_computation, first.model, first.optimizer)
              if v in SECTION_OF]  # fmt: skip
    actions = {a.dest: a for a in parser._actions}
    defaults = {}
    for key, value in read_ini(first.configfile, wanted, missing_ok=True).items():
        if key not in actions:
            raise UsageError(f"{first.configfile}: unknown key {key!r}")
        action = actions[key]
        try:
            defaults[key] = action.type(str(value)) if action.type else value
        except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
            raise UsageError(f"{first.configfile}: {key} = {value!r}: {exc}") from None
    parser.set_defaults(**defaults)
    return parser.parse_args(argv)


def initial_lr(args) -> float:
    """--initial_lr as a number, or `table`: the searched LR of lrs/fc_nns.csv or lrs/sota_nns.csv."""
    from forward_grad.lr_search.get_best_lr import get_nn_lr

    if args.initial_lr == "table":
        gradient_name = {"bp": "bp", "fg": "fg-mean", "frog": "frog"}[args.gradient_computation]
        width = args.model_hidden_size if args.model == "fc" else None
        return get_nn_lr(args.model, width, args.dataset, gradient_name, args.num_directions)
    try:
        return float(args.initial_lr)
    except ValueError:
        raise UsageError(f"--initial_lr must be a number or `table`, got {args.initial_lr!r}") from None


def train_config(args, lr: float, device: str):
    """The Trainer's TrainConfig from parsed arguments (model size overrides for vit and mlpmixer)."""
    from forward_grad.nn_training.trainer import TrainConfig

    model_kw = {}
    if args.model == "vit":
        model_kw = dict(num_layers=args.vit_layers, hidden_dim=args.vit_hidden, mlp_dim=args.vit_mlp,
                        num_heads=args.vit_heads)  # fmt: skip
    elif args.model == "mlpmixer":
        model_kw = dict(hidden=args.mixer_hidden, num_blocks=args.mixer_blocks,
                        token_mlp=max(1, args.mixer_hidden // 2), channel_mlp=4 * args.mixer_hidden)  # fmt: skip
    return TrainConfig(
        dataset=args.dataset, model=args.model, model_width=args.model_hidden_size, model_kw=model_kw,
        gradient=args.gradient_computation, perturbation_mode=args.perturbation_mode,
        num_directions=args.num_directions, aggregation=args.aggregation, tangent_sampler=args.tangent_sampler,
        normalize_tangents=args.normalize_tangents, scaling_correction=args.scaling_correction,
        frog_mode=args.frog_mode, jvp_backend=args.jvp_backend, jvp_chunk_size=args.jvp_chunk_size,
        optimizer=args.optimizer, lr=lr, epochs=args.epochs, batch_size=args.batch_size,
        early_stopping_patience=args.early_stopping_patience, no_val_set=args.no_val_set, seed=args.seed,
        device=device, data_root=args.data_root, max_batches=args.max_batches,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    from common.checkpoint import load_checkpoint, save_checkpoint
    from common.runs import open_run, progress
    from common.runtime import resolve_device, set_threads
    from forward_grad.nn_training.trainer import Trainer

    args = parse_args(argv)
    device = resolve_device(args.device)
    set_threads()
    if args.deterministic:
        torch.use_deterministic_algorithms(True)
    lr = initial_lr(args)
    cfg = train_config(args, lr, str(device))
    name = args.name or args.output_name
    if args.resume and not name:
        raise UsageError("--resume needs --name (the run directory to continue)")
    torch.manual_seed(args.seed)
    trainer = Trainer(cfg)
    if args.print_model:
        print(trainer.model)
    run = open_run(
        "forward_grad",
        args.experiment_id,
        {**vars(args), "lr": lr},
        name=name,
        root=args.out,
        tensorboard=args.tensorboard,
    )
    ckpt = run.path / "checkpoint.pt"
    if args.resume:
        if not ckpt.exists():
            raise MissingInputError(f"--resume: no checkpoint at {ckpt}")
        trainer.load_state_dict(load_checkpoint(ckpt))
        announce_resume(ckpt, f"epoch {trainer.epoch}")
    bar = progress(total=args.epochs, initial=trainer.epoch, desc="epochs", disable=args.no_progress)
    start = time.time()
    last = trainer.history[-1] if trainer.history else {}
    profiler = None
    if args.profile:
        profiler = torch.profiler.profile()
        profiler.__enter__()
    for row in trainer.run():
        if profiler is not None and row["epoch"] == 1:
            profiler.__exit__(None, None, None)
            print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
            profiler = None
        # identical keys in every row, so a resumed run appends to the same metrics.csv header
        cos = _cos_to_bp(trainer) if args.track_additional_stats and row["epoch"] > 0 else float("nan")
        run.log(step=row["epoch"], **{**row, "cos_to_bp": cos, "stop_reason": row.get("stop_reason", "")})
        save_checkpoint(ckpt, trainer.state_dict())
        if row["epoch"] > 0:
            bar.update(1)
        last = row
    bar.close()
    run.finish({
        "final_epoch": last.get("epoch", trainer.epoch), "stop_reason": last.get("stop_reason", "max_epochs"),
        "lr": lr, "test_acc": last.get("test_acc"), "test_loss": last.get("test_loss"),
        "val_loss": last.get("val_loss"), "train_loss": last.get("train_loss"),
        "seconds": round(time.time() - start, 3),
        "seconds_per_epoch": (sum(r["seconds"] for r in trainer.history) / max(1, len(trainer.history) - 1)),
    })  # fmt: skip
    return 0


def _cos_to_bp(trainer) -> float:
    """cos(g_hat, grad) on one training batch (BP oracle; costs a backward). Restores .grad afterwards."""
    import torch
    import torch.nn.functional as F

    if trainer.estimator is None:
        return 1.0
    X, y = trainer.splits.train
    xb, yb = X[: trainer.batch_size].to(trainer.device), y[: trainer.batch_size].to(trainer.device)
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    state = trainer.estimator.generator.get_state()
    trainer.estimator.step(trainer.model, (xb, yb))
    trainer.estimator.generator.set_state(state)
    est = torch.cat([p.grad.reshape(-1) for p in params])
    loss = F.cross_entropy(trainer.model(xb), yb)
    true = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])
    return float(est @ true / (est.norm() * true.norm()).clamp_min(1e-30))


if __name__ == "__main__":
    run_main(main)
