"""DESIGN.md §7.10 (math_experiments end to end), 7.16 (train.py smoke), 7.17 (CLI: --help, bad input, seed labels)."""

from __future__ import annotations

import csv
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from common.cli import UsageError
from forward_grad import approximation_quality
from forward_grad.function_optimization import math_experiments, optimize
from forward_grad.lr_search import propulate_search
from forward_grad.lr_search.search import task_label
from forward_grad.nn_training import train

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = [approximation_quality, math_experiments, train, propulate_search]


@pytest.mark.parametrize("module", SCRIPTS, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_help_exits_zero(module, capsys):
    with pytest.raises(SystemExit) as exc:
        module.main(["--help"])
    assert exc.value.code == 0
    assert "--seed" in capsys.readouterr().out


SEED_LINES = {
    "--num_evaluations 100 --gradient frog -k 4 math --function sphere -n 64": "math/sphere_n=0064/frog_k=4",
    "--num_evaluations 100 --gradient bp -k 1 math --function rosenbrock -n 1": "math/rosenbrock_n=0001/bp",
    "--num_evaluations 100 --gradient fg-mean -k 1 nn --device cuda --model fc --model_width 256":
        "nns/fc_w=256__mnist/fg-mean_k=1",
    "--num_evaluations 100 --gradient frog -k 16 nn --device cuda --model vit --dataset cifar10 --epochs 50":
        "nns/vit__cifar10__e=50/frog_k=16",
    "--gradient fg-mean -k 16 --tangent_sampler specific_angle_30 math --function styblinski-tang -n 64":
        "math/styblinski-tang_n=0064/fg-mean_k=16__specific_angle_30",
}  # fmt: skip


@pytest.mark.parametrize("line,label", list(SEED_LINES.items()), ids=range(len(SEED_LINES)))
def test_seed_commands_parse_to_labels(line, label, monkeypatch):
    import torch

    # the seed lines name `--device cuda`, validated at parse time: pretend a GPU so they parse on a CPU box
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    args = propulate_search.build_parser().parse_args(shlex.split(line))
    cfg = propulate_search.config_from_args(args)
    cfg.validate()
    assert task_label(cfg) == label, f"DESIGN.md §3.5 label for {line!r}"


BAD = [
    (propulate_search, "--tangent_sampler specific_angle_0 math --function sphere -n 4"),
    (propulate_search, "-k 0 math --function sphere -n 4"),
    (propulate_search, "math --function sphere -n 0"),
    (propulate_search, "--limits 0 -1 math --function sphere -n 4"),
    (propulate_search, "math --function ackley -n 4"),
    (propulate_search, "--name '' math --function sphere -n 4"),
    (propulate_search, "--name /tmp/abs math --function sphere -n 4"),
    (propulate_search, "--name a/../../b math --function sphere -n 4"),
    (math_experiments, "--approaches fg-mean:0 --lr 0.1"),
    (math_experiments, "--functions ackley --lr 0.1"),
    (approximation_quality, "--tangent_sampler specific_angle_120"),
    (approximation_quality, "--aggregations median"),
    (train, "--dataset digits --initial_lr fast"),
    (train, "--dataset digits --epochs 0"),
    (train, "--dataset digits --configfile /nonexistent.ini"),
    (train, "--dataset digits --device tpu"),
    (math_experiments, "--lr_table /nonexistent.csv --functions sphere --n 4"),
    (math_experiments, "--device cuda:7 --lr 0.1"),
    (approximation_quality, "--device tpu"),
    (approximation_quality, "--tensorboard"),
    (propulate_search, "math --function sphere -n 4 --device cuda"),
    (propulate_search, "nn --model fc --device tpu"),
]


@pytest.mark.parametrize("module,line", BAD, ids=range(len(BAD)))
def test_bad_input_raises_usage_error(module, line, tmp_path):
    with pytest.raises((UsageError, SystemExit)) as exc:
        module.main(
            [*shlex.split(line), "--out", str(tmp_path)] if module is not propulate_search else shlex.split(line)
        )
    if exc.type is SystemExit:
        assert exc.value.code == 2
    for word in shlex.split(line):  # a named file is named in the message
        if word.startswith("/nonexistent"):
            assert word in str(exc.value)


def test_bad_input_is_one_line_exit_2():
    script = REPO / "forward_grad" / "lr_search" / "propulate_search.py"
    cmd = [
        sys.executable,
        str(script),
        "--tangent_sampler",
        "specific_angle_0",
        "math",
        "--function",
        "sphere",
        "-n",
        "4",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "Warning" not in ln and "warnings.warn" not in ln]
    assert len(lines) == 1 and "(0, 90]" in lines[0], proc.stderr


def test_search_name_sets_run_dir(tmp_path, capsys):
    root = tmp_path / "search"
    line = "--num_evaluations 2 --gradient fg-mean -k 2 --name my_run --no_progress math --function sphere -n 4"
    assert propulate_search.main(["--search_root", str(root), *shlex.split(line)]) == 0
    run_dir = root / "my_run"
    assert (run_dir / "config.json").is_file() and (run_dir / "summary.json").is_file()
    assert not (root / "math").exists(), "with --name the label directory is not created"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["label"] == "math/sphere_n=0004/fg-mean_k=2" and config["name"] == "my_run"
    assert json.loads((run_dir / "summary.json").read_text())["label"] == config["label"]
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == f"run dir: {run_dir}"


def test_requirements_match_base():
    base = {ln.strip() for ln in (REPO / "requirements" / "base.txt").read_text().splitlines() if "==" in ln}
    ours = [ln.strip() for ln in (REPO / "forward_grad/lr_search/requirements.txt").read_text().splitlines()]
    pins = [ln for ln in ours if ln and not ln.startswith("#")]
    assert pins and all(p in base for p in pins), f"DESIGN.md §7.17: pins differ: {[p for p in pins if p not in base]}"


def test_math_experiments_end_to_end(tmp_path, capsys):
    argv = ["--functions", "sphere", "styblinski-tang", "--n", "4", "64", "--seeds", "0", "1", "--approaches", "bp",
            "fg-mean:2", "frog:2", "--lr", "0.02", "--max_steps", "20", "--out", str(tmp_path), "--name", "e2e",
            "--no_progress"]  # fmt: skip
    math_experiments.main(argv)
    out = capsys.readouterr().out.strip().splitlines()
    run_dir = tmp_path / "forward_grad" / "math_experiments" / "e2e"
    assert out[-1] == f"run dir: {run_dir}"
    for name in ("all.csv", "history.csv", "summary.csv", "summary.json", "config.json", "final_vs_n.png"):
        assert (run_dir / name).exists(), name
    rows = list(csv.DictReader(open(run_dir / "all.csv")))
    assert len(rows) == 2 * 2 * 3 * 2
    row = next(r for r in rows if r["function"] == "styblinski-tang" and r["n"] == "64" and r["approach"] == "frog:2")
    direct = optimize("styblinski-tang", 64, "frog:2", 0.02, max_steps=20, seed=int(row["seed"]), patience=50)
    assert float(row["final_f"]) == direct.final_f, "DESIGN.md §7.10: script row != direct library call"
    math_experiments.main([*argv, "--resume"])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["runs_this_call"] == 0 and summary["runs"] == 24, "DESIGN.md §7.10: --resume re-ran finished runs"


TINY_INI = """[DEFAULT]
initial_lr = 0.01
[VIT]
vit_layers = 2
vit_hidden = 16
vit_mlp = 32
vit_heads = 2
[MLPMIXER]
mixer_hidden = 16
mixer_blocks = 2
"""


SMOKE = [("resnet18", "frog", "node"), ("vit", "fg", "weight"), ("mlpmixer", "frog", "weight"),
         ("lenet5", "fg", "node"), ("fc", "bp", "node"), ("vit", "frog", "node")]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("model,grad,mode", SMOKE, ids=["-".join(s) for s in SMOKE])
def test_train_smoke(model, grad, mode, tmp_path, capsys):
    ini = tmp_path / "tiny.ini"
    ini.write_text(TINY_INI)
    train.main(["--dataset", "digits", "--model", model, "--model_hidden_size", "16", "--gradient_computation", grad,
                "--perturbation_mode", mode, "--num_directions", "2", "--epochs", "1", "--max_batches", "3",
                "--configfile", str(ini), "--out", str(tmp_path), "--name", "s", "--no_progress"])  # fmt: skip
    summary = json.loads((tmp_path / "forward_grad" / "train" / "s" / "summary.json").read_text())
    assert summary["final_epoch"] == 1 and summary["test_acc"] is not None
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("run dir: ")
