"""DESIGN.md §7.12 (NTK), 7.16 (data readers on genuine-format CSVs), problems and power-law fits."""

from __future__ import annotations

import pytest
import torch
from sgd_helpers import rel

from sgd_genfunc.ntk import NTKTwoLayerMLP, empirical_ntk, lr_scale, ntk_mlp1, ntk_relu_infinite
from sgd_genfunc.problems import (
    fit_power_laws,
    hadamard_basis,
    real_problem,
    regression_data,
    spectral_data,
    synthetic_problem,
)


@pytest.fixture
def tiny_net():
    torch.manual_seed(0)
    return NTKTwoLayerMLP(5, 7).double(), torch.randn(9, 5, dtype=torch.float64)


def test_closed_form_ntk_equals_torch_func(tiny_net):
    model, X = tiny_net
    K = ntk_mlp1(model, X)
    K_ref = empirical_ntk(model, X)
    assert rel(K, K_ref) < 1e-10, "DESIGN.md §7.12: ntk_mlp1 equals empirical_ntk to 1e-10"
    for chunk in (1, 4, 9):
        assert rel(empirical_ntk(model, X, chunk_size=chunk), K_ref) < 1e-12, f"DESIGN.md §7.12: chunk_size {chunk}"
    recompute = empirical_ntk(model, X, chunk_size=4, max_jacobian_bytes=8)
    assert rel(recompute, K_ref) < 1e-12, "DESIGN.md §7.12: recompute path agrees"
    assert torch.equal(K, K.T) or rel(K, K.T) < 1e-15, "DESIGN.md §7.12: K symmetric"
    ev = torch.linalg.eigvalsh(K)
    assert ev.min() >= -1e-10 * ev.max(), "DESIGN.md §7.12: K PSD"


def test_empirical_ntk_memory_bound_and_cross_kernel(tiny_net, monkeypatch):
    """DESIGN.md §8 B4: the recompute path holds at most 2 chunk_size Jacobian rows and forms each pivot once."""
    import sgd_genfunc.ntk as ntk

    model, X = tiny_net
    K_ref = empirical_ntk(model, X)
    sizes = []
    blocks = ntk._jacobian_blocks
    monkeypatch.setattr(ntk, "_jacobian_blocks", lambda m, p, x: sizes.append(x.shape[0]) or blocks(m, p, x))
    K = empirical_ntk(model, X, chunk_size=2, max_jacobian_bytes=0)
    assert rel(K, K_ref) < 1e-12, "DESIGN.md §7.12: recompute path agrees"
    # pivots of 3 rows at 0, 3, 6, each followed by 1-row blocks of the rows after it: 9 + 6 + 3 rows
    assert sizes == [3, 1, 1, 1, 1, 1, 1, 3, 1, 1, 1, 3], f"Jacobian blocks formed: {sizes}"
    sizes.clear()
    cross = empirical_ntk(model, X, X[:5], chunk_size=2, max_jacobian_bytes=0)
    assert rel(cross, K_ref[:, :5]) < 1e-12, "DESIGN.md §7.12: J(x1) J(x2)^T on the recompute path"
    assert max(sizes) == 3 and len(sizes) == 3 + 3 * 5, f"Jacobian blocks formed: {sizes}"
    assert rel(empirical_ntk(model, X, X[:5], chunk_size=4), K_ref[:, :5]) < 1e-12, "kept-Jacobian cross kernel"


@pytest.mark.slow
def test_infinite_width_limit_on_digits():
    data = regression_data("digits", 300, seed=42)
    torch.manual_seed(0)
    model = NTKTwoLayerMLP(data.X.shape[1], 20000).double()
    K = ntk_mlp1(model, data.X)
    K_inf = ntk_relu_infinite(data.X)
    err = float((K - K_inf).norm() / K_inf.norm())
    assert err < 0.03, f"DESIGN.md §7.12: H = 20000 closed form vs infinite width rel Frobenius {err:.4f} (< 0.03)"
    assert torch.equal(K_inf, K_inf.T), "DESIGN.md §3.9: infinite-width kernel symmetric"


def test_digits_lr_scale_and_power_law_fit():
    prob = real_problem("digits", 1000, seed=42, hidden_dim=1000, ntk_model="mlp")
    scale = 1000 / prob.lambda_max
    assert 0.6 <= scale <= 0.9, f"DESIGN.md §7.12: digits lr_scale in [0.6, 0.9] (pilot 0.73-0.80), got {scale:.3f}"
    assert abs(lr_scale(prob.K_tilde * prob.lambda_max) - scale) < 1e-9
    fit = fit_power_laws(prob.lam, prob.c)
    assert 1.15 <= fit.nu <= 1.6, f"DESIGN.md §6 R1: digits nu in [1.15, 1.6] (pilot 1.37), got {fit.nu:.3f}"
    assert 0.4 <= fit.kappa <= 1.2, f"DESIGN.md §6 R1: digits kappa in [0.4, 1.2] (pilot 0.79), got {fit.kappa:.3f}"
    assert fit.kappa < 2 * fit.nu - 1, "DESIGN.md §6 R1: digits fit lies in the signal phase"


def test_synthetic_problem_and_spectral_data():
    prob = synthetic_problem(64, 1.5, 1.0, basis="hadamard")
    H = hadamard_basis(64)
    assert torch.allclose(H.T @ H, torch.eye(64, dtype=torch.float64), atol=1e-13)
    assert torch.allclose(H**2, torch.full_like(H, 1 / 64), atol=1e-15), "DESIGN.md §3.3: flat eigenvectors"
    assert abs(float(prob.c.sum()) - 1) < 1e-13, "DESIGN.md §5 (E13): sum c = 1"
    lam, U, c, lam_max = spectral_data(prob.K_tilde * 3.0, prob.d0)
    assert abs(lam_max - 3.0) < 1e-12 and rel(lam, prob.lam) < 1e-12 and rel(c, prob.c) < 1e-10
    with pytest.raises(ValueError, match="power of 2"):
        synthetic_problem(60, 1.5, 1.0, basis="hadamard")
    with pytest.raises(ValueError, match="nu"):
        synthetic_problem(64, 0.0, 1.0)


BIKE_HEADER = "instant,dteday,season,yr,mnth,hr,holiday,weekday,workingday,weathersit,temp,atemp,hum,windspeed,casual,registered,cnt"  # noqa: E501
SGEMM_HEADER = "MWG,NWG,KWG,MDIMC,NDIMC,MDIMA,NDIMB,KWI,VWM,VWN,STRM,STRN,SA,SB,Run1 (ms),Run2 (ms),Run3 (ms),Run4 (ms)"


def write_bike(path, n=40):
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [BIKE_HEADER]
    for i in range(n):
        rows.append(
            f"{i + 1},2011-01-01,1,0,1,{i % 24},0,6,0,{1 + i % 3},0.{24 + i % 50},0.2879,0.81,0.{i % 9},3,13,{16 + i}"
        )
    path.write_text("\n".join(rows) + "\n")


def write_sgemm(path, n=40):
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [SGEMM_HEADER]
    for i in range(n):
        f = [16 * (1 + i % 4), 16, 16, 8, 8, 8, 8, 2, 1 + i % 2, 1, 0, 0, 0, i % 2]
        rows.append(",".join(map(str, f)) + f",{100 + i}.5,{101 + i}.2,{99 + i}.9,{100 + i}.1")
    path.write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize(
    "name,layout",
    [
        ("bike_sharing", "Bike-Sharing/hour.csv"),
        ("bike_sharing", "bike_sharing/hour.csv"),
        ("sgemm_product", "sgemm_product/sgemm_product.csv"),
    ],
)
def test_uci_readers_standardize_on_subset(tmp_path, name, layout):
    (write_bike if name == "bike_sharing" else write_sgemm)(tmp_path / layout)
    data = regression_data(name, 30, root=tmp_path, seed=42)
    assert data.X.shape == (30, 12 if name == "bike_sharing" else 14)
    std = data.X.std(0)
    varying = std > 0
    assert torch.allclose(data.X.mean(0), torch.zeros_like(std), atol=1e-12), (
        "DESIGN.md §7.16: features mean 0 on subset"
    )
    assert torch.allclose(std[varying], torch.ones_like(std[varying]), atol=1e-12), "DESIGN.md §7.16: std 1 on subset"
    assert abs(float(data.y.mean())) < 1e-12 and abs(float(data.y.std()) - 1) < 1e-12
    with pytest.raises(ValueError, match="exceeds"):
        regression_data(name, 41, root=tmp_path)


def test_missing_file_names_it(tmp_path):
    from common.data import DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError, match="sgemm_product.csv.*00440"):
        regression_data("sgemm_product", 10, root=tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        regression_data("nope", 10)
