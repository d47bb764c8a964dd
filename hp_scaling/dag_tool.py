"""Path statistics of one DAG code, and the generated code lists (DESIGN.md §2.1).

    python hp_scaling/dag_tool.py info 2_22_222_2222        # paths, k_p, S and the LR multipliers (eq. 8)
    python hp_scaling/dag_tool.py export --out DIR          # all_dags_str_N5.json, random_dag_list_N5.npy,
                                                            # arch_code_201.json, arch_indice_201.npy
``python -m hp_scaling.dags info|export ...`` runs this same command line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from common.cli import ArgumentParser, UsageError, run_main
from hp_scaling.cli_args import checked_codes
from hp_scaling.dags import (
    all_codes,
    depth_histogram,
    enumerate_paths,
    infer_family,
    normalize_family,
    parse_code,
    path_moments,
    random_order,
)
from hp_scaling.scaling import lr_multiplier

EXPORTS = ("all_dags_str_N5.json", "random_dag_list_N5.npy", "arch_code_201.json", "arch_indice_201.npy")


def info_lines(code: str, family: str | None) -> list[str]:
    """The lines ``info`` prints: every DFS path with k_p, the DP histogram and S / multiplier per offset."""
    fam = normalize_family(family) if family else infer_family(code)
    dag = parse_code(checked_codes([code], fam)[0], fam)
    paths = enumerate_paths(dag)
    lines = [f"code {dag.code}  family {fam}  nodes {dag.n_nodes}  paths {len(paths)}"]
    for p in paths:
        k = sum(1 for (_, _, d) in p if dag.is_parameterized(d))
        route = " -> ".join([str(p[0][0])] + [f"{t}({d})" for (_, t, d) in p])
        lines.append(f"  k_p={k}  {route}")
    lines.append(f"depth histogram {depth_histogram(dag)}")
    if not paths:
        return [*lines, "no input-to-output path: no multiplier"]
    for o in (1,) if fam == "nb201" else (3, 1):
        mult = lr_multiplier(dag, fam, depth_offset=o)
        lines.append(f"offset {o}: S = {path_moments(dag, o).S}  multiplier {mult:.6f}")
    return lines


def export(out: Path) -> list[Path]:
    """Write the four generated lists into ``out``; an unwritable folder is bad input naming it."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / EXPORTS[0]).write_text(json.dumps(all_codes("mlp", 5)))
        np.save(out / EXPORTS[1], random_order(3**10, 0))
        (out / EXPORTS[2]).write_text(json.dumps(all_codes("nb201")))
        np.save(out / EXPORTS[3], random_order(5**6, 0))
    except OSError as exc:
        where = exc.filename or out
        raise UsageError(f"--out {out}: cannot write {where}: {exc.strerror or exc}") from None
    return [out / name for name in EXPORTS]


def build_parser() -> ArgumentParser:
    p = ArgumentParser(description="DAG codes: path statistics and generated code lists")
    sub = p.add_subparsers(dest="cmd", required=True)
    pi = sub.add_parser("info", help="print paths, k_p, S and the LR multipliers of a code")
    pi.add_argument("code", help="DAG code (e.g. 2_22_222_2222) or NB201 arch string")
    pi.add_argument("--family", choices=["mlp", "cnn", "nb201", "tinynetwork"], default=None, help="default: inferred")
    pe = sub.add_parser("export", help="write the four generated code lists")
    pe.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    lines = info_lines(args.code, args.family) if args.cmd == "info" else [str(p) for p in export(args.out)]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    run_main(main)
