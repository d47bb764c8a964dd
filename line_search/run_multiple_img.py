"""Image grid of the seed (DESIGN.md §4.2), `python line_search/run_multiple_img.py`: R1 of DESIGN.md §6.1.

`--paper`: CIFAR-10/100 (+ ImageNet when <data_root>/imagenet exists) on ResNet-50, 5 seeds (GPU).
"""

from __future__ import annotations

from pathlib import Path

from common.cli import UsageError, run_main
from line_search.grid_cli import grid_main
from line_search.harness.grid import OURS, rule_verdicts

DEFAULTS = {
    "datasets": ["digits"],
    "models": ["mlp"],
    "optims": ["sls", "adamsls", "kensls", "salsa", "adam", "sgd"],
    "numexp": 3,
    "epochs": 15,
    "batch_size": 32,
    "sgd_lrs": [0.01, 0.03, 0.1, 0.3, 1.0],
}


def paper_preset(args) -> dict:
    """--paper: the paper-scale grid; flags the user typed keep their values."""
    datasets = ["cifar10", "cifar100"] + (["imagenet"] if (Path(args.data_root) / "imagenet").is_dir() else [])
    return {
        "datasets": datasets,
        "models": ["resnet50"],
        "optims": ["kensls", "adam", "adamsls", "salsa"],
        "numexp": 5,
        "epochs": 12,
        "batch_size": 128,
        "gradient_accumulation_steps": 2,
        "sgd_lrs": [0.1],
        "c": 0.5,
        "beta": 0.9,
        "adam_lrs": [1e-3],
    }


def _check_paper(args) -> None:
    from line_search.harness.data import load_task

    for name in args.datasets:
        try:
            load_task(name, args.data_root)
        except FileNotFoundError as exc:
            raise UsageError(f"--paper needs {name}: {exc}") from None


def verdicts(groups: dict) -> dict:
    """R1 (DESIGN.md §6.1) when the grid holds digits with the four optimizers and the full Adam grid."""
    r1 = rule_verdicts(groups["digits"], OURS, 0.015, "6.1") if "digits" in groups else None
    return {"R1": r1} if r1 else {}


def main(argv=None) -> dict:
    return grid_main(argv, "run_multiple_img", "img", DEFAULTS, paper_preset, verdicts, _check_paper)


if __name__ == "__main__":
    run_main(main)
