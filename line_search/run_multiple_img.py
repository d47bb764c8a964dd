"""Image grid of the seed (spec 4.2): `python line_search/run_multiple_img.py` (digits + mlp = R1 of spec 6.1).

`--paper`: CIFAR-10/100 (+ ImageNet when data/imagenet exists) on ResNet-50, 5 seeds (GPU).
"""

from __future__ import annotations

from pathlib import Path

from common.cli import UsageError, run_main
from line_search.harness.grid import OURS, grid_main, rule_verdicts

DEFAULTS = {
    "datasets": ["digits"],
    "models": ["mlp"],
    "optims": ["sls", "adamsls", "kensls", "salsa", "adam", "sgd"],
    "numexp": 3,
    "epochs": 15,
    "batch_size": 32,
    "sgd_lrs": [0.01, 0.03, 0.1, 0.3, 1.0],
}
PAPER = {
    "datasets": ["cifar10", "cifar100"],
    "models": ["resnet50"],
    "optims": ["kensls", "adam", "adamsls", "salsa"],
    "numexp": 5,
    "epochs": 12,
    "batch_size": 128,
    "gas": 2,
    "sgd_lrs": [0.1],
}


def _paper_defaults() -> dict:
    out = dict(PAPER)
    if Path("data/imagenet").is_dir():
        out["datasets"] = [*PAPER["datasets"], "imagenet"]
    return out


def _check_paper(args) -> None:
    if args.c is None:
        args.c = 0.5
    if args.beta is None:
        args.beta = 0.9
    if args.adam_lrs == [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]:
        args.adam_lrs = [1e-3]
    from line_search.harness.data import load_task

    for name in args.datasets:
        try:
            load_task(name, args.data_root)
        except FileNotFoundError as exc:
            raise UsageError(f"--paper needs {name}: {exc}") from None


def verdicts(groups: dict) -> dict:
    """R1 (spec 6.1) when the grid holds digits with the four optimizers and the full Adam grid."""
    r1 = rule_verdicts(groups["digits"], OURS, 0.015, "6.1") if "digits" in groups else None
    return {"R1": r1} if r1 else {}


def main(argv=None) -> dict:
    return grid_main(argv, "run_multiple_img", "img", DEFAULTS, _paper_defaults(), verdicts, _check_paper)


if __name__ == "__main__":
    run_main(main)
