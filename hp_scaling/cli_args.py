"""Argument blocks and input checks shared by the hp_scaling scripts (main.py, lr_sweep.py, nb201_compare.py).

Scripts own argparse; this module gives them one definition of the flags they share (model/init flags, the SGD
recipe, seeds) and turns the library's input errors (:class:`~hp_scaling.dags.InvalidCodeError`,
:class:`~hp_scaling.scaling.NoPathError`) into :class:`common.cli.UsageError` so that bad input is exit 2
(DESIGN.md §6). Nothing here prints.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from common.cli import MissingInputError, UsageError, auto_or, device_arg, nonneg_float, nonneg_int, positive_int
from hp_scaling.dags import InvalidCodeError, arch_str_to_code, parse_code
from hp_scaling.scaling import INITS, NoPathError, path_sum
from hp_scaling.train import TrainConfig

__all__ = [
    "add_data_args",
    "add_model_args",
    "add_sgd_args",
    "add_seed_args",
    "check_sgd",
    "checked_codes",
    "depth_offset_arg",
    "gpu_arg",
    "read_reference_csv",
    "seeds_of",
    "sgd_config",
    "skipped_line",
    "split_by_path",
]


depth_offset_arg = auto_or(positive_int)
"""argparse type for ``--depth_offset``: ``auto`` or a positive integer (L_p = k_p + offset, eq. 8)."""


def gpu_arg(text: str) -> str:
    """argparse type for the seed's ``--gpu N``: validated exactly as ``--device cuda:N`` (exit 2 if unavailable)."""
    index = nonneg_int(text)
    return device_arg()(f"cuda:{index}")


def add_data_args(group: argparse._ArgumentGroup, dataset: str) -> None:
    """--data (dataset root) and --dataset (a common.data image set) of every hp_scaling script."""
    group.add_argument("--data", default="data", metavar="DIR", help="dataset root")
    group.add_argument(
        "--dataset",
        default=dataset,
        metavar="NAME",
        help="cifar10, cifar100, imagenet16_120, digits, mnist5k (or another common.data image set)",
    )


def add_model_args(group: argparse._ArgumentGroup) -> None:
    """Model and eq. 4/8 flags of main.py and lr_sweep.py: --init --block --act --bn --depth_offset ..."""
    group.add_argument("--init", choices=INITS, default="paper", help="init convention (DESIGN.md §3)")
    group.add_argument("--block", choices=["auto", "pre", "post"], default="auto", help="block order")
    group.add_argument("--act", choices=["relu", "gelu"], default="relu", help="activation")
    group.add_argument("--bn", action="store_true", help="BatchNorm after each Linear/Conv edge (mlp/cnn)")
    group.add_argument(
        "--depth_offset", type=depth_offset_arg, default="auto", metavar="auto|INT", help="L_p = k_p + offset (eq. 8)"
    )
    group.add_argument("--all_skip", choices=["count", "reference"], default="count", help="all-skip DAG rule")
    group.add_argument("--kernel_base", type=positive_int, default=3, metavar="Q", help="kernel of the base net")


def add_sgd_args(
    group: argparse._ArgumentGroup,
    *,
    epochs: int,
    batch_size: int,
    momentum: float,
    weight_decay: float,
    toggles_on: bool,
) -> None:
    """The SGD recipe of main.py and nb201_compare.py: epochs, steps, batch, momentum, decay, Nesterov, cosine, aug.

    ``toggles_on=False`` (main.py, the seed's flags): --nesterov/--decreasing_lr/--aug are off unless given.
    ``toggles_on=True`` (nb201_compare.py, the NB201 recipe): they are on, with --no_nesterov etc. to turn off.
    """
    group.add_argument("--epochs", type=positive_int, default=epochs, metavar="INT", help="epochs")
    group.add_argument("--steps", type=positive_int, default=None, metavar="INT", help="1 epoch, stop after this many")
    group.add_argument("--batch_size", type=positive_int, default=batch_size, metavar="INT", help="minibatch size")
    group.add_argument("--momentum", type=nonneg_float, default=momentum, metavar="MU", help="SGD momentum")
    group.add_argument("--weight_decay", type=nonneg_float, default=weight_decay, metavar="WD", help="weight decay")
    helps = {
        "nesterov": "Nesterov momentum (needs --momentum > 0)",
        "decreasing_lr": "cosine decay per epoch (T_max = epochs)",
        "aug": "flip + padded crop (CIFAR pad 4, ImageNet16 pad 2)",
    }
    for name, text in helps.items():
        if toggles_on:
            group.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=True, help=text)
        else:
            group.add_argument(f"--{name}", action="store_true", help=text)


def add_seed_args(group: argparse._ArgumentGroup, repeat: int = 1) -> None:
    """--repeat (seeds --seed .. --seed + repeat - 1); --seed itself comes from common.cli.add_run_args."""
    group.add_argument("--repeat", type=positive_int, default=repeat, metavar="INT", help="seeds seed..seed+repeat-1")


def sgd_config(args: argparse.Namespace, *, lr: float, seed: int, aug_pad: int, **extra) -> TrainConfig:
    """The TrainConfig of the flags add_sgd_args defines, at one lr and seed (``extra``: other TrainConfig fields)."""
    return TrainConfig(
        epochs=args.epochs,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        nesterov=args.nesterov,
        decreasing_lr=args.decreasing_lr,
        aug_pad=aug_pad,
        seed=seed,
        **extra,
    )


def seeds_of(args: argparse.Namespace) -> list[int]:
    """Explicit --seeds if the script has them, else --seed .. --seed + --repeat - 1."""
    explicit = getattr(args, "seeds", None)
    return list(explicit) if explicit is not None else list(range(args.seed, args.seed + args.repeat))


def check_sgd(args: argparse.Namespace) -> None:
    """Impossible SGD combinations are bad input (exit 2)."""
    if args.nesterov and args.momentum <= 0:
        raise UsageError(f"--nesterov needs --momentum > 0 (got {args.momentum:g})")


def checked_codes(raw: Iterable[str], family: str) -> list[str]:
    """Parse every code (NB201 arch strings accepted for nb201); an invalid one is bad input naming its token."""
    out = []
    for code in raw:
        try:
            if family == "nb201" and code.startswith("|"):
                code = arch_str_to_code(code)
            parse_code(code, family)
        except InvalidCodeError as exc:
            raise UsageError(str(exc)) from None
        out.append(code)
    return out


def split_by_path(codes: Sequence[str], family: str) -> tuple[list[str], list[str]]:
    """(runnable, no_path): codes with an input-to-output path and those without. All without is bad input."""
    runnable, no_path = [], []
    for code in codes:
        try:
            path_sum(code, family)
            runnable.append(code)
        except NoPathError:
            no_path.append(code)
    if not runnable:
        shown = ", ".join(codes[:3]) + (", ..." if len(codes) > 3 else "")
        raise UsageError(f"no requested DAG has an input-to-output path ({shown})")
    return runnable, no_path


def skipped_line(no_path: Sequence[str], shown: int = 3) -> str:
    """One line summarising the DAGs skipped for lack of a path (status=no_path)."""
    head = ", ".join(no_path[:shown]) + (", ..." if len(no_path) > shown else "")
    return f"skipping {len(no_path)} DAG(s) without an input-to-output path (status=no_path): {head}"


def read_reference_csv(path: str | Path) -> dict[str, float]:
    """``arch_str,acc`` table (published benchmark accuracies, percent or fraction) as fractions by arch string."""
    path = Path(path)
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise MissingInputError(f"--reference_csv: file not found: {path}") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise UsageError(f"--reference_csv: cannot read {path}: {exc.strerror or exc}") from None
    if not rows or "arch_str" not in rows[0] or "acc" not in rows[0]:
        raise UsageError(f"--reference_csv {path} needs the columns arch_str,acc")
    acc = {}
    for i, row in enumerate(rows, start=2):
        try:
            value = float(row["acc"])
        except (TypeError, ValueError):
            raise UsageError(f"--reference_csv {path} line {i}: acc {row['acc']!r} is not a number") from None
        if not math.isfinite(value):
            raise UsageError(f"--reference_csv {path} line {i}: acc {row['acc']!r} is not finite")
        acc[row["arch_str"]] = value
    if max(acc.values()) > 1.5:  # percent -> fraction
        acc = {k: v / 100 for k, v in acc.items()}
    return acc
