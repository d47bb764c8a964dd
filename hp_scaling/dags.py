"""DAG codes of Chen, Wu, Wang, Hanin (ICLR 2024) and exact path statistics (DESIGN.md §2).

A code is N-1 tokens joined by ``_``; token t (t = 1..N-1) has t digits, digit s being the op on the edge s -> t.
``2_02_002`` is the chain 0 -> 1 -> 2 -> 3.

Families:
  mlp / cnn (any N >= 2): 0 = no edge, 1 = skip (identity), 2 = Linear/Conv block.
  nb201 (N = 4): 0 none, 1 skip_connect, 2 nor_conv_1x1, 3 nor_conv_3x3, 4 avg_pool_3x3.

Symbols: A[s, t] in {-1 none, 0 unparameterized, 1 parameterized}; k_p = number of parameterized edges on path p;
L_p = k_p + offset; S(offset) = sum_p L_p^3 (eq. 8 of the paper).

The DFS ``enumerate_paths`` is exponential and is the oracle; ``depth_histogram`` and ``path_moments`` are exact
dynamic programs over the topological order (node index order) with Python ints.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = [
    "FAMILIES",
    "NB201_OPS",
    "Dag",
    "InvalidCodeError",
    "PathMoments",
    "all_codes",
    "arch_str_to_code",
    "base_code",
    "code_to_arch_str",
    "depth_chain",
    "depth_histogram",
    "enumerate_paths",
    "histogram_from_dfs",
    "path_depths",
    "infer_family",
    "normalize_family",
    "parse_code",
    "path_moments",
    "random_order",
]

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# digit -> adjacency value (-1 none, 0 unparameterized, 1 parameterized)
_ADJ = {
    "mlp": {0: -1, 1: 0, 2: 1},
    "cnn": {0: -1, 1: 0, 2: 1},
    "nb201": {0: -1, 1: 0, 2: 1, 3: 1, 4: 0},
}
FAMILIES = tuple(_ADJ)
_ALIASES = {"tinynetwork": "nb201", "nb201": "nb201", "mlp": "mlp", "cnn": "cnn"}


class InvalidCodeError(ValueError):
    """A DAG code that does not parse for its family; the message names the faulty token."""


def normalize_family(family: str) -> str:
    """Map a family or arch name (mlp, cnn, nb201, tinynetwork) to one of FAMILIES."""
    try:
        return _ALIASES[family]
    except KeyError:
        raise ValueError(f"unknown family {family!r}; expected one of {sorted(_ALIASES)}") from None


@dataclass(frozen=True)
class Dag:
    """A parsed DAG code: ``digits[t-1][s]`` is the op on edge s -> t."""

    code: str
    family: str
    digits: tuple[tuple[int, ...], ...]

    @property
    def n_nodes(self) -> int:
        return len(self.digits) + 1

    def adjacency(self) -> np.ndarray:
        """N x N int array: -1 none, 0 unparameterized (skip, avg_pool), 1 parameterized (Linear/Conv)."""
        n = self.n_nodes
        a = np.full((n, n), -1, dtype=np.int64)
        table = _ADJ[self.family]
        for t, token in enumerate(self.digits, start=1):
            for s, d in enumerate(token):
                a[s, t] = table[d]
        return a

    def in_degree(self, t: int) -> int:
        """Number of non-zero digits in token t (edges from nodes the input cannot reach count too); 0 for t = 0."""
        if not 0 <= t < self.n_nodes:
            raise ValueError(f"node {t} out of range for {self.n_nodes} nodes")
        return 0 if t == 0 else sum(1 for d in self.digits[t - 1] if d != 0)

    def edges(self) -> list[tuple[int, int, int]]:
        """All present edges as (s, t, digit), ordered by target then source."""
        return [(s, t, d) for t, token in enumerate(self.digits, start=1) for s, d in enumerate(token) if d != 0]

    def is_parameterized(self, digit: int) -> bool:
        return _ADJ[self.family][digit] == 1


def parse_code(code: str, family: str = "mlp") -> Dag:
    """Parse a code string for ``family`` (mlp, cnn, nb201/tinynetwork); raises InvalidCodeError."""
    fam = normalize_family(family)
    if not isinstance(code, str) or not code:
        raise InvalidCodeError(f"empty or non-string DAG code {code!r}")
    tokens = code.split("_")
    allowed = _ADJ[fam]
    if fam == "nb201" and len(tokens) != 3:
        raise InvalidCodeError(f"NB201 cell codes have 4 nodes (3 tokens), got {len(tokens)} tokens in {code!r}")
    digits = []
    for t, tok in enumerate(tokens, start=1):
        if len(tok) != t:
            raise InvalidCodeError(f"token {t} {tok!r} of {code!r} must have {t} digit(s)")
        if not tok.isdigit() or not tok.isascii():
            raise InvalidCodeError(f"token {t} {tok!r} of {code!r} has a non-digit character")
        row = tuple(int(c) for c in tok)
        bad = [d for d in row if d not in allowed]
        if bad:
            raise InvalidCodeError(
                f"token {t} {tok!r} of {code!r} has digit {bad[0]} outside the {fam} family (0..{max(allowed)})"
            )
        digits.append(row)
    return Dag(code=code, family=fam, digits=tuple(digits))


def infer_family(code: str) -> str:
    """nb201 for NB201 arch strings or 3-token codes using digits 3/4; mlp otherwise."""
    if code.startswith("|"):
        return "nb201"
    toks = code.split("_")
    if len(toks) == 3 and any(c in "34" for c in code):
        return "nb201"
    return "mlp"


def _as_dag(code_or_dag: str | Dag, family: str = "mlp") -> Dag:
    if isinstance(code_or_dag, Dag):
        return code_or_dag
    code = code_or_dag
    if normalize_family(family) == "nb201" and code.startswith("|"):
        code = arch_str_to_code(code)
    return parse_code(code, family)


# ---------------------------------------------------------------- NB201 arch strings
def code_to_arch_str(code: str) -> str:
    """NB201 cell code -> arch string, e.g. ``3_03_101`` -> ``|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|...|``."""
    dag = parse_code(code, "nb201")
    nodes = ["|" + "|".join(f"{NB201_OPS[d]}~{s}" for s, d in enumerate(tok)) + "|" for tok in dag.digits]
    return "+".join(nodes)


def arch_str_to_code(arch_str: str) -> str:
    """Inverse of code_to_arch_str; raises InvalidCodeError on a malformed string."""
    parts = arch_str.split("+")
    if len(parts) != 3:
        raise InvalidCodeError(f"NB201 arch string needs 3 node groups, got {len(parts)}: {arch_str!r}")
    tokens = []
    for t, part in enumerate(parts, start=1):
        if not (part.startswith("|") and part.endswith("|")):
            raise InvalidCodeError(f"node group {t} {part!r} must be enclosed in '|'")
        ops = part[1:-1].split("|")
        if len(ops) != t:
            raise InvalidCodeError(f"node group {t} {part!r} must have {t} op(s)")
        tok = []
        for s, item in enumerate(ops):
            name, _, src = item.partition("~")
            if name not in NB201_OPS or src != str(s):
                raise InvalidCodeError(f"bad op {item!r} in node group {t} of {arch_str!r}")
            tok.append(str(NB201_OPS.index(name)))
        tokens.append("".join(tok))
    return "_".join(tokens)


# ---------------------------------------------------------------- paths
def enumerate_paths(dag: Dag) -> list[list[tuple[int, int, int]]]:
    """All input-to-output paths by DFS over edges with A >= 0; each path is a list of (s, t, digit). Oracle only."""
    n = dag.n_nodes
    out_edges: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for s, t, d in dag.edges():
        out_edges[s].append((t, d))
    paths: list[list[tuple[int, int, int]]] = []
    stack: list[tuple[int, list[tuple[int, int, int]]]] = [(0, [])]
    while stack:  # terminates: the graph is acyclic (edges go from lower to higher index)
        node, prefix = stack.pop()
        if node == n - 1:
            paths.append(prefix)
            continue
        for t, d in reversed(out_edges[node]):
            stack.append((t, prefix + [(node, t, d)]))
    return paths


def path_depths(dag: Dag) -> list[int]:
    """k_p for every DFS path (oracle helper)."""
    return [sum(1 for (_, _, d) in p if dag.is_parameterized(d)) for p in enumerate_paths(dag)]


def histogram_from_dfs(dag: Dag) -> dict[int, int]:
    """Counter of DFS k-values (oracle for depth_histogram)."""
    return dict(sorted(Counter(path_depths(dag)).items()))


def depth_histogram(dag: Dag) -> dict[int, int]:
    """{k: number of paths with k parameterized edges}, exact by DP: h_t[k] = sum_{s->t} h_s[k - A[s,t]]."""
    table = _ADJ[dag.family]
    n = dag.n_nodes
    hist: list[dict[int, int]] = [dict() for _ in range(n)]
    hist[0] = {0: 1}
    for t in range(1, n):
        acc: dict[int, int] = {}
        for s, d in enumerate(dag.digits[t - 1]):
            shift = table[d]
            if shift < 0 or not hist[s]:
                continue
            for k, c in hist[s].items():
                acc[k + shift] = acc.get(k + shift, 0) + c
        hist[t] = acc
    return dict(sorted(hist[n - 1].items()))


class PathMoments(NamedTuple):
    """Exact power sums over paths: n_paths = sum 1, m1 = sum k_p, m2 = sum k_p^2, m3 = sum k_p^3, S = sum L_p^3."""

    n_paths: int
    m1: int
    m2: int
    m3: int
    offset: int
    S: int


def path_moments(dag: Dag, offset: int = 3) -> PathMoments:
    """Propagate (sum 1, sum k, sum k^2, sum k^3) along edges with the binomial shift k -> k + a.

    Returns exact ``n_paths`` and ``S(offset) = sum_p (k_p + offset)^3`` (eq. 8 path sum) as Python ints.
    """
    table = _ADJ[dag.family]
    n = dag.n_nodes
    mom = [(0, 0, 0, 0)] * n
    mom[0] = (1, 0, 0, 0)
    for t in range(1, n):
        c0 = c1 = c2 = c3 = 0
        for s, d in enumerate(dag.digits[t - 1]):
            a = table[d]
            if a < 0:
                continue
            p0, p1, p2, p3 = mom[s]
            if a == 0:
                c0, c1, c2, c3 = c0 + p0, c1 + p1, c2 + p2, c3 + p3
            else:  # (k+1)^j expanded
                c0 += p0
                c1 += p1 + p0
                c2 += p2 + 2 * p1 + p0
                c3 += p3 + 3 * p2 + 3 * p1 + p0
        mom[t] = (c0, c1, c2, c3)
    n0, n1, n2, n3 = mom[n - 1]
    o = int(offset)
    s_val = n3 + 3 * o * n2 + 3 * o * o * n1 + o**3 * n0
    return PathMoments(n0, n1, n2, n3, o, s_val)


# ---------------------------------------------------------------- generated lists
def all_codes(family: str = "mlp", n_nodes: int | None = None) -> list[str]:
    """Every code of a family in product order (last digit fastest); nb201 has 5^6 cells, mlp N=5 has 3^10."""
    fam = normalize_family(family)
    if fam == "nb201":
        if n_nodes not in (None, 4):
            raise ValueError(f"nb201 cells have 4 nodes, got n_nodes={n_nodes}")
        n_nodes = 4
    n_nodes = 5 if n_nodes is None else int(n_nodes)
    if n_nodes < 2:
        raise ValueError(f"n_nodes must be >= 2, got {n_nodes}")
    n_digits = n_nodes * (n_nodes - 1) // 2
    alphabet = "".join(str(d) for d in sorted(_ADJ[fam]))
    cuts = list(itertools.accumulate(range(1, n_nodes)))
    out = []
    for combo in itertools.product(alphabet, repeat=n_digits):
        s = "".join(combo)
        out.append("_".join(s[c - t : c] for t, c in enumerate(cuts, start=1)))
    return out


def random_order(n: int, seed: int = 0) -> np.ndarray:
    """numpy.random.default_rng(seed).permutation(n) as int64."""
    return np.random.default_rng(seed).permutation(int(n)).astype(np.int64)


def depth_chain(k: int, n_nodes: int) -> str:
    """Chain on n_nodes whose first k edges are Linear (digit 2) and the rest skips (digit 1)."""
    if not 0 <= k <= n_nodes - 1:
        raise ValueError(f"depth_chain needs 0 <= k <= n_nodes - 1, got k={k}, n_nodes={n_nodes}")
    return "_".join("0" * (t - 1) + ("2" if t <= k else "1") for t in range(1, n_nodes))


def base_code(n_nodes: int = 5, family: str = "mlp") -> str:
    """The shallow base net (one path with k = 0): a chain of skips; ``1_01_001`` for nb201."""
    return depth_chain(0, 4 if normalize_family(family) == "nb201" else n_nodes)


if __name__ == "__main__":  # `python -m hp_scaling.dags info|export ...` keeps working; the CLI is dag_tool.py
    from common.cli import run_main
    from hp_scaling.dag_tool import main

    run_main(main)
