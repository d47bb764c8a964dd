"""DESIGN.md §7.15 and the scripts' contracts: --help, bad input (one line, exit 2), outputs, resume."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _run(args, timeout=600):
    return subprocess.run([PY, *args], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)


def _main_of(script):
    import importlib

    return importlib.import_module("autowu." + Path(script).stem).main


def _in_process(script, args, capsys):
    """Run main() through common.cli.run_main as the __main__ guard does; return (exit code, stdout, stderr)."""
    from common.cli import run_main

    code = 0
    try:
        run_main(_main_of(script), args)
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("script", ["autowu/train.py", "autowu/simulate.py", "autowu/reproduce.py"])
def test_help(script, capsys):
    code, out, _ = _in_process(script, ["--help"], capsys)
    assert code == 0 and "usage" in out


BAD = [
    ("autowu/train.py", ["--model", "nope"]),
    ("autowu/train.py", ["--batch-size", "0"]),
    ("autowu/train.py", ["--epochs", "0"]),
    ("autowu/train.py", ["--dataset", "foo"]),
    ("autowu/train.py", ["--data-root", "/nonexistent/imagenet"]),
    ("autowu/train.py", ["--resume", "/nonexistent/ck.pt", "--save-dir", "/tmp/autowu_bad_resume"]),
    ("autowu/reproduce.py", ["--peaks", "1e-3,abc"]),
    ("autowu/reproduce.py", ["--warmups", "1.5"]),
    ("autowu/reproduce.py", ["--jobs", "0"]),
    ("autowu/simulate.py", ["--curve", "nope"]),
    ("autowu/simulate.py", ["--noise", "-1"]),
    ("autowu/simulate.py", ["--device", "tpu"]),
    ("autowu/simulate.py", ["--device", "cuda"]),  # CPU-only script (a scalar curve)
    ("autowu/simulate.py", ["--tensorboard"]),  # no per-step metrics: the flag is not offered
    ("autowu/reproduce.py", ["--device", "cuda:7"]),
    ("autowu/reproduce.py", ["--seeds", "0,-1"]),
    ("autowu/reproduce.py", ["--tensorboard"]),
    ("autowu/train.py", ["--device", "tpu"]),
    ("autowu/train.py", ["--workers", "-1"]),
    ("autowu/train.py", ["--label-smoothing", "abc"]),
    ("autowu/train.py", ["--min-lr", "2", "--max-lr", "1"]),
    ("autowu/train.py", ["--max-warmup-fraction", "1.5"]),
    ("autowu/train.py", ["--dist-backend", "mpi"]),
]


@pytest.mark.parametrize("script,args", BAD, ids=[f"{s.split('/')[1]}:{' '.join(a)}" for s, a in BAD])
def test_bad_input_one_line_exit_2(script, args, capsys):
    code, _, err = _in_process(script, args, capsys)
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err


def test_train_tensorboard_events_and_autowu_columns(tmp_path, capsys):
    """--tensorboard writes events through Run.log; each epoch row carries the epoch's AutoWU test."""
    args = ["--dataset", "digits", "--epochs", "4", "--batch-size", "64", "--smoke", "--device", "cpu"]
    code, out, err = _in_process(
        "autowu/train.py", [*args, "--no-progress", "--tensorboard", "--save-dir", str(tmp_path / "tb")], capsys
    )
    assert code in (0, None), err
    assert list((tmp_path / "tb" / "tensorboard").glob("events.out.tfevents.*")), "no TensorBoard events"
    with open(tmp_path / "tb" / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 and {"autowu/prob", "autowu/verdict", "autowu/eta_estimate"} <= set(rows[0])
    assert 0.0 <= float(rows[0]["autowu/prob"]) <= 1.0


@pytest.mark.slow
def test_simulate_writes_run_dir(tmp_path):
    r = _run(
        [
            "-m",
            "autowu.simulate",
            "--curve",
            "bowl",
            "--epochs",
            "20",
            "--steps-per-epoch",
            "10",
            "--save-dir",
            str(tmp_path / "sim"),
        ]
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == f"run dir: {tmp_path / 'sim'}"
    for name in ("config.json", "summary.json", "trace.csv", "trace.png"):
        assert (tmp_path / "sim" / name).is_file(), name
    assert json.loads((tmp_path / "sim" / "summary.json").read_text())["switch_step"] is not None


def _metrics(path):
    with open(path / "metrics.csv", newline="") as fh:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(fh)]


@pytest.mark.slow
def test_train_digits_outputs_and_exact_resume(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    common = [
        "autowu/train.py",
        "--dataset",
        "digits",
        "--epochs",
        "6",
        "--batch-size",
        "128",
        "--device",
        "cpu",
        "--no-progress",
    ]
    r = _run([*common, "--save-dir", str(full)])
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == f"run dir: {full}"
    for name in (
        "config.json",
        "metrics.csv",
        "autowu_tests.csv",
        "ramp.csv",
        "final.json",
        "checkpoint.pt",
        "summary.json",
        "lr.png",
        "ramp_loss.png",
        "curves.png",
    ):
        assert (full / name).is_file(), f"DESIGN.md §7.15: {name} missing"
    r = _run([*common, "--save-dir", str(part), "--stop-after-epoch", "3"])
    assert r.returncode == 0, r.stderr[-2000:]
    r = _run([*common, "--save-dir", str(part), "--resume", "auto"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"resumed from {part / 'checkpoint.pt'} at epoch 3" in r.stdout
    assert _metrics(part) == _metrics(full), "DESIGN.md §7.15: --resume auto gives the uninterrupted metrics.csv"


@pytest.mark.slow
def test_train_amp_cpu(tmp_path):
    r = _run(
        [
            "autowu/train.py",
            "--dataset",
            "digits",
            "--epochs",
            "2",
            "--batch-size",
            "128",
            "--device",
            "cpu",
            "--amp",
            "--no-progress",
            "--save-dir",
            str(tmp_path / "amp"),
        ]
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "amp" / "final.json").read_text())["acc1"] > 0


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_ranks_agree(tmp_path):
    r = _run(
        [
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            f"--master_port={_free_port()}",
            "autowu/train.py",
            "--dataset",
            "digits",
            "--epochs",
            "4",
            "--device",
            "cpu",
            "--no-progress",
            "--batch-size",
            "128",
            "--save-dir",
            str(tmp_path / "ddp"),
        ]
    )
    assert r.returncode == 0, r.stderr[-3000:]
    final = json.loads((tmp_path / "ddp" / "final.json").read_text())
    assert final["ranks_agree"] is True and final["world_size"] == 2, "DESIGN.md §7.15: ranks_agree: true"


@pytest.mark.slow
def test_seed_launch_line(tmp_path):
    r = _run(
        [
            "-m",
            "torch.distributed.launch",
            "--nproc_per_node=1",
            "--nnodes=1",
            "--node_rank=0",
            "--master_addr=127.0.0.1",
            f"--master_port={_free_port()}",
            "autowu/train.py",
            "--dataset",
            "digits",
            "--epochs",
            "6",
            "--batch-size",
            "128",
            "--device",
            "cpu",
            "--amp",
            "--no-progress",
            "--save-dir",
            str(tmp_path / "seed"),
        ]
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == f"run dir: {tmp_path / 'seed'}"
