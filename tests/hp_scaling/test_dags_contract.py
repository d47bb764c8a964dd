"""dags.py edge cases (DESIGN.md §2): messages naming the fault, families, orders and small generated lists.

Written against the mutants of make mutation: each assertion pins a value or message a one-line bug would change.
"""

import numpy as np
import pytest

from hp_scaling.dags import (
    Dag,
    InvalidCodeError,
    _as_dag,
    all_codes,
    arch_str_to_code,
    base_code,
    code_to_arch_str,
    depth_chain,
    enumerate_paths,
    histogram_from_dfs,
    infer_family,
    normalize_family,
    parse_code,
    path_depths,
    path_moments,
    random_order,
)


def test_families():
    assert [normalize_family(f) for f in ("mlp", "cnn", "nb201", "tinynetwork")] == ["mlp", "cnn", "nb201", "nb201"]
    with pytest.raises(ValueError, match="unknown family 'resnet'"):
        normalize_family("resnet")
    assert parse_code("2_02", "cnn").family == "cnn" and parse_code("2_02").family == "mlp"


@pytest.mark.parametrize(
    "code,family,message",
    [
        ("", "mlp", "empty or non-string DAG code ''"),
        (None, "mlp", "empty or non-string DAG code None"),
        ("2_2", "mlp", "token 2 '2' of '2_2' must have 2 digit"),
        ("2_0a", "mlp", "token 2 '0a' of '2_0a' has a non-digit character"),
        ("2_0\u0663", "mlp", "has a non-digit character"),
        ("3_00_000_0000", "mlp", "token 1 '3' of '3_00_000_0000' has digit 3 outside the mlp family \\(0..2\\)"),
        ("5_00_000", "nb201", "has digit 5 outside the nb201 family \\(0..4\\)"),
        ("3_03_101_0000", "nb201", "NB201 cell codes have 4 nodes \\(3 tokens\\), got 4 tokens"),
        ("3_03", "nb201", "got 2 tokens"),
    ],
)
def test_parse_errors_name_the_token(code, family, message):
    with pytest.raises(InvalidCodeError, match=message):
        parse_code(code, family)


def test_dag_accessors():
    dag = parse_code("3_04_201", "nb201")
    assert dag.n_nodes == 4 and dag.digits == ((3,), (0, 4), (2, 0, 1))
    assert dag.adjacency().tolist() == [[-1, 1, -1, 1], [-1, -1, 0, -1], [-1, -1, -1, 0], [-1, -1, -1, -1]]
    assert dag.adjacency().dtype == np.int64
    assert [dag.in_degree(t) for t in range(4)] == [0, 1, 1, 2]
    assert dag.edges() == [(0, 1, 3), (1, 2, 4), (0, 3, 2), (2, 3, 1)]
    assert [dag.is_parameterized(d) for d in range(5)] == [False, False, True, True, False]
    for bad in (-1, 4):
        with pytest.raises(ValueError, match=f"node {bad} out of range for 4 nodes"):
            dag.in_degree(bad)


def test_infer_family_and_as_dag():
    assert infer_family("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|") == "nb201"
    assert infer_family("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|") == "nb201", "no '_' in this arch string"
    assert infer_family("X_00_000") == "mlp", "only the digits 3 and 4 mark a cell"
    assert infer_family("3_03_101") == "nb201" and infer_family("4_00_000") == "nb201"
    assert infer_family("1_01_001") == "mlp" and infer_family("2_22_222_2222") == "mlp"
    assert infer_family("3_00_000_0000") == "mlp", "four tokens is never a cell"
    dag = parse_code("2_02")
    assert _as_dag(dag) is dag and _as_dag("2_02").family == "mlp"
    arch = code_to_arch_str("3_03_101")
    assert _as_dag(arch, "nb201").code == "3_03_101" and _as_dag("3_03_101", "tinynetwork").family == "nb201"


@pytest.mark.parametrize(
    "arch,message",
    [
        ("|none~0|+|none~0|none~1|", "needs 3 node groups, got 2"),
        ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "node group 1 'none~0\\|' must be enclosed"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node group 2 '\\|none~0\\|' must have 2 op"),
        ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "bad op 'conv~0' in node group 1"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "bad op 'none~1' in node group 1"),
    ],
)
def test_arch_string_errors(arch, message):
    with pytest.raises(InvalidCodeError, match=message):
        arch_str_to_code(arch)


def test_path_order_and_oracles():
    assert enumerate_paths(parse_code("2_12")) == [[(0, 1, 2), (1, 2, 2)], [(0, 2, 1)]], "DFS in node order"
    dag = parse_code("2_12_102")
    assert enumerate_paths(dag) == [
        [(0, 1, 2), (1, 2, 2), (2, 3, 2)],
        [(0, 2, 1), (2, 3, 2)],
        [(0, 3, 1)],
    ]
    assert path_depths(dag) == [3, 1, 0] and histogram_from_dfs(dag) == {0: 1, 1: 1, 3: 1}
    m = path_moments(dag, 2)
    assert (m.n_paths, m.m1, m.m2, m.m3, m.offset, m.S) == (3, 4, 10, 28, 2, 125 + 27 + 8)
    assert path_moments(dag).offset == 3, "offset 3 by default"
    assert enumerate_paths(parse_code("0_00")) == [] and path_moments(parse_code("0_00")).n_paths == 0


def test_generated_lists():
    assert all_codes("mlp", 3) == [f"{a}_{b}{c}" for a in "012" for b in "012" for c in "012"]
    assert all_codes("cnn", 3) == all_codes("mlp", 3) and len(all_codes("mlp", 2)) == 3
    assert all_codes("nb201")[:3] == ["0_00_000", "0_00_001", "0_00_002"] and all_codes("nb201")[5] == "0_00_010"
    assert all_codes("nb201", 4) == all_codes("tinynetwork")
    assert len(all_codes()) == 59049, "mlp on 5 nodes by default"
    with pytest.raises(ValueError, match="nb201 cells have 4 nodes, got n_nodes=5"):
        all_codes("nb201", 5)
    with pytest.raises(ValueError, match="n_nodes must be >= 2, got 1"):
        all_codes("mlp", 1)
    order = random_order(10, 3)
    assert order.dtype == np.int64 and sorted(order.tolist()) == list(range(10))
    assert random_order(10).tolist() == np.random.default_rng(0).permutation(10).tolist(), "seed 0 by default"


def test_chains_and_base():
    assert depth_chain(2, 4) == "2_02_001" and depth_chain(0, 2) == "1" and depth_chain(3, 4) == "2_02_002"
    for k, n in ((-1, 4), (4, 4)):
        with pytest.raises(ValueError, match=f"depth_chain needs 0 <= k <= n_nodes - 1, got k={k}, n_nodes={n}"):
            depth_chain(k, n)
    assert base_code() == "1_01_001_0001" and base_code(3) == "1_01"
    assert base_code(family="nb201") == "1_01_001" and base_code(9, "tinynetwork") == "1_01_001"


def test_dag_is_frozen():
    dag = parse_code("2_02")
    with pytest.raises(AttributeError):
        dag.code = "x"
    assert Dag("2_02", "mlp", ((2,), (0, 2))) == dag
