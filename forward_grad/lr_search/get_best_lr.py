"""Look up searched learning rates in forward_grad/lrs/*.csv (DESIGN.md §3.5)."""

from __future__ import annotations

import csv
from pathlib import Path

from common.cli import MissingInputError, UsageError

__all__ = ["LRS_DIR", "get_math_lr", "get_nn_lr"]

LRS_DIR = Path(__file__).resolve().parents[1] / "lrs"


def _rows(name: str | Path, lrs_dir: Path | None = None) -> list[dict]:
    path = Path(lrs_dir or LRS_DIR) / name  # an absolute `name` replaces the folder
    if not path.is_file():
        raise MissingInputError(f"LR table {path} does not exist; run the search and extract_best (lrs/README.md)")
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _k(gradient: str, k) -> str:
    return "" if gradient == "bp" else str(int(k))


def get_math_lr(
    function: str, n: int, gradient: str, k: int = 1, sampler: str = "normal", lrs_dir=None, table=None
) -> float:
    """LR of lrs/math.csv or lrs/math__custom_tangents.csv (the custom-tangent grid: ST n=64, K=16/64); a custom
    sampler without its own row falls back to the normal-sampler row. `table`: read only this CSV file (a missing
    file is a MissingInputError naming it). A missing row is one clear UsageError."""
    if table is not None:
        return _math_lr_from([_rows(Path(table).resolve())], function, n, gradient, k, sampler)
    tables = (
        ["math__custom_tangents.csv", "math.csv"] if sampler != "normal" else ["math.csv", "math__custom_tangents.csv"]
    )
    found = []
    for table in tables:
        try:
            found.append(_rows(table, lrs_dir))
        except FileNotFoundError:
            continue
    if not found:
        raise MissingInputError(f"no LR table in {Path(lrs_dir or LRS_DIR)}; run the searches (lrs/README.md)")
    return _math_lr_from(found, function, n, gradient, k, sampler)


def _math_lr_from(found: list[list[dict]], function: str, n: int, gradient: str, k: int, sampler: str) -> float:
    for sampler_try in dict.fromkeys([sampler, "normal"]):
        for rows in found:
            for row in rows:
                if (
                    row["function"] == function
                    and int(row["n"]) == int(n)
                    and row["gradient_approach"] == gradient
                    and row["k"] == _k(gradient, k)
                    and row["tangent_sampler"] == sampler_try
                ):
                    return float(row["lr"])
    raise UsageError(
        f"no LR in lrs/math.csv for function={function} n={n} gradient={gradient} k={k} sampler={sampler}; run "
        f"`python forward_grad/lr_search/propulate_search.py --gradient {gradient} -k {k} math --function {function}"
        f" -n {n}` and `... extract_best --task math`"
    )


def get_nn_lr(model: str, width, dataset: str, gradient: str, k: int = 1, lrs_dir=None, epochs=None) -> float:
    """LR of lrs/fc_nns.csv (model fc) or lrs/sota_nns.csv; a missing row is one clear ValueError."""
    table = "fc_nns.csv" if model == "fc" else "sota_nns.csv"
    want_w = "" if width is None or model != "fc" else str(int(width))
    try:
        rows = _rows(table, lrs_dir)
    except FileNotFoundError:
        rows = []
    for row in rows:
        if (
            row["model"] == model
            and row["width"] == want_w
            and row["dataset"] == dataset
            and row["gradient_approach"] == gradient
            and row["k"] == _k(gradient, k)
            and (epochs is None or int(row["epochs"]) == int(epochs))
        ):
            return float(row["lr"])
    width_flag = f" --model_width {width}" if model == "fc" and width is not None else ""
    raise UsageError(
        f"no LR in lrs/{table} for model={model} width={width} dataset={dataset} gradient={gradient} k={k}; run "
        f"`python forward_grad/lr_search/propulate_search.py --gradient {gradient} -k {k} nn --model {model}"
        f"{width_flag} --dataset {dataset}` and `... extract_best --task {'fc-nn' if model == 'fc' else 'sota-nn'}`"
    )
