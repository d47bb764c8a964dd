"""DESIGN.md §8.5 (init) and 7.6 (models)."""

import math

import pytest
import torch

from hp_scaling.models import DagCNN, DagMLP, TinyNetwork, build_model
from hp_scaling.models.tiny_network import REDUCTION_DEGREES

W = 512


@pytest.mark.parametrize("init,d", [("paper", 4), ("reference", 3)])
def test_edge_std_in_degree(init, d):
    torch.manual_seed(0)
    m = DagMLP("2_22_222_2222", 16, W, 10, init=init)
    std = m.edges["3_4"].weight.std().item()
    want = math.sqrt(2 / (W * d))
    assert abs(std / want - 1) < 0.02, f"DESIGN.md §8.5: edge 3->4 std {std:.5f} vs sqrt(2/(512*{d})) = {want:.5f} (2%)"


@pytest.mark.parametrize("init,want", [("paper", math.sqrt(2) / W), ("reference", 2 / 10)])
def test_readout_std(init, want):
    torch.manual_seed(0)
    m = DagMLP("2_22_222_2222", 16, W, 10, init=init)
    std = m.readout.weight.std().item()
    assert abs(std / want - 1) < 0.02, f"DESIGN.md §8.5: readout std {std:.5f} vs {want:.5f}"
    assert m.readout.bias.abs().max() == 0 and m.stem.bias.abs().max() == 0, "DESIGN.md §3: biases are 0"


def node_moments(init, block, draws=3):
    torch.manual_seed(0)
    acc = torch.zeros(5)
    for _ in range(draws):
        m = DagMLP("2_22_222_2222", W, W, 10, init=init, block=block)
        with torch.no_grad():
            nv = m.node_values(torch.randn(1024, W))[:5]
        acc += torch.tensor([v.pow(2).sum(1).mean().item() for v in nv]) / draws
    return (acc / acc[0]).tolist()


@pytest.fixture(scope="module")
def moments():
    pairs = [("paper", "pre"), ("he", "pre"), ("reference", "post"), ("he", "post")]
    return {(i, b): node_moments(i, b) for i, b in pairs}


def test_moments_paper_preserved(moments):
    r = moments[("paper", "pre")]
    assert all(abs(v - 1) < 0.10 for v in r), f"DESIGN.md §8.5: paper/pre node moments within 10% of node 0, got {r}"


def test_moments_he_grows(moments):
    r = moments[("he", "pre")]
    assert r[-1] >= 4, f"DESIGN.md §8.5: he/pre last node >= 4x node 0 (expected ~9), got {r[-1]:.2f}"


def test_moments_reference_below_he_post(moments):
    ref, he = moments[("reference", "post")][-1], moments[("he", "post")][-1]
    assert ref < he, f"DESIGN.md §8.5: reference/post last node {ref:.2f} must be below he/post {he:.2f} (~9.8 vs ~20)"


@pytest.mark.parametrize("code,count", [("3_33_333", 1_531_546), ("0_00_000", 73_306), ("3_03_101", 559_386)])
def test_nb201_parameter_counts(code, count):
    n = sum(p.numel() for p in TinyNetwork(code, C=16, num_classes=10).parameters())
    assert n == count, f"DESIGN.md §10: TinyNetwork {code} parameter count {n} != {count}"


@pytest.mark.parametrize("init", ["paper", "reference"])
def test_nb201_init(init):
    torch.manual_seed(0)
    net = TinyNetwork("3_03_101", C=16, num_classes=10, init=init)
    want = (2 if init == "reference" else math.sqrt(2)) / 64
    std = net.classifier.weight.std().item()
    assert abs(std / want - 1) < 0.1, f"DESIGN.md §3: classifier std {std:.5f} vs {want:.5f}"
    if init == "reference":
        assert want == pytest.approx(0.03125)
    assert REDUCTION_DEGREES[init] == {"paper": (1, 2, 2), "reference": (2, 1, 2)}[init], "DESIGN.md §3 degrees"
    red = net.cells[5]
    fan = red.conv_b.conv.in_channels * 9
    d_b = REDUCTION_DEGREES[init][1]
    std_b = red.conv_b.conv.weight.std().item()
    assert abs(std_b / math.sqrt(2 / (fan * d_b)) - 1) < 0.05, "DESIGN.md §3: conv_b degree"
    # cell 3_03_101: edge 1->2 conv (d_in(2)=1, d_in(1)=1); edge 0->1 (d_in(1)=1, d_in(0)=0 -> 1)
    conv = net.cells[-1].ops["1_2"].conv
    assert abs(conv.weight.std().item() / math.sqrt(2 / (64 * 9)) - 1) < 0.05
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0), "DESIGN.md §3: BN gamma 1, beta 0"


def test_zero_edges_have_no_parameters():
    m = DagMLP("0_20_001_0001", 8, 4, 3)
    assert set(m.edges.keys()) == {"0_2"}
    assert len(list(m.parameters())) == 2 + 2 + 2
    c = DagCNN("0_00_000_2000", 1, 4, 3)
    assert set(c.edges.keys()) == {"0_4"}


@pytest.mark.parametrize("arch", ["mlp", "cnn", "tinynetwork"])
@pytest.mark.parametrize("shape,classes", [((3, 32, 32), 10), ((3, 16, 16), 120), ((1, 8, 8), 10)])
def test_forward_shapes(arch, shape, classes):
    code = "3_03_101" if arch == "tinynetwork" else "2_12_112_1112"
    m = build_model(arch, code, in_shape=shape, num_classes=classes, width=4, cells_per_stage=1)
    assert m(torch.randn(2, *shape)).shape == (2, classes)


@pytest.mark.parametrize("q", [1, 3, 5, 7])
def test_cnn_keeps_spatial_size(q):
    m = DagCNN("2_02_002_0002", 3, 4, 10, kernel_size=q)
    nodes = m.node_values(torch.randn(2, 3, 12, 12))
    assert all(v.shape == (2, 4, 12, 12) for v in nodes[:-1]), f"DESIGN.md §8.6: q={q} keeps 12x12"


def test_bad_init_raises():
    with pytest.raises(ValueError, match="init"):
        DagMLP("2_02_002_0002", 4, 4, 2, init="xavier")


def test_init_gap_on_one_dag():
    """DESIGN.md §3.3: eq. 4 divides edge s->t by d_in(t); the reference code divides by d_in(s) (source, min 1),
    squares its readout std (2/classes) and uses fan_out. Pinned per edge on the complete 5-node DAG."""
    from hp_scaling.dags import parse_code
    from hp_scaling.scaling import INIT_PARTS, edge_std, readout_std, stem_std

    dag = parse_code("2_22_222_2222")
    edges = [(s, t) for s, t, _ in dag.edges()]
    w = 64

    def degree(init, s, t):
        return round(2.0 / (w * edge_std(init, w, w, dag.in_degree(t), dag.in_degree(s)) ** 2))

    assert [degree("paper", s, t) for s, t in edges] == [1, 2, 2, 3, 3, 3, 4, 4, 4, 4], "eq. 4: d_in(target)"
    assert [degree("reference", s, t) for s, t in edges] == [1, 1, 1, 1, 1, 2, 1, 1, 2, 3], "code: d_in(source)"
    assert degree("paper", 3, 4) == 4 and degree("reference", 3, 4) == 3
    assert readout_std("paper", w, 10) == pytest.approx(2**0.5 / 64) and readout_std("reference", w, 10) == 0.2
    assert readout_std("reference", w, 10) / readout_std("paper", w, 10) == pytest.approx(9.05, abs=0.01)
    assert stem_std("paper", 64, w) == stem_std("reference", 64, w), "digits: in_dim = width = 64, stems agree"
    assert stem_std("reference", 3072, 512) == pytest.approx((2 / 512) ** 0.5), "reference: fan_out (width)"
    swapped = {k: v for k, v in INIT_PARTS.items() if k not in ("paper", "reference", "he")}
    for name, parts in swapped.items():
        base = INIT_PARTS[name.split("_")[0]]
        assert sum(a != b for a, b in zip(parts.__dict__.values(), base.__dict__.values())) == 1, name
