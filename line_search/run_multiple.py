"""NLP grid of the seed (spec 4.2): `python line_search/run_multiple.py` (synthetic_order + bert_tiny = R2, spec 6.2).

`--paper`: GLUE sst2, qnli, mnli, mrpc on bert-base-uncased (local weights via --model_path), 5 seeds (GPU).
"""

from __future__ import annotations

from pathlib import Path

from common.cli import UsageError, run_main
from line_search.harness.grid import grid_main, rule_verdicts

DEFAULTS = {
    "datasets": ["synthetic_order"],
    "models": ["bert_tiny"],
    "optims": ["sls", "adamsls", "kensls", "salsa", "adam"],
    "numexp": 2,
    "epochs": 5,
    "batch_size": 32,
    "sgd_lrs": [0.01, 0.1, 1.0],
    "extra_flags": {
        "--max_len": {"type": int, "default": 24, "help": "tokens per sequence"},
        "--n_train": {"type": int, "default": 2000, "help": "training examples (0 = all)"},
        "--n_test": {"type": int, "default": 500, "help": "test examples (0 = all)"},
        "--model_path": {"default": "", "help": "local bert-base-uncased weights and tokenizer"},
    },
    "extra_config": lambda a: {
        "max_len": a.max_len,
        "n_train": a.n_train,
        "n_test": a.n_test,
        "model_path": a.model_path,
    },
}
PAPER = {
    "datasets": ["sst2", "qnli", "mnli", "mrpc"],
    "models": ["bert"],
    "optims": ["kensls", "adamsls", "adam", "salsa"],
    "numexp": 5,
    "sgd_lrs": [2e-3],
    "extra_flags": {
        "--max_len": {"type": int, "default": 256, "help": "tokens per sequence"},
        "--n_train": {"type": int, "default": 0, "help": "training examples (0 = all)"},
        "--n_test": {"type": int, "default": 0, "help": "test examples (0 = all)"},
        "--model_path": {"default": "", "help": "local bert-base-uncased weights and tokenizer"},
    },
}


def _check_paper(args) -> None:
    if args.c is None:
        args.c = 0.3
    if args.beta is None:
        args.beta = 0.99
    if args.speed_up == [None]:
        args.speed_up = [True, False]
    if args.adam_lrs == [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]:
        args.adam_lrs = [2e-5]
    if not args.model_path or not (Path(args.model_path) / "config.json").is_file():
        raise UsageError(
            "--paper needs bert-base-uncased weights: save them with save_pretrained() into a folder and pass "
            "--model_path DIR"
        )
    from common.data import get_dataset

    for task in args.datasets:
        try:
            get_dataset("glue", "train", root=args.data_root, task=task)
        except Exception as exc:
            raise UsageError(f"--paper needs GLUE {task} under {args.data_root}/glue/{task}: {exc}") from None


def verdicts(groups: dict) -> dict:
    """R2 (spec 6.2) for AdamSLS, KenSLS and SaLSa; SLS is reported, not ruled."""
    g = groups.get("synthetic_order")
    r2 = rule_verdicts(g, ("adamsls", "kensls", "salsa"), 0.05, "6.2") if g else None
    if r2 and "sls" in g:
        r2["reported_sls"] = {
            "final_train_loss": g["sls"]["final_train_loss_mean"],
            "val_acc": g["sls"]["val_acc_mean"],
        }
    return {"R2": r2} if r2 else {}


def main(argv=None) -> dict:
    return grid_main(argv, "run_multiple", "nlp", DEFAULTS, PAPER, verdicts, _check_paper)


if __name__ == "__main__":
    run_main(main)
