"""Propulate LR search for forward-gradient experiments (seed 000; DESIGN.md §3.5 and 4).

    mpirun -n <N> python forward_grad/lr_search/propulate_search.py <search_config> <mode> <mode_config>

Global options (the search config) come before the mode: `math` (closed-form functions), `nn` (network training)
or `extract_best` (write the lrs/ tables from finished searches). One process without mpirun is a 1-rank search.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from common.cli import (
    ArgumentParser,
    UsageError,
    announce_resume,
    device_arg,
    nonneg_int,
    positive_float,
    positive_int,
    run_main,
)

DEVICE_HELP = "auto | cpu | cuda | cuda:N (auto: rank r uses cuda:(local_rank mod #GPUs) when CUDA exists)"


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="propulate_search.py", description=__doc__)
    g = parser.add_argument_group("search")
    g.add_argument("--limits", nargs=2, type=float, default=[-6.0, 0.0], metavar=("LO", "HI"),
                   help="search interval of lr_log10 (lr = 10^lr_log10)")  # fmt: skip
    g.add_argument("--num_evaluations", type=positive_int, default=32, metavar="INT",
                   help="total evaluations over all ranks (a re-run evaluates only the remainder)")  # fmt: skip
    g.add_argument("--population_size", type=positive_int, default=8, metavar="INT", help="breeding population")
    g.add_argument("--surrogate_margin", type=float, default=0.5, metavar="M", help="pruning margin m (0: off)")
    g.add_argument("--surrogate_patience", type=float, default=0.05, metavar="P",
                   help="consecutive bad steps before pruning (< 1: fraction of the step/epoch budget)")  # fmt: skip
    g.add_argument("--delete_old_checkpoints", action="store_true", help="restart instead of resuming")
    g.add_argument("--search_root", default="results/forward_grad/lr_search", metavar="DIR", help="run-dir root")
    g.add_argument("--log_level", default="INFO", metavar="LEVEL", help="propulate log level (propulate.log)")
    g = parser.add_argument_group("gradient")
    g.add_argument("--gradient", default="bp", choices=["bp", "fg-mean", "frog"], help="gradient approach")
    g.add_argument("-k", "--num_directions", type=positive_int, default=1, metavar="K", help="tangents (not bp)")
    g.add_argument("--tangent_sampler", default="normal", metavar="NAME", help="tangent sampler of DESIGN.md §3.1")
    g = parser.add_argument_group("run")
    g.add_argument("--seed", type=nonneg_int, default=0, metavar="INT", help="seed (rng = Random(seed + rank))")
    g.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    name_help = (
        "run dir <search_root>/<NAME> instead of <search_root>/<task label> (default: the label; a relative path "
        "without '..'); extract_best only scans label directories (math/..., nns/...)"
    )
    g.add_argument("--name", default=None, metavar="NAME", help=name_help)
    sub = parser.add_subparsers(dest="mode", required=True, metavar="{math,nn,extract_best}")
    m = sub.add_parser("math", help="closed-form functions", formatter_class=parser.formatter_class)
    m.add_argument("--function", required=True, choices=["sphere", "rosenbrock", "styblinski-tang"])
    m.add_argument("-n", type=int, required=True, metavar="N", help="input dimension (>= 1)")
    m.add_argument("--early_stopping_patience", type=nonneg_int, default=100, metavar="INT", help="steps")
    m.add_argument("--max_steps", type=positive_int, default=None, metavar="INT", help="default: per function")
    m.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    m.add_argument("--jvp_backend", default="analytic", choices=["analytic", "vmap", "loop"],  # optimize.MATH_BACKENDS
                   help="analytic: d = V grad f from the closed-form gradient; vmap/loop: torch.func")  # fmt: skip
    m.add_argument("--device", type=device_arg(("cpu",)), default="cpu", metavar="DEV", help="math runs on the CPU")
    n = sub.add_parser("nn", help="neural-network training", formatter_class=parser.formatter_class)
    n.add_argument("--device", type=device_arg(), default="auto", metavar="DEV", help=DEVICE_HELP)
    n.add_argument("--model", required=True, metavar="NAME", help="fc | lenet5 | resnet18 | vit | mlpmixer")
    n.add_argument("--model_width", type=positive_int, default=None, metavar="W", help="fc hidden width")
    n.add_argument("--dataset", default="mnist", metavar="NAME", help="mnist | cifar10 | svhn | mnist5k | digits")
    n.add_argument("--epochs", type=positive_int, default=200, metavar="INT", help="epochs per evaluation")
    n.add_argument("--batch_size", type=positive_int, default=None, metavar="INT", help="default: per dataset")
    n.add_argument("--perturbation_mode", default="node", choices=["node", "weight"])
    n.add_argument("--early_stopping_patience", type=nonneg_int, default=10, metavar="INT", help="epochs")
    n.add_argument("--data_root", default="data", metavar="DIR", help="dataset folder")
    e = sub.add_parser("extract_best", help="write lrs/ tables", formatter_class=parser.formatter_class)
    e.add_argument("--task", required=True, choices=["math", "math_custom_tangents", "fc-nn", "sota-nn"])
    e.add_argument("--outfile", default=None, metavar="CSV", help="default: forward_grad/lrs/<table>")
    e.add_argument("--margin", type=positive_float, default=0.05, metavar="FLOAT", help="candidate margin")
    e.add_argument("--verbose", action="store_true", help="print each pick")
    e.add_argument("--update", action="store_true",
                   help="keep the rows of the existing table whose search is not under --search_root")  # fmt: skip
    return parser


def _device(spec: str) -> str:
    import torch

    from common.runtime import resolve_device

    if spec == "auto" and torch.cuda.is_available():
        local = int(os.environ.get("OMPI_COMM_WORLD_LOCAL_RANK", os.environ.get("LOCAL_RANK", "0")))
        return f"cuda:{local % torch.cuda.device_count()}"
    return str(resolve_device(spec))


def config_from_args(args):
    """SearchConfig of parsed arguments (used by tests to check the seed commands' labels)."""
    from forward_grad.lr_search.search import SearchConfig

    cfg = SearchConfig(
        mode=args.mode,
        limits=tuple(args.limits),
        num_evaluations=args.num_evaluations,
        population_size=args.population_size,
        surrogate_margin=args.surrogate_margin,
        surrogate_patience=args.surrogate_patience,
        delete_old_checkpoints=args.delete_old_checkpoints,
        gradient=args.gradient,
        k=args.num_directions,
        tangent_sampler=args.tangent_sampler,
        seed=args.seed,
        search_root=args.search_root,
        log_level=args.log_level,
        no_progress=args.no_progress,
        name=args.name,
    )
    if args.mode == "math":
        cfg.function, cfg.n = args.function, args.n
        cfg.early_stopping_patience, cfg.max_steps, cfg.dtype = args.early_stopping_patience, args.max_steps, args.dtype
        cfg.jvp_backend = args.jvp_backend
    else:
        cfg.device, cfg.model, cfg.model_width = args.device, args.model, args.model_width
        cfg.dataset, cfg.epochs, cfg.batch_size = args.dataset, args.epochs, args.batch_size
        cfg.perturbation_mode, cfg.early_stopping_patience = args.perturbation_mode, args.early_stopping_patience
        cfg.data_root = args.data_root
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.mode == "extract_best":
        from forward_grad.lr_search.extract import TASKS, extract_best
        from forward_grad.lr_search.get_best_lr import LRS_DIR

        outfile = args.outfile or LRS_DIR / TASKS[args.task][1]
        if args.verbose:
            logging.basicConfig(level=logging.INFO, format="%(message)s")
        rows = extract_best(args.search_root, args.task, outfile, args.margin, args.verbose, update=args.update)
        print(f"{len(rows)} rows -> {outfile}")
        return 0
    cfg = config_from_args(args)
    cfg.validate()
    if args.mode == "nn":
        cfg.device = _device(args.device)
    from mpi4py import MPI

    from forward_grad.lr_search.search import SearchFailedError, run_search

    rank = MPI.COMM_WORLD.rank
    if rank == 0 and not cfg.delete_old_checkpoints:
        from forward_grad.lr_search.search import CKPT, load_population

        done = len(load_population(cfg.run_dir / "checkpoints"))
        if done:
            announce_resume(cfg.run_dir / "checkpoints" / CKPT, f"{done} of {cfg.num_evaluations} evaluations")
    try:
        result = run_search(cfg)
    except UsageError:
        if rank != 0:  # rank 0 reports it (one line); the other ranks exit with the same status silently
            return 2
        raise
    except SearchFailedError as exc:
        if rank == 0:
            print(f"{Path(sys.argv[0]).name}: search failed: {exc} (run dir: {cfg.run_dir})", file=sys.stderr)
        return 1
    if rank == 0:
        print(
            f"best lr {result.best_lr:.4g} (lr_log10 {result.best_lr_log10:.3f}), loss {result.best_loss:.4g}; "
            f"{result.population} evaluations, {result.evaluated} run now"
        )
        print(f"run dir: {result.run_dir}")
    return 0


if __name__ == "__main__":
    run_main(main)
