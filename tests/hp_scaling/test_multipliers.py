"""DESIGN.md §8.3 (multipliers) and 7.4 (NoPathError) for hp_scaling.scaling."""

import inspect
import math

import numpy as np
import pytest

from hp_scaling.dags import all_codes, depth_chain, parse_code
from hp_scaling.scaling import NoPathError, lr_multiplier, scaled_lr

TOL = 1e-6
# DESIGN.md §4 MLP table: code -> (offset 3, x0.46, offset 1)
MLP_TABLE = {
    "1_01_001_0001": (1.0, 0.46, 1.0),
    "0_00_000_2000": (0.649519, 0.298779, 0.353553),
    "2_00_000_0200": (0.464758, 0.213789, 0.192450),
    "2_02_000_0020": (0.353553, 0.162635, 0.125),
    "2_02_002_0002": (0.280566, 0.129060, 0.089443),
    "2_00_000_2200": (0.377964, 0.173864, 0.169031),
    "2_02_002_1002": (0.270135, 0.124262, 0.089087),
    "2_12_112_1112": (0.173205, 0.079674, 0.066815),
    "2_22_222_2222": (0.137409, 0.063208, 0.049629),
}
NB201_TABLE = {
    "1_01_001": (1.0, 0.46),
    "3_03_101": (0.188982, 0.086932),
    "3_33_333": (0.089087, 0.040980),
    "2_22_222": (0.089087, 0.040980),
    "1_11_111": (0.5, 0.23),
    "4_44_444": (0.5, 0.23),
    "0_00_300": (0.353553, 0.162635),
    "2_02_002": (0.125, 0.0575),
    "3_13_113": (0.111111, 0.051111),
}


@pytest.mark.parametrize("all_skip", ["count", "reference"])
@pytest.mark.parametrize("code", list(MLP_TABLE))
def test_mlp_table(code, all_skip):
    off3, x046, off1 = MLP_TABLE[code]
    assert lr_multiplier(code, all_skip=all_skip) == pytest.approx(off3, abs=TOL), f"DESIGN.md §4 offset 3, {code}"
    assert scaled_lr(0.46, code, all_skip=all_skip) == pytest.approx(x046, abs=TOL), f"DESIGN.md §4 x0.46, {code}"
    assert lr_multiplier(code, depth_offset=1, all_skip=all_skip) == pytest.approx(off1, abs=TOL), "DESIGN.md §4 off 1"


@pytest.mark.parametrize("all_skip", ["count", "reference"])
@pytest.mark.parametrize("code", list(NB201_TABLE))
def test_nb201_table(code, all_skip):
    m, x = NB201_TABLE[code]
    assert lr_multiplier(code, "nb201", all_skip=all_skip) == pytest.approx(m, abs=TOL), f"DESIGN.md §4 NB201 {code}"
    assert scaled_lr(0.46, code, "nb201") == pytest.approx(x, abs=TOL), f"DESIGN.md §4 NB201 x0.46 {code}"


def test_all_skip_modes():
    assert lr_multiplier("1_11_111_1111") == pytest.approx(0.353553, abs=TOL), "DESIGN.md §4 all_skip=count"
    assert lr_multiplier("1_11_111_1111", all_skip="reference") == 1.0, "DESIGN.md §4 reference quirk"


def test_cnn_kernel_factor():
    for q, f in [(1, 3.0), (3, 1.0), (5, 0.6), (7, 0.428571)]:
        assert lr_multiplier("1_01_001_0001", "cnn", q=q) == pytest.approx(f, abs=TOL), f"DESIGN.md §4 CNN 3/q, q={q}"
    assert lr_multiplier("2_02_002_0002", "cnn", q=7) == pytest.approx(0.120243, abs=TOL), "DESIGN.md §4 chain-4 q=7"
    assert lr_multiplier("2_22_222_2222", "cnn", q=5) == pytest.approx(0.082445, abs=TOL), "DESIGN.md §4 complete q=5"


def test_depth_chains():
    off3 = [1, 0.649519, 0.464758, 0.353553, 0.280566, 0.229640, 0.192450, 0.164317, 0.142427]
    off1 = [1, 0.353553, 0.192450, 0.125, 0.089443, 0.068041, 0.053995, 0.044194, 0.037037]
    for k in range(9):
        c = depth_chain(k, 9)
        assert lr_multiplier(c) == pytest.approx(off3[k], abs=TOL), f"DESIGN.md §4 depth chain k={k}, offset 3"
        assert lr_multiplier(c, depth_offset=1) == pytest.approx(off1[k], abs=TOL), f"DESIGN.md §4 chain k={k}, off 1"


def _distinct(codes, fam, **kw):
    vals = set()
    for c in codes:
        try:
            vals.add(round(lr_multiplier(c, fam, **kw), 9))
        except NoPathError:
            pass
    return vals


def test_distinct_nb201_multipliers():
    nb = _distinct(all_codes("nb201"), "nb201")
    assert len(nb) == 46 and min(nb) == pytest.approx(0.089087, abs=TOL), "DESIGN.md §8.3: 46 NB201 values"


@pytest.mark.slow
def test_distinct_multiplier_counts():
    n5 = all_codes("mlp", 5)
    assert len(_distinct(n5, "mlp")) == 337, "DESIGN.md §8.3: 337 distinct N5 multipliers (count)"
    assert len(_distinct(n5, "mlp", all_skip="reference")) == 332, "DESIGN.md §8.3: 332 distinct (reference quirk)"
    nb = _distinct(all_codes("nb201"), "nb201")
    assert len(nb) == 46 and min(nb) == pytest.approx(0.089087, abs=TOL), (
        "DESIGN.md §8.3: 46 NB201 values, min 0.089087"
    )


def test_monotone_in_edges():
    rng = np.random.default_rng(0)
    codes = all_codes("mlp", 5)
    checked = 0
    for i in rng.choice(len(codes), 2000, replace=False):
        c = codes[i]
        try:
            m0 = lr_multiplier(c)
        except NoPathError:
            continue
        for pos, ch in enumerate(c):
            ups = {"1": "2", "0": "12"}.get(ch, "")
            for u in ups:
                m1 = lr_multiplier(c[:pos] + u + c[pos + 1 :])
                assert m1 <= m0 + 1e-12, f"DESIGN.md §8.3: {c} -> {c[:pos] + u + c[pos + 1 :]} raised the multiplier"
                checked += 1
    assert checked > 5000


def test_no_width_argument():
    for fn in (lr_multiplier, scaled_lr):
        assert "width" not in inspect.signature(fn).parameters, "DESIGN.md §8.3: width does not enter eq. 8"


@pytest.mark.parametrize("code,fam", [("0_00_000_0000", "mlp"), ("0_04_002", "nb201")])
def test_no_path_error(code, fam):
    try:
        lr_multiplier(code, fam)
    except NoPathError as e:
        assert code in str(e) and isinstance(e, ValueError)
    except SystemExit:  # pragma: no cover - the failure this test guards against
        pytest.fail("DESIGN.md §8.4: NoPathError must not be SystemExit")
    else:
        pytest.fail(f"DESIGN.md §8.4: {code} should raise NoPathError")


def test_accepts_dag_and_arch_string():
    d = parse_code("3_03_101", "nb201")
    s = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
    assert lr_multiplier(d) == lr_multiplier(s, "nb201") == pytest.approx(0.188982, abs=TOL)
    assert math.isclose(lr_multiplier(parse_code("2_22_222_2222", "cnn"), "cnn", q=5), 0.082445, abs_tol=TOL)
