"""Architecture-aware init (eq. 4) and LR transfer (eq. 8 MLP, eq. 9 CNN) of Chen et al., ICLR 2024 (DESIGN.md §3, 3.3).

Symbols: d_in(t) in-degree of node t; fan_in, fan_out; q kernel size; k_p parameterized edges on path p;
L_p = k_p + offset; S = sum_p L_p^3; eta learning rate.

eq. 4:  Var(W_{s->t}) = 2 / (fan_in * d_in(t))     (keeps every node's second moment equal to the input's)
eq. 8:  eta* ~ c * (sum_p L_p^3)^(-1/2)             (muP, first SGD step, MSE, batch 1; width does not enter)
eq. 9:  eq. 8 times 1/q for convolutions.

Transfer: eta = eta_base * sqrt(S_base / S) * (kernel_base / q for cnn).  Defaults (``depth_offset="auto"``):
offset 3 and S_base = 27 for mlp/cnn (the reference's rule: the base "input -> hidden -> output" is one path with
k = 0), offset 1 and S_base = 1 for nb201 (avg_pool counts as a skip, no q factor). An integer offset o uses
S_base = o^3; ``depth_offset=1`` is the paper-literal rule (L_p = number of ReLUs).

Init conventions (``init=``): ``paper`` (pre-activation, target in-degree, readout std sqrt(2)/n), ``reference``
(post-activation, source in-degree max(d_in(s), 1), fan_out stem, readout std 2/classes), ``he`` (paper with
d_in = 1), ``torch`` (PyTorch default layers, post-activation). Skip branches are never normalized.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hp_scaling.dags import Dag, _as_dag, depth_histogram, normalize_family, path_moments

__all__ = [
    "BASE_INITS",
    "INITS",
    "INIT_PARTS",
    "InitParts",
    "init_parts",
    "NoPathError",
    "default_block",
    "edge_std",
    "lr_multiplier",
    "path_sum",
    "readout_std",
    "scaled_lr",
    "stem_std",
    "transfer_factor",
]

INITS = ("paper", "reference", "he", "torch", "paper_readout_classes", "paper_source_degree", "reference_readout_mup")


class NoPathError(ValueError):
    """A DAG with no input-to-output path has no LR multiplier."""


def transfer_factor(s_base: float, s: float, q: int | None = None, kernel_base: int = 3) -> float:
    """Float-level eq. 8/9: sqrt(S_base / S) * (kernel_base / q when q is given)."""
    if s_base <= 0 or s <= 0:
        raise ValueError(f"path sums must be > 0, got S_base={s_base}, S={s}")
    factor = math.sqrt(s_base / s)
    if q is not None:
        if q < 1:
            raise ValueError(f"kernel size q must be >= 1, got {q}")
        factor *= kernel_base / q
    return factor


def _offset(family: str, depth_offset: int | str) -> int:
    if depth_offset == "auto":
        return 1 if family == "nb201" else 3
    o = int(depth_offset)
    if o < 1:
        raise ValueError(f"depth_offset must be 'auto' or an integer >= 1, got {depth_offset!r}")
    return o


def path_sum(code_or_dag: str | Dag, family: str = "mlp", *, depth_offset: int | str = "auto") -> int:
    """S(offset) = sum_p (k_p + offset)^3 (eq. 8), exact; raises NoPathError when there is no path."""
    fam = normalize_family(family)
    dag = _as_dag(code_or_dag, fam)
    m = path_moments(dag, _offset(dag.family, depth_offset))
    if m.n_paths == 0:
        raise NoPathError(f"DAG {dag.code} has no input-to-output path")
    return m.S


def lr_multiplier(
    code_or_dag: str | Dag,
    family: str = "mlp",
    *,
    depth_offset: int | str = "auto",
    q: int | None = None,
    kernel_base: int = 3,
    all_skip: str = "count",
) -> float:
    """LR transfer factor eta/eta_base = sqrt(S_base / S) * (kernel_base / q if family == "cnn") (eq. 8, eq. 9).

    Args:
        code_or_dag: a code string (an NB201 arch string is accepted for nb201) or a parsed Dag.
        family: mlp, cnn, nb201 (alias tinynetwork); ignored for the parse when a Dag is given.
        depth_offset: "auto" (3 for mlp/cnn, 1 for nb201) or an integer o; S_base = o^3.
        q: kernel size (cnn only; None = no kernel factor).
        kernel_base: kernel size of the base net.
        all_skip: "count" counts skip-only paths as offset^3; "reference" returns ratio 1.0 when every k_p = 0
            (mlp/cnn only, the reference quirk; nb201 always counts).

    Raises NoPathError (a ValueError, never SystemExit) when the DAG has no path.
    """
    if all_skip not in ("count", "reference"):
        raise ValueError(f"all_skip must be 'count' or 'reference', got {all_skip!r}")
    fam = normalize_family(family)
    dag = _as_dag(code_or_dag, fam)
    fam = dag.family if isinstance(code_or_dag, Dag) and family == "mlp" else fam
    o = _offset(fam, depth_offset)
    m = path_moments(dag, o)
    if m.n_paths == 0:
        raise NoPathError(f"DAG {dag.code} has no input-to-output path")
    kq = q if (fam == "cnn" and q is not None) else None
    if all_skip == "reference" and fam != "nb201" and set(depth_histogram(dag)) == {0}:
        return transfer_factor(1.0, 1.0, kq, kernel_base)
    return transfer_factor(o**3, m.S, kq, kernel_base)


def scaled_lr(lr_base: float, code_or_dag: str | Dag, family: str = "mlp", **kw) -> float:
    """eta = lr_base * lr_multiplier(code_or_dag, family, **kw)."""
    if not lr_base > 0:
        raise ValueError(f"lr_base must be > 0, got {lr_base}")
    return lr_base * lr_multiplier(code_or_dag, family, **kw)


# ---------------------------------------------------------------- eq. 4 init conventions
@dataclass(frozen=True)
class InitParts:
    """The four choices an init convention makes (DESIGN.md §3.2).

    degree: which in-degree divides the variance of edge s -> t: "target" d_in(t) (eq. 4 as written), "source"
        max(d_in(s), 1) (what the reference code computes), "none" (He).
    fan: "in" (fan_in of every layer, eq. 4) or "out" (the reference's mode="fan_out": the stem uses width * q^2).
    readout: "mup" std sqrt(2)/n (eq. 2, d_in(out) = 1) or "classes" std 2/num_classes (the reference squares its
        He std 2/fan_out: a variance used as a std).
    block: "pre" (z_t = sum_s W act(z_s)) or "post" (x_t = sum_s act(W x_s)), the default of ``--block auto``.
    """

    degree: str
    fan: str
    readout: str
    block: str


INIT_PARTS = {
    "paper": InitParts("target", "in", "mup", "pre"),
    "reference": InitParts("source", "out", "classes", "post"),
    "he": InitParts("none", "in", "mup", "pre"),
    # ablations for the init gap (README "Why the reference init correlates better"): one part swapped each
    "paper_readout_classes": InitParts("target", "in", "classes", "pre"),
    "paper_source_degree": InitParts("source", "in", "mup", "pre"),
    "reference_readout_mup": InitParts("source", "out", "mup", "post"),
}
BASE_INITS = ("paper", "reference", "he", "torch")  # the conventions of NB201 cells (TinyNetwork)


def init_parts(init: str) -> InitParts:
    """The parts of an init convention; "torch" (PyTorch's layer defaults) has none."""
    _check_init(init)
    if init == "torch":
        raise ValueError("init 'torch' keeps PyTorch's default layer init; it has no eq. 4 parts")
    return INIT_PARTS[init]


def _check_init(init: str) -> None:
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")


def default_block(init: str, block: str = "auto") -> str:
    """Block order: "pre" for paper/he, "post" for reference/torch, unless block is pre|post."""
    _check_init(init)
    if block == "auto":
        return "post" if init == "torch" else INIT_PARTS[init].block
    if block not in ("pre", "post"):
        raise ValueError(f"block must be auto, pre or post, got {block!r}")
    return block


def edge_std(init: str, fan_in: int, fan_out: int, d_target: int, d_source: int) -> float:
    """Std of a hidden parameterized edge s -> t (eq. 4; fan = channels * q^2 for a conv).

    paper: sqrt(2 / (fan_in * d_in(t))); he: sqrt(2 / fan_in);
    reference: sqrt(2 / (fan_out * max(d_in(s), 1))) (source in-degree, fan_out as the reference does).
    """
    parts = init_parts(init)
    degree = {"target": d_target, "source": d_source, "none": 1}[parts.degree]
    fan = fan_in if parts.fan == "in" else fan_out
    return math.sqrt(2.0 / (fan * max(degree, 1)))


def stem_std(init: str, fan_in: int, width: int, q: int = 1) -> float:
    """Stem std: paper/he sqrt(2 / (fan_in q^2)); reference sqrt(2 / (width q^2)) (the reference's fan_out quirk)."""
    fan = fan_in if init_parts(init).fan == "in" else width
    return math.sqrt(2.0 / (fan * q * q))


def readout_std(init: str, fan_in: int, num_classes: int) -> float:
    """Readout std: paper/he sqrt(2)/n (eq. 2 muP readout, d_in(out) = 1); reference 2/num_classes."""
    if init_parts(init).readout == "mup":
        return math.sqrt(2.0) / fan_in
    return 2.0 / num_classes
