"""The user contract of the sgd_genfunc scripts (DESIGN.md §4, §9): devices, progress bars, files that must not run
code, the JSON hyperparameter dict, and the network regime under Jacobi schedules against its linearization."""

from __future__ import annotations

import importlib
import json
import pickle

import pytest
import torch

from common.cli import run_main

NO_TB = ["train_spectral_diagonal", "train_nn", "train_linearized", "scan_alpha_beta", "reproduce"]


def _main(name):
    return importlib.import_module(f"sgd_genfunc.{name}").main


def _exit_code(name, argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        run_main(_main(name), argv)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, f"one line on stderr, got {err!r}"
    return exc.value.code, err


def _run(name, argv, capsys) -> tuple[str, str]:
    assert _main(name)(argv) == 0
    out, err = capsys.readouterr()
    return out.strip().splitlines()[-1][len("run dir: ") :], err


@pytest.mark.parametrize(
    "name,argv",
    [
        ("scan_alpha_beta", []),
        ("tune_alpha_beta", []),
        ("phase_exponents", []),
        ("train_spectral_diagonal_from_hparam_dict", ["--hparam_dict_path", "x.json"]),
        ("reproduce", []),
    ],
)
@pytest.mark.parametrize("device", ["tpu", "cuda:7"])
def test_device_is_validated(name, argv, device, capsys):
    code, err = _exit_code(name, argv + ["--device", device], capsys)
    assert code == 2 and "device" in err, f"issue 12: --device {device} must be rejected by {name}: {err}"


def test_reproduce_is_cpu_only(capsys):
    code, err = _exit_code("reproduce", ["--device", "cuda"], capsys)
    assert code == 2 and "not supported by this script" in err


@pytest.mark.parametrize("name", NO_TB)
def test_tensorboard_flag_is_not_offered(name, capsys):
    code, err = _exit_code(name, ["--tensorboard"], capsys)
    assert code == 2 and "--tensorboard" in err, "scripts that write no event stream do not accept --tensorboard"


TINY = {
    "train_spectral_diagonal": (["--N", "32", "--nu", "1.5", "--n_steps", "20"], "SD steps"),
    "train_full": (["--N", "16", "--nu", "1.5", "--n_steps", "5"], "full steps"),
    "train_linearized": (["--N", "16", "--nu", "1.5", "--n_steps", "5"], "configs"),
    "scan_alpha_beta": (["--N", "32", "--n_steps", "10", "--n_alpha", "2", "--n_beta", "2", "--batch_size", "1"], "SD"),
    "phase_exponents": (["--N", "64", "--kappa", "1", "--n_steps", "20", "--fit_min", "2"], "SD steps"),
    "tune_alpha_beta": (["--pairs", "1.5,4", "--N", "32", "--n_steps", "10", "--betas", "0:0.1:0.1"], "pairs"),
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_progress_bar_shown_and_hidden(name, capsys, tmp_path):
    argv, desc = TINY[name]
    _, err = _run(name, argv + ["--save_dir", str(tmp_path / "a")], capsys)
    assert desc in err and "%|" in err, f"issue 12: {name} shows a progress bar, stderr was {err[-200:]!r}"
    _, err = _run(name, argv + ["--save_dir", str(tmp_path / "b"), "--no_progress"], capsys)
    assert desc not in err and "%|" not in err, f"--no_progress hides the bar of {name}: {err[-200:]!r}"


class _WritesMarker:
    """Pickles as a call of open(marker, 'w'): loading it unsafely creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_data_path_refuses_pickled_code(capsys, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"NTK_train_train": _WritesMarker(marker), "target_train_train": torch.zeros(4)}, evil)
    argv = ["--from_saved", "--data_path", str(evil), "--n_steps", "5", "--save_dir", str(tmp_path / "r")]
    code, err = _exit_code("train_spectral_diagonal", argv, capsys)
    assert code == 2 and str(evil) in err and "refused" in err, err
    assert not marker.exists(), "issue 13: loading --data_path ran code from the file"
    torch.load(evil, weights_only=False)  # the file is truly malicious: an unsafe load runs it
    assert marker.exists()


def test_data_path_plain_tensors_load(capsys, tmp_path):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(16, 3, generator=g, dtype=torch.float64)
    good = tmp_path / "kernel.pt"
    torch.save({"NTK_train_train": X @ X.T + torch.eye(16, dtype=torch.float64), "target_train_train": X[:, 0]}, good)
    argv = ["--from_saved", "--data_path", str(good), "--n_steps", "5", "--no_progress", "--save_dir", str(tmp_path)]
    path, _ = _run("train_spectral_diagonal", argv, capsys)
    curve = torch.load(f"{path}/loss_curves.pth", weights_only=True)[(10, 1.0, 0.0)]
    assert curve.shape == (6,) and abs(float(curve[0]) - float((X[:, 0] ** 2).sum()) / 32) < 1e-12


def test_hparam_pickle_with_code_is_refused(capsys, tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "hp.pkl"
    bad.write_bytes(pickle.dumps({(1.5, 4.0): _WritesMarker(marker)}))
    code, err = _exit_code("train_spectral_diagonal_from_hparam_dict", ["--hparam_dict_path", str(bad)], capsys)
    assert code == 2 and "hp.pkl" in err and not marker.exists(), err


def test_hparam_dict_json_roundtrip_and_seed_pickle(capsys, tmp_path):
    tune = ["--pairs", "1.5,4", "--N", "32", "--n_steps", "10", "--betas", "0:0.1:0.1", "--no_progress"]
    run_dir, _ = _run("tune_alpha_beta", tune + ["--save_dir", str(tmp_path / "t")], capsys)
    hp = json.loads(open(f"{run_dir}/hparam_dict.json").read())
    assert list(hp) == ["1.5,4.0"] and hp["1.5,4.0"] > 0
    seed_pkl = tmp_path / "seed.pkl"
    seed_pkl.write_bytes(pickle.dumps({(1.5, 4.0): hp["1.5,4.0"]}))
    curves = []
    for f, d in ((f"{run_dir}/hparam_dict.json", "j"), (str(seed_pkl), "p")):
        argv = [
            "--hparam_dict_path",
            f,
            "--N",
            "32",
            "--n_steps",
            "10",
            "--no_progress",
            "--save_dir",
            str(tmp_path / d),
        ]
        path, _ = _run("train_spectral_diagonal_from_hparam_dict", argv, capsys)
        curves.append(torch.load(f"{path}/loss_curves.pth", weights_only=True))
    assert list(curves[0]) == [(1.5, 4.0, 1, hp["1.5,4.0"], 0.0)]
    assert torch.equal(*(c[(1.5, 4.0, 1, hp["1.5,4.0"], 0.0)] for c in curves)), "json and the seed's pkl agree"


def test_train_nn_tags_rows_with_the_model(capsys, tmp_path):
    argv = ["--N", "32", "--hidden_dim", "8", "--n_steps", "3", "--batch_size", "4", "--n_val", "0", "--no_progress"]
    path, _ = _run("train_nn", argv + ["--save_dir", str(tmp_path)], capsys)
    rows = [json.loads(line) for line in open(f"{path}/metrics.jsonl")]
    assert len(rows) == 4 and {r["regime"] for r in rows} == {"mlp"}
    assert json.loads(open(f"{path}/summary.json").read())["model"] == "mlp"


JACOBI = ["--dataset", "digits", "--N", "200", "--hidden_dim", "2000", "--n_steps", "100", "--batch_size", "50"]
JACOBI += ["--lr", "0.1", "--no_progress"]


def _nn_and_linearized(capsys, tmp_path, extra):
    nn_dir, _ = _run("train_nn", JACOBI + extra + ["--n_val", "0", "--save_dir", str(tmp_path / "nn")], capsys)
    lin_argv = JACOBI + extra + ["--ntk_model", "mlp", "--save_dir", str(tmp_path / "lin")]
    lin_dir, _ = _run("train_linearized", lin_argv, capsys)
    nn = torch.load(f"{nn_dir}/histories.pth", weights_only=True)
    lin = torch.load(f"{lin_dir}/loss_curves.pth", weights_only=True)
    (key,) = list(nn)
    return nn[key]["train/loss"], lin[key][0]


def test_train_nn_jacobi_follows_linearized_run(capsys, tmp_path):
    """DESIGN.md §6 (R7): on digits (N = 200, H = 2000, b = 50, alpha = 0.1, a = b = 1, T = 100) the net under the
    Jacobi schedules stays within the R1 tolerance (15 %) of the linearized run that sees the same batches, at
    every step; the constant schedule does too; and the schedule really acts (L_T well below the constant run's)."""
    nn_c, lin_c = _nn_and_linearized(capsys, tmp_path / "c", [])
    nn_j, lin_j = _nn_and_linearized(capsys, tmp_path / "j", ["--sched", "jacobi", "--a", "1", "--b", "1"])
    for nn, lin, what in ((nn_c, lin_c, "constant"), (nn_j, lin_j, "jacobi")):
        assert nn.shape == lin.shape == (101,)
        rel = float(((nn - lin).abs() / lin).max())
        assert rel <= 0.15, f"{what}: max |NN - lin| / lin = {rel:.4f} > 0.15"
    assert float(lin_j[-1]) < 0.5 * float(lin_c[-1]) and float(nn_j[-1]) < 0.5 * float(nn_c[-1])
