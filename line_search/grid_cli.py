"""The command line shared by run_multiple.py and run_multiple_img.py (DESIGN.md §4.2): flags, presets, output.

Script layer (it parses and prints); the grid itself is line_search.harness.grid. Presets (`--paper`, `--quick`)
fill only the flags the user did not type (common.cli.apply_preset).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from common.cli import (
    ArgumentParser,
    add_run_args,
    apply_preset,
    csv_list,
    positive_float,
    positive_int,
)
from common.runs import open_run
from common.runtime import resolve_device
from line_search.harness.grid import ADAM_GRID, GridSpec, aggregate, expand, run_grid, write_outputs
from line_search.harness.trainer import RunOptions
from line_search.main import console_logging

__all__ = ["QUICK", "build_parser", "grid_main"]

QUICK = {"numexp": 1, "epochs": 1, "adam_lrs": [1e-3], "sgd_lrs": [0.1]}


def speed_up_list(text: str) -> list[bool | None]:
    """`--speed_up`: a comma list of True, False or default (the class default)."""
    out: list[bool | None] = []
    for item in text.split(","):
        item = item.strip()
        if item in ("True", "False"):
            out.append(item == "True")
        elif item.lower() in ("default", "none", ""):
            out.append(None)
        else:
            raise argparse.ArgumentTypeError(f"expected True, False or default (comma-separated), got {item!r}")
    return out


def _optional_in(low: float, high: float, closed_low: bool, what: str) -> Callable[[str], float | None]:
    def parse(text: str) -> float | None:
        if text.strip().lower() in ("default", "none", ""):
            return None
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number or 'default', got {text!r}") from None
        if not ((low <= value if closed_low else low < value) and value < high):
            raise argparse.ArgumentTypeError(
                f"{what} must lie in {'[' if closed_low else '('}{low}, {high}), got {text!r}"
            )
        return value

    parse.__name__ = what
    return parse


def build_parser(script: str, kind: str, defaults: dict[str, Any], extra_flags: dict[str, dict]) -> ArgumentParser:
    """The flags of DESIGN.md §4.2 with this script's offline defaults, plus the shared run flags."""
    p = ArgumentParser(prog=f"{script}.py", description=f"grid of line_search/main.py runs ({kind}; DESIGN.md §4.2)")
    g = p.add_argument_group("grid")
    g.add_argument("--datasets", type=csv_list(str), default=defaults["datasets"], help="datasets (comma list)")
    g.add_argument("--models", type=csv_list(str), default=defaults["models"], help="models, paired with datasets")
    g.add_argument("--optims", type=csv_list(str), default=defaults["optims"], help="optimizers (comma list)")
    g.add_argument("--numexp", type=positive_int, default=defaults["numexp"], help="seeds per configuration")
    g.add_argument("--epochs", type=positive_int, default=defaults["epochs"], help="epochs per run")
    g.add_argument("--batch_size", type=positive_int, default=defaults["batch_size"], help="mini-batch size")
    g.add_argument("--gradient_accumulation_steps", type=positive_int, default=1, help="micro-batches per step")
    g.add_argument("--eval_every", type=positive_int, default=1, help="epochs between full evaluations (last always)")
    g.add_argument("--c", type=_optional_in(0.0, 1.0, False, "c"), default=None, help="Armijo c (default: class's)")
    g.add_argument("--beta", type=_optional_in(0.0, 1.0, True, "beta"), default=None, help="beta_s (default: class's)")
    g.add_argument("--speed_up", type=speed_up_list, default=[None], help="True,False or default (every *sls)")
    g.add_argument("--adam_lrs", type=csv_list(positive_float), default=list(ADAM_GRID), help="Adam learning rates")
    g.add_argument("--sgd_lrs", type=csv_list(positive_float), default=defaults["sgd_lrs"], help="SGD learning rates")
    for flag, kw in extra_flags.items():
        g.add_argument(flag, **kw)
    add_run_args(p)
    for action in p._actions:
        if action.dest == "seed":
            action.help = "run i of a cell uses seed + i"
        if action.dest == "name":
            action.help = "aggregate folder name (default: 'quick' with --quick, else a timestamp)"
    r = p.add_argument_group("grid run")
    r.add_argument("--data_root", default="data", help="dataset files")
    r.add_argument("--resume", action="store_true", help="skip finished runs, resume partial ones")
    r.add_argument("--dry_run", action="store_true", help="list the configs and exit")
    r.add_argument("--quick", action="store_true", help="1 seed, 1 epoch, Adam grid {1e-3}, SGD {0.1} (smoke test)")
    r.add_argument("--paper", action="store_true", help="the paper-scale grid of DESIGN.md §4.2 (GPU)")
    r.add_argument("--wandb", action="store_true", help="wandb logs per run (pip install wandb)")
    return p


def _wandb_factory(enabled: bool):
    if not enabled:
        return None
    try:
        import wandb
    except ImportError:
        from common.cli import UsageError

        raise UsageError("--wandb needs the wandb package: pip install wandb") from None
    return lambda name, cfg: wandb.init(project="line_search", name=name, config=cfg, reinit=True)


def grid_main(
    argv,
    script: str,
    kind: str,
    defaults: dict[str, Any],
    paper_preset: Callable[[argparse.Namespace], dict[str, Any]],
    verdicts_fn: Callable[[dict], dict],
    check_paper: Callable[[argparse.Namespace], None] | None = None,
    extra_flags: dict[str, dict] | None = None,
    extra_config: Callable[[argparse.Namespace], dict[str, Any]] | None = None,
) -> dict:
    """Parse (presets fill only untyped flags), expand, run, aggregate, print one line per cell and the run dir."""
    parser = build_parser(script, kind, defaults, extra_flags or {})
    args = parser.parse_args(argv)
    if args.paper:
        apply_preset(args, paper_preset(args), parser.explicit)
        if check_paper is not None:
            check_paper(args)
    if args.quick:
        apply_preset(args, QUICK, parser.explicit)
    spec = GridSpec(
        datasets=args.datasets, models=args.models, optims=args.optims, numexp=args.numexp, epochs=args.epochs,
        batch_size=args.batch_size, gradient_accumulation_steps=args.gradient_accumulation_steps,
        eval_every=args.eval_every, c=args.c, beta=args.beta, speed_up=args.speed_up, adam_lrs=args.adam_lrs,
        sgd_lrs=args.sgd_lrs, seed=args.seed, extra=extra_config(args) if extra_config else {},
    )  # fmt: skip
    runs = expand(spec, kind)
    if args.dry_run:
        for r in runs:
            print(r.name, json.dumps(r.config))
        print(f"{len(runs)} runs")
        return {"n_runs": len(runs)}
    wandb_init = _wandb_factory(args.wandb)
    console_logging()
    run = open_run("line_search", script, vars(args), name=args.name or ("quick" if args.quick else None),
                   root=args.out)  # fmt: skip
    opts = RunOptions(device=resolve_device(args.device), data_root=args.data_root,
                      show_progress=not args.no_progress, plots=False)  # fmt: skip
    rows = run_grid(runs, run.path, opts, tensorboard=args.tensorboard, resume=args.resume, wandb_init=wandb_init)
    summary = write_outputs(run.path, rows, verdicts_fn(aggregate(rows)))
    for dataset, g in summary["groups"].items():
        for label, v in sorted(g.items()):
            print(f"{dataset:16s} {label:22s} loss {v['final_train_loss_mean']:.5f} acc {v['val_acc_mean']:.4f} "
                  f"fwd/step {v['forwards_per_step_mean']:.2f} (n={v['n']})")  # fmt: skip
    for name, v in (summary["verdicts"] or {}).items():
        if v:
            print(f"verdict {name}: {'pass' if v['pass'] else 'fail'}")
    summary["run_dir"] = str(run.path)
    run.finish(summary)
    return summary
