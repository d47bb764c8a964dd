"""DESIGN.md §8.1 (encoding), 7.2 (paths), 7.16 (export) for hp_scaling.dags."""

import json
from collections import Counter

import numpy as np
import pytest

from common.cli import run_main
from hp_scaling.dag_tool import main
from hp_scaling.dags import (
    InvalidCodeError,
    all_codes,
    arch_str_to_code,
    code_to_arch_str,
    depth_chain,
    depth_histogram,
    enumerate_paths,
    histogram_from_dfs,
    parse_code,
    path_moments,
    random_order,
)


def complete(n: int) -> str:
    return "_".join("2" * t for t in range(1, n))


@pytest.fixture(scope="module")
def n5_codes():
    return all_codes("mlp", n_nodes=5)


@pytest.fixture(scope="module")
def nb201_codes():
    return all_codes("nb201")


@pytest.mark.slow
def test_round_trip_all_codes(n5_codes, nb201_codes):
    assert len(n5_codes) == 59049 and len(nb201_codes) == 15625, "DESIGN.md §2: 3^10 and 5^6 codes"
    for c in n5_codes:
        assert parse_code(c, "mlp").code == c
    for c in nb201_codes:
        d = parse_code(c, "nb201")
        assert "_".join("".join(map(str, t)) for t in d.digits) == c
        assert arch_str_to_code(code_to_arch_str(c)) == c, f"DESIGN.md §8.1: arch string round trip failed for {c}"


def test_list_indices(n5_codes, nb201_codes):
    expect = {0: "0_00_000_0000", 1: "0_00_000_0001", 21952: "1_01_001_0001", 59048: "2_22_222_2222"}
    for i, c in expect.items():
        assert n5_codes[i] == c, f"DESIGN.md §2: all_codes('mlp', 5)[{i}] should be {c}"
    assert nb201_codes[0] == "0_00_000" and nb201_codes[9776] == "3_03_101", "DESIGN.md §2 NB201 indices"


def test_random_order_values():
    r = random_order(59049, seed=0)
    assert r.dtype == np.int64
    assert r[:5].tolist() == [42063, 12614, 37907, 18233, 2067], "DESIGN.md §2 permutation head"
    assert int(r.sum()) == 1_743_362_676, "DESIGN.md §2 permutation sum"
    assert random_order(15625, seed=0)[:5].tolist() == [11759, 10533, 8177, 7648, 14936], "DESIGN.md §2 NB201 head"


def test_arch_str_example():
    s = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
    assert code_to_arch_str("3_03_101") == s, "DESIGN.md §2 arch string"
    assert arch_str_to_code(s) == "3_03_101"


@pytest.mark.parametrize(
    "code,family",
    [("2_2", "mlp"), ("3_00_000_0000", "mlp"), ("2_02_0002", "mlp"), ("a_00_000", "mlp"), ("1_01_001_0001", "nb201")],
)
def test_invalid_codes(code, family):
    with pytest.raises(InvalidCodeError) as e:
        parse_code(code, family)
    assert code in str(e.value)


def test_adjacency_and_degree():
    d = parse_code("3_04_101", "nb201")
    a = d.adjacency()
    assert a[0, 1] == 1 and a[0, 2] == -1 and a[1, 2] == 0 and a[0, 3] == 0 and a[2, 3] == 0
    assert [d.in_degree(t) for t in range(4)] == [0, 1, 1, 2]
    assert d.edges() == [(0, 1, 3), (1, 2, 4), (0, 3, 1), (2, 3, 1)]
    assert depth_chain(2, 5) == "2_02_001_0001" and depth_chain(0, 4) == "1_01_001"


@pytest.mark.parametrize("n", range(3, 13))
def test_complete_dag_path_count(n):
    d = parse_code(complete(n))
    assert len(enumerate_paths(d)) == 2 ** (n - 2), "DESIGN.md §8.2 DFS: 2^(N-2) paths"
    assert sum(depth_histogram(d).values()) == 2 ** (n - 2), "DESIGN.md §8.2 DP: 2^(N-2) paths"
    assert path_moments(d).n_paths == 2 ** (n - 2)


def test_dp_equals_dfs_on_a_sample(n5_codes, nb201_codes):
    """The fast version of the exhaustive check below: 1,500 seeded codes per family, N = 3..9 complete-ish DAGs."""
    rng = np.random.default_rng(7)
    for fam, codes in (("mlp", n5_codes), ("nb201", nb201_codes)):
        for i in rng.choice(len(codes), 1500, replace=False):
            d = parse_code(codes[int(i)], fam)
            h = depth_histogram(d)
            assert h == histogram_from_dfs(d), f"DESIGN.md §8.2: DP != DFS on {d.code}"
            for offset in (1, 3):
                m = path_moments(d, offset)
                ks = [k for k, cnt in h.items() for _ in range(cnt)]
                assert (m.n_paths, m.m1, m.m2, m.m3) == (len(ks), sum(ks), sum(k**2 for k in ks), sum(k**3 for k in ks))
                assert m.S == sum((k + offset) ** 3 for k in ks) and m.offset == offset
            assert parse_code(codes[int(i)], fam).code == codes[int(i)]


@pytest.mark.slow
def test_dp_equals_dfs_everywhere(n5_codes, nb201_codes):
    no_path = Counter()
    n_paths_hist = Counter()
    for fam, codes in (("mlp", n5_codes), ("nb201", nb201_codes)):
        for c in codes:
            d = parse_code(c, fam)
            h = depth_histogram(d)
            assert h == histogram_from_dfs(d), f"DESIGN.md §8.2: DP != DFS on {c}"
            m = path_moments(d, 3)
            assert m.S == sum(cnt * (k + 3) ** 3 for k, cnt in h.items())
            n = sum(h.values())
            if n == 0:
                no_path[fam] += 1
            elif fam == "mlp":
                n_paths_hist[n] += 1
    assert no_path["mlp"] == 2471 and no_path["nb201"] == 341, f"DESIGN.md §8.2 no-path counts, got {dict(no_path)}"
    expect = {1: 9626, 2: 13288, 3: 11648, 4: 9728, 5: 5632, 6: 3584, 7: 2048, 8: 1024}
    assert dict(n_paths_hist) == expect, "DESIGN.md §8.2 N5 path-count histogram"


@pytest.mark.parametrize("n,s", [(12, 815_616), (16, 23_699_456), (20, 621_936_640)])
def test_complete_dag_exact_S(n, s):
    assert path_moments(parse_code(complete(n)), 3).S == s, f"DESIGN.md §8.2: S(offset 3) of the complete {n}-node DAG"


def test_export_matches_generators(tmp_path, capsys):
    main(["export", "--out", str(tmp_path)])
    assert json.loads((tmp_path / "all_dags_str_N5.json").read_text()) == all_codes("mlp", 5)
    assert json.loads((tmp_path / "arch_code_201.json").read_text()) == all_codes("nb201")
    assert np.array_equal(np.load(tmp_path / "random_dag_list_N5.npy"), random_order(59049))
    assert np.array_equal(np.load(tmp_path / "arch_indice_201.npy"), random_order(15625))


def test_info_prints_paths_and_multipliers(capsys):
    main(["info", "2_22_222_2222"])
    out = capsys.readouterr().out
    assert "paths 8" in out and "0.137409" in out and "0.049629" in out, "issue acceptance: dags info"


def test_export_to_unwritable_folder_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        run_main(main, ["export", "--out", "/proc/forbidden"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1, f"bad --out is exit 2 with one line, got {err}"
    assert "/proc/forbidden" in err[0] and "[Errno" not in err[0], "the line names the folder, not a raw errno"


def test_dags_does_not_import_scaling():
    """dags.py is the bottom layer: scaling.py imports it, never the other way (no import circle)."""
    import ast
    from pathlib import Path

    import hp_scaling.dags as dags

    tree = ast.parse(Path(dags.__file__).read_text())
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    top_level = {(n.module or "") for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert "hp_scaling.scaling" not in imported, "dags.py must not import scaling.py"
    assert not any(m.startswith("hp_scaling.") for m in top_level), "dags.py imports nothing of hp_scaling at load"
