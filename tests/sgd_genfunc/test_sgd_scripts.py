"""DESIGN.md §7.13, 7.15, 7.17 and 9: script CLIs, bad input, outputs, determinism, divergence and resume."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from common.cli import run_main
from sgd_genfunc.training import batch_streams, draw_batches

SCRIPTS = [
    "train_nn",
    "train_linearized",
    "train_full",
    "train_spectral_diagonal",
    "train_4_regimes",
    "train_4_regimes_serial",
    "train_spectral_diagonal_from_hparam_dict",
    "scan_alpha_beta",
    "tune_alpha_beta",
    "phase_exponents",
    "reproduce",
]


def main_of(name):
    return importlib.import_module(f"sgd_genfunc.{name}").main


def run_ok(name, argv, capsys):
    rc = main_of(name)(argv)
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0 and out[-1].startswith("run dir: "), f"DESIGN.md §4: last line 'run dir: <path>', got {out[-1:]}"
    return out[-1][len("run dir: ") :]


def exits_2(name, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        run_main(main_of(name), argv)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2, f"DESIGN.md §9: bad input exits 2 ({name} {argv})"
    assert len(err.splitlines()) == 1 and "Traceback" not in err, f"DESIGN.md §9: one line on stderr, got {err!r}"
    return err


@pytest.mark.parametrize("name", SCRIPTS)
def test_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main_of(name)(["--help"])
    assert exc.value.code == 0 and "usage" in capsys.readouterr().out


@pytest.mark.slow
def test_both_invocation_forms(repo_root):
    for cmd in (
        [sys.executable, "sgd_genfunc/train_full.py", "--help"],
        [sys.executable, "-m", "sgd_genfunc.scan_alpha_beta", "--help"],
    ):
        res = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0 and "usage" in res.stdout, (
            f"DESIGN.md §2: {' '.join(cmd[1:])} works: {res.stderr[-300:]}"
        )


SD = "train_spectral_diagonal"
TINY = ["--N", "32", "--nu", "1.5", "--n_steps", "20", "--no_progress"]


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--batch_size", "0"], "batch_size"),
        (["--batch_size", "33"], "batch_size"),
        (["--lr", "-0.1"], "--lr"),
        (["--nu", "0"], "--nu"),
        (["--dataset", "nope"], "unknown dataset"),
        (["--lr", "0.1", "0.2", "--momentum", "0", "0.1", "0.2", "--aggr_type", "zip"], "zip"),
    ],
)
def test_bad_input_exits_2(argv, needle, capsys, tmp_path):
    err = exits_2(SD, TINY + ["--save_dir", str(tmp_path)] + argv, capsys)
    assert needle in err, f"DESIGN.md §9: message names the problem ({needle}): {err}"


def test_bad_sizes_exit_2(capsys, tmp_path):
    exits_2(SD, ["--N", "1", "--n_steps", "5", "--batch_size", "1", "--save_dir", str(tmp_path)], capsys)
    assert "exceeds" in exits_2("train_nn", ["--N", "5000", "--n_steps", "2", "--save_dir", str(tmp_path)], capsys)
    assert "unrecognized" in exits_2("train_nn", ["--nu", "1.5", "--save_dir", str(tmp_path)], capsys)
    err = exits_2(
        "train_4_regimes_serial",
        [
            "--dataset",
            "sgemm_product",
            "--data_root",
            str(tmp_path),
            "--N",
            "30",
            "--n_steps",
            "2",
            "--save_dir",
            str(tmp_path / "r"),
        ],
        capsys,
    )
    assert "sgemm_product.csv" in err and "00440" in err, f"DESIGN.md §9: missing file named with the seed URL: {err}"


def test_zip_lengths_and_outputs(capsys, tmp_path):
    argv = TINY[:-3] + ["--n_steps", "20", "--track_freq", "7", "--track_diag_err", "--lr", "0.1", "0.2"]
    argv += ["--momentum", "0.0", "--batch_size", "1", "4", "--aggr_type", "zip", "--save_dir", str(tmp_path)]
    path = run_ok(SD, argv, capsys)
    curves = torch.load(f"{path}/loss_curves.pth", weights_only=True)
    assert list(curves) == [(1, 0.1, 0.0), (4, 0.2, 0.0)], "DESIGN.md §4: (b, lr, beta) keys, zip pairs"
    assert all(v.shape == (21,) and v.dtype == torch.float64 for v in curves.values()), (
        "DESIGN.md §3.9: n_steps+1 entries"
    )
    diag = torch.load(f"{path}/diag_errs.pth", weights_only=True)
    assert diag[(1, 0.1, 0.0)].shape == (3, 32), "DESIGN.md §3.9: n_steps//track_freq + 1 tracked rows"
    summary = json.loads(open(f"{path}/summary.json").read())
    assert summary["phase"] == "signal" and "alpha_c" in summary["configs"][0] and "wall_time_s" in summary


def test_divergence_is_recorded(capsys, tmp_path):
    argv = TINY + ["--n_steps", "60", "--lr", "0.5", "5.0", "--batch_size", "1", "--save_dir", str(tmp_path)]
    path = run_ok(SD, argv, capsys)
    curves = torch.load(f"{path}/loss_curves.pth", weights_only=True)
    bad = curves[(1, 5.0, 0.0)]
    assert not torch.isnan(bad).any() and torch.isinf(bad[-1]), "DESIGN.md §9: later entries +inf, never NaN"
    summary = json.loads(open(f"{path}/summary.json").read())
    assert summary["diverged"] == [[1, 5.0, 0.0]], "DESIGN.md §9: summary.json lists diverged configs"


def test_full_script_matches_sd_on_hadamard(capsys, tmp_path):
    common = ["--N", "64", "--nu", "1.5", "--n_steps", "1000", "--no_progress"]
    full = run_ok(
        "train_full", common + ["--basis", "hadamard", "--init", "diagonal", "--save_dir", str(tmp_path / "f")], capsys
    )
    sd = run_ok(SD, common + ["--save_dir", str(tmp_path / "s")], capsys)
    a = torch.load(f"{full}/loss_curves.pth", weights_only=True)[(10, 1.0, 0.0)]
    b = torch.load(f"{sd}/loss_curves.pth", weights_only=True)[(10, 1.0, 0.0)]
    err = float(((a - b).abs() / b).max())
    assert err < 1e-10, f"issue acceptance: train_full (hadamard, diagonal) matches SD tau=+1 to 1e-10, got {err:.2e}"


def test_resume_skips_finished_configs_and_is_bitwise(capsys, tmp_path):
    argv = TINY + ["--lr", "0.1", "0.2", "0.3", "--batch_size", "2"]
    ref = run_ok(SD, argv + ["--save_dir", str(tmp_path / "a")], capsys)
    part = tmp_path / "b"
    run_ok(SD, argv + ["--save_dir", str(part)], capsys)
    files = sorted((part / "configs").iterdir())
    files[-1].unlink()  # as if killed before the last config finished
    (part / "loss_curves.pth").unlink()
    kept = {f: f.stat().st_mtime_ns for f in files[:-1]}
    assert main_of(SD)(argv + ["--save_dir", str(part), "--resume"]) == 0
    out = capsys.readouterr().out
    assert f"resumed from {part / 'configs'} at 2 finished config(s)" in out, "the resume is announced"
    assert all(f.stat().st_mtime_ns == t for f, t in kept.items()), "DESIGN.md §9: resume repeats no finished config"
    a, b = (open(f"{p}/loss_curves.pth", "rb").read() for p in (ref, part))
    assert a == b, "DESIGN.md §9: resumed run writes bitwise the same .pth"


def test_batch_streams_shared_between_nn_and_linearized():
    r = batch_streams(42, 3)[2]
    chunked = draw_batches(r, 50, 100, 10)
    r2 = batch_streams(42, 3)[2]
    stepwise = np.concatenate([draw_batches(r2, 1, 100, 10) for _ in range(50)])
    assert np.array_equal(chunked, stepwise), (
        "DESIGN.md §3.9: NN run r (per step) and linearized run r (chunks) share batches"
    )
    assert all(len(set(row)) == 10 for row in chunked), "DESIGN.md §3.9: b distinct indices per step"


@pytest.mark.slow
def test_four_regimes_deterministic_and_lr_scale(capsys, tmp_path):
    argv = [
        "--N",
        "200",
        "--hidden_dim",
        "100",
        "--n_steps",
        "30",
        "--batch_size",
        "10",
        "--lr",
        "1.2",
        "--no_progress",
    ]
    p1 = run_ok("train_4_regimes", argv + ["--save_dir", str(tmp_path / "1")], capsys)
    p2 = run_ok("train_4_regimes", argv + ["--save_dir", str(tmp_path / "2")], capsys)
    p3 = run_ok("train_4_regimes", argv + ["--seed", "7", "--save_dir", str(tmp_path / "3")], capsys)
    name = "loss_curves_4_regimes.pth"
    a, b = (open(f"{p}/{name}", "rb").read() for p in (p1, p2))
    assert a == b, "DESIGN.md §7.17: same seed gives bitwise equal .pth (CPU)"
    c1, c3 = (torch.load(f"{p}/{name}", weights_only=True)[(10, 1.2, 0.0)] for p in (p1, p3))
    assert set(c1) == {"mlp", "mean_field", "gauss", "linearized"}, "DESIGN.md §4: regime keys"
    assert not torch.equal(c1["mlp"], c3["mlp"]) and not torch.equal(c1["linearized"], c3["linearized"])
    data = torch.load(f"{p1}/data.pth", weights_only=True)
    assert set(data) >= {"c_diag", "eigv", "lambda_max", "lr_scale"}
    assert abs(data["lr_scale"] - 200 / data["lambda_max"]) < 1e-12, "DESIGN.md §3.9: lr_scale = N / lambda_max"
    p4 = run_ok("train_4_regimes", argv + ["--lr_scale", "1", "--save_dir", str(tmp_path / "4")], capsys)
    assert torch.load(f"{p4}/data.pth", weights_only=True)["lr_scale"] == 1.0, (
        "DESIGN.md §7.13: --lr_scale 1 gives lr = alpha"
    )
