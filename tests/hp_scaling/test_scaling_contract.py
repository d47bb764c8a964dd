"""scaling.py edge cases (DESIGN.md §3, §4): path sums, argument checks, families of parsed DAGs, init parts.

Written against the mutants that survived the table tests (make mutation): every assertion pins a value or a
message a plausible one-line bug would change.
"""

import math

import pytest

from hp_scaling.dags import parse_code
from hp_scaling.scaling import (
    INIT_PARTS,
    NoPathError,
    default_block,
    edge_std,
    init_parts,
    lr_multiplier,
    path_sum,
    scaled_lr,
    stem_std,
    transfer_factor,
)

TOL = 1e-6


def test_path_sum_values_and_defaults():
    # k_p of the complete 5-node DAG: [4, 3, 3, 2, 3, 2, 2, 1]
    assert path_sum("2_22_222_2222") == 1430, "DESIGN.md §4: S(offset 3) = sum (k_p + 3)^3"
    assert path_sum("2_22_222_2222", depth_offset=1) == 406
    assert path_sum("3_03_101", "nb201") == 28, "NB201 default offset 1: (2+1)^3 + (0+1)^3"
    assert path_sum("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|", "nb201") == 28
    assert path_sum(parse_code("3_03_101", "nb201")) == 28, "a parsed Dag keeps its family"
    assert path_sum("0_00_000_2000") == 64, "one path (k = 1) is not 'no path'"


def test_path_sum_without_path_names_the_code():
    with pytest.raises(NoPathError, match="0_00_000_0000 has no input-to-output path"):
        path_sum("0_00_000_0000")


def test_offset_and_all_skip_are_checked():
    with pytest.raises(ValueError, match="depth_offset must be 'auto' or an integer >= 1"):
        lr_multiplier("2_02_002_0002", depth_offset=0)
    with pytest.raises(ValueError, match="all_skip must be 'count' or 'reference'"):
        lr_multiplier("2_02_002_0002", all_skip="sometimes")


def test_family_of_a_parsed_dag_and_the_kernel_factor():
    chain4 = parse_code("2_02_002_0002", "mlp")
    assert lr_multiplier(chain4, "cnn", q=7) == pytest.approx(0.120243, abs=TOL), "a Dag passed as cnn gets 3/q"
    assert lr_multiplier("2_02_002_0002", "mlp", q=7) == pytest.approx(0.280566, abs=TOL), "mlp ignores q"
    assert lr_multiplier("2_02_002_0002", "cnn") == pytest.approx(0.280566, abs=TOL), "cnn without q: no factor"
    assert lr_multiplier("2_02_002_0002", "cnn", q=5, kernel_base=5) == pytest.approx(0.280566, abs=TOL)
    assert lr_multiplier(parse_code("3_03_101", "nb201")) == pytest.approx(0.188982, abs=TOL), "Dag keeps nb201"
    all_skip = "1_11_111_1111"
    assert lr_multiplier(all_skip, "cnn", q=7, all_skip="reference") == pytest.approx(3 / 7, abs=TOL)
    assert lr_multiplier(all_skip, "cnn", q=7, kernel_base=5, all_skip="reference") == pytest.approx(5 / 7, abs=TOL)


def test_transfer_factor_checks():
    assert transfer_factor(1, 1, q=3) == 1.0, "kernel_base defaults to 3"
    assert transfer_factor(27, 27 * 4, q=6, kernel_base=3) == pytest.approx(0.25)
    for s_base, s in ((0, 1), (1, 0), (-1, 1), (1, -1)):
        with pytest.raises(ValueError, match="path sums must be > 0"):
            transfer_factor(s_base, s)
    with pytest.raises(ValueError, match="kernel size q must be >= 1"):
        transfer_factor(1, 1, q=0)


def test_scaled_lr():
    assert scaled_lr(0.46, "2_22_222_2222") == pytest.approx(0.063208, abs=TOL)
    assert scaled_lr(0.46, "2_22_222_2222", depth_offset=1) == pytest.approx(0.46 * 0.049629, abs=TOL)
    for bad in (0.0, -0.1):
        with pytest.raises(ValueError, match="lr_base must be > 0"):
            scaled_lr(bad, "2_22_222_2222")


@pytest.mark.parametrize(
    "init,block",
    [
        ("paper", "pre"),
        ("he", "pre"),
        ("reference", "post"),
        ("torch", "post"),
        ("paper_readout_classes", "pre"),
        ("paper_source_degree", "pre"),
        ("reference_readout_mup", "post"),
    ],
)
def test_default_block(init, block):
    assert default_block(init) == block
    assert default_block(init, "pre") == "pre" and default_block(init, "post") == "post"


def test_bad_block_and_init_messages():
    with pytest.raises(ValueError, match="block must be auto, pre or post, got 'sideways'"):
        default_block("paper", "sideways")
    with pytest.raises(ValueError, match="^init 'torch' keeps PyTorch's default layer init; it has no eq. 4 parts$"):
        init_parts("torch")
    with pytest.raises(ValueError, match="init must be one of"):
        init_parts("xavier")
    assert init_parts("reference") is INIT_PARTS["reference"]


def test_edge_and_stem_std_use_the_right_fan_and_degree():
    # fan_in 100 differs from fan_out 64 so that the two fans give different stds
    assert edge_std("paper", 100, 64, 4, 3) == pytest.approx(math.sqrt(2 / 400))
    assert edge_std("reference", 100, 64, 4, 3) == pytest.approx(math.sqrt(2 / 192))
    assert edge_std("reference", 100, 64, 4, 0) == pytest.approx(math.sqrt(2 / 64)), "source degree 0 counts as 1"
    assert edge_std("he", 100, 64, 4, 3) == pytest.approx(math.sqrt(2 / 100)), "He: no degree"
    assert edge_std("paper_source_degree", 100, 64, 4, 3) == pytest.approx(math.sqrt(2 / 300))
    assert stem_std("paper", 3, 16, q=3) == pytest.approx(math.sqrt(2 / 27))
    assert stem_std("reference", 3, 16, q=3) == pytest.approx(math.sqrt(2 / 144))
    assert stem_std("he", 64, 512) == pytest.approx(math.sqrt(2 / 64))
