"""NLP grid of the seed (DESIGN.md §4.2), `python line_search/run_multiple.py`: R2 of DESIGN.md §6.2.

`--paper`: GLUE sst2, qnli, mnli, mrpc on bert-base-uncased (local weights via --model_path), 5 seeds (GPU).
"""

from __future__ import annotations

from pathlib import Path

from common.cli import UsageError, nonneg_int, positive_int, run_main
from line_search.grid_cli import grid_main
from line_search.harness.grid import rule_verdicts

DEFAULTS = {
    "datasets": ["synthetic_order"],
    "models": ["bert_tiny"],
    "optims": ["sls", "adamsls", "kensls", "salsa", "adam"],
    "numexp": 2,
    "epochs": 5,
    "batch_size": 32,
    "sgd_lrs": [0.01, 0.1, 1.0],
}
EXTRA_FLAGS = {
    "--max_len": {"type": positive_int, "default": 24, "help": "tokens per sequence"},
    "--n_train": {"type": nonneg_int, "default": 2000, "help": "training examples (0 = all)"},
    "--n_test": {"type": nonneg_int, "default": 500, "help": "test examples (0 = all)"},
    "--model_path": {"default": "", "help": "local bert-base-uncased weights and tokenizer"},
}


def paper_preset(args) -> dict:
    """--paper: GLUE on bert-base-uncased; flags the user typed keep their values."""
    return {
        "datasets": ["sst2", "qnli", "mnli", "mrpc"],
        "models": ["bert"],
        "optims": ["kensls", "adamsls", "adam", "salsa"],
        "numexp": 5,
        "sgd_lrs": [2e-3],
        "max_len": 256,
        "n_train": 0,
        "n_test": 0,
        "c": 0.3,
        "beta": 0.99,
        "speed_up": [True, False],
        "adam_lrs": [2e-5],
    }


def extra_config(args) -> dict:
    return {"max_len": args.max_len, "n_train": args.n_train, "n_test": args.n_test, "model_path": args.model_path}


def _check_paper(args) -> None:
    if not args.model_path or not (Path(args.model_path) / "config.json").is_file():
        raise UsageError(
            "--paper needs bert-base-uncased weights: save them with save_pretrained() into a folder and pass "
            "--model_path DIR"
        )
    from common.data import get_dataset

    for task in args.datasets:
        try:
            get_dataset("glue", "train", root=args.data_root, task=task)
        except Exception as exc:  # noqa: BLE001 - any reason the files cannot be read is a missing input here
            raise UsageError(f"--paper needs GLUE {task} under {args.data_root}/glue/{task}: {exc}") from None


def verdicts(groups: dict) -> dict:
    """R2 (DESIGN.md §6.2) for AdamSLS, KenSLS and SaLSa; SLS is reported, not ruled."""
    g = groups.get("synthetic_order")
    r2 = rule_verdicts(g, ("adamsls", "kensls", "salsa"), 0.05, "6.2") if g else None
    if r2 and "sls" in g:
        r2["reported_sls"] = {
            "final_train_loss": g["sls"]["final_train_loss_mean"],
            "val_acc": g["sls"]["val_acc_mean"],
        }
    return {"R2": r2} if r2 else {}


def main(argv=None) -> dict:
    return grid_main(argv, "run_multiple", "nlp", DEFAULTS, paper_preset, verdicts, _check_paper,
                     extra_flags=EXTRA_FLAGS, extra_config=extra_config)  # fmt: skip


if __name__ == "__main__":
    run_main(main)
