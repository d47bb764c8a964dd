"""common.cli, common.runs, common.runtime and common.checkpoint."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from common.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from common.cli import (
    ArgumentParser,
    MissingInputError,
    UsageError,
    add_run_args,
    announce_resume,
    apply_preset,
    auto_or,
    check_range,
    device_arg,
    existing_file,
    expand_grid,
    nonneg_float,
    nonneg_int,
    positive_int,
    run_main,
)
from common.runs import open_run
from common.runtime import resolve_device, seed_everything, set_threads

SCRIPT = """
import sys
from common.cli import ArgumentParser, add_run_args, existing_file, positive_int, run_main
from common.data import get_dataset
from common.runs import open_run

def main(argv=None):
    p = ArgumentParser(prog="toy")
    p.add_argument("--opt", choices=["sgd", "adam"], default="sgd")
    p.add_argument("--steps", type=positive_int, default=3)
    p.add_argument("--config", type=existing_file, default=None)
    p.add_argument("--dataset", default="digits")
    add_run_args(p)
    args = p.parse_args(argv)
    get_dataset(args.dataset, root=args.out + "/data")
    run = open_run("toy", "exp", args, name=args.name, root=args.out)
    for s in range(args.steps):
        run.log(step=s, loss=1.0 / (s + 1))
    run.finish({"final_loss": 1.0 / args.steps})

if __name__ == "__main__":
    run_main(main)
"""


@pytest.fixture(scope="module")
def toy_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("script") / "toy.py"
    path.write_text(SCRIPT)
    return path


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--opt", "lbfgs"], "invalid choice"),
        (["--steps", "-3"], "positive integer"),
        (["--config", "/no/such/file.yaml"], "file not found"),
        (["--dataset", "mnist"], "train-images-idx3-ubyte"),
        (["--dataset", "nope"], "unknown dataset"),
    ],
    ids=["wrong-choice", "negative-count", "missing-file", "missing-dataset", "unknown-dataset"],
)
def test_bad_input_is_one_line_and_exit_2(toy_script: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(toy_script), *args, "--out", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_dir_layout_and_last_line(toy_script: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(toy_script), "--out", str(tmp_path), "--name", "r1", "--steps", "4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    run_dir = tmp_path / "toy" / "exp" / "r1"
    assert proc.stdout.strip().splitlines()[-1] == f"run dir: {run_dir}"
    assert json.loads((run_dir / "config.json").read_text())["steps"] == 4
    assert json.loads((run_dir / "summary.json").read_text())["final_loss"] == 0.25
    assert (run_dir / "metrics.csv").read_text().splitlines()[0] == "step,loss"
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 4


def test_metrics_csv_grows_new_columns(tmp_path: Path) -> None:
    run = open_run("p", "e", {"a": 1}, name="x", root=tmp_path)
    run.log(step=0, loss=1.0)
    run.log(step=1, loss=0.5, acc=0.9)
    rows = (run.path / "metrics.csv").read_text().splitlines()
    assert rows == ["step,loss,acc", "0,1.0,", "1,0.5,0.9"]
    resumed = open_run("p", "e", {"a": 1}, name="x", root=tmp_path)  # same dir, fresh object: keeps the header
    resumed.log(step=2, acc=0.95)
    assert (run.path / "metrics.csv").read_text().splitlines()[-1] == "2,,0.95"
    run.log(step=2, loss=float("nan"))
    assert json.loads((run.path / "metrics.jsonl").read_text().splitlines()[-1])["loss"] == "nan"
    with pytest.raises(ValueError, match="invalid run name"):
        open_run("p", "e", name="a/b", root=tmp_path)


def test_parser_types_and_help_defaults() -> None:
    parser = ArgumentParser(prog="t")
    parser.add_argument("--n", type=positive_int, default=5, help="count")
    add_run_args(parser, dash=True)
    assert "(default: 5)" in parser.format_help() and "--no-progress" in parser.format_help()
    args = parser.parse_args(["--no-progress", "--seed", "7"])
    assert args.no_progress and args.seed == 7 and args.device == "auto"
    with pytest.raises(argparse.ArgumentTypeError):
        existing_file("/definitely/missing")


def test_expand_grid_prod_and_zip() -> None:
    grid = expand_grid({"lr": [0.1, 0.01], "b": [1, 2, 3]}, "prod")
    assert len(grid) == 6 and grid[0] == {"lr": 0.1, "b": 1} and grid[-1] == {"lr": 0.01, "b": 3}
    assert expand_grid({"lr": [0.1, 0.2], "b": [5]}, "zip") == [{"lr": 0.1, "b": 5}, {"lr": 0.2, "b": 5}]
    with pytest.raises(UsageError, match="equal length"):
        expand_grid({"lr": [0.1, 0.2], "b": [1, 2, 3]}, "zip")
    with pytest.raises(UsageError, match="unknown grid mode"):
        expand_grid({"lr": [0.1]}, "cartesian")


def test_run_main_usage_error_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    def bad(argv: list[str] | None) -> None:
        raise UsageError("lr must be positive, got -1\nsecond line is dropped")

    with pytest.raises(SystemExit) as info:
        run_main(bad, [])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().endswith("error: lr must be positive, got -1")


def test_run_main_other_errors_are_internal_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ValueError from inside a library is a bug, not bad input: exit 1, one line naming the traceback log."""
    monkeypatch.setenv("ERROR_LOG_DIR", str(tmp_path))

    def buggy(argv: list[str] | None) -> None:
        raise ValueError("shapes (3,) and (4,) do not match")

    with pytest.raises(SystemExit) as info:
        run_main(buggy, [])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error: ValueError: shapes (3,) and (4,) do not match" in err[0]
    log = Path(err[0].rsplit("(traceback: ", 1)[1].rstrip(")"))
    assert log.parent == tmp_path and "Traceback" in log.read_text() and "buggy" in log.read_text()


def test_missing_input_error_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    def missing(argv: list[str] | None) -> None:
        raise MissingInputError("LR table not found: /nonexistent.csv")

    with pytest.raises(SystemExit) as info:
        run_main(missing, [])
    assert info.value.code == 2 and "/nonexistent.csv" in capsys.readouterr().err


def test_presets_fill_only_what_the_user_did_not_type() -> None:
    parser = ArgumentParser(prog="p")
    parser.add_argument("--epochs", type=positive_int, default=100)
    parser.add_argument("--numexp", type=positive_int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(["--quick", "--epochs", "3"])
    assert parser.explicit == {"quick", "epochs"}
    applied = apply_preset(args, {"epochs": 1, "numexp": 1}, parser.explicit)
    assert (args.epochs, args.numexp, applied) == (3, 1, ["numexp"])
    args = parser.parse_args(["--epochs=100"])  # typing the default value still counts as typed
    assert parser.explicit == {"epochs"}
    with pytest.raises(KeyError):
        apply_preset(args, {"no_such_flag": 1}, parser.explicit)


def test_explicit_sees_subcommand_flags() -> None:
    parser = ArgumentParser(prog="p")
    parser.add_argument("--seed", type=int, default=0)
    sub = parser.add_subparsers(dest="mode", required=True)
    nn = sub.add_parser("nn")
    nn.add_argument("--epochs", type=int, default=10)
    nn.set_defaults(kind="network")
    args = parser.parse_args(["nn", "--epochs", "10"])
    assert parser.explicit == {"mode", "epochs"} and args.kind == "network" and args.seed == 0


@pytest.mark.parametrize(
    "value, allowed, ok",
    [
        ("cpu", None, "cpu"),
        ("auto", None, "auto"),
        ("CPU", None, "cpu"),
        ("auto", ("cpu",), "cpu"),
        ("tpu", None, None),
        ("cuda:x", None, None),
        ("cuda", ("cpu",), None),
    ],
)
def test_device_arg(value: str, allowed: tuple[str, ...] | None, ok: str | None) -> None:
    parse = device_arg(allowed)
    if ok is None:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(value)
    else:
        assert parse(value) == ok


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer on a machine without CUDA")
def test_device_arg_rejects_cuda_without_cuda(capsys: pytest.CaptureFixture[str]) -> None:
    parser = ArgumentParser(prog="p")
    add_run_args(parser)
    for spec in ("cuda", "cuda:7"):
        with pytest.raises(SystemExit) as info:
            parser.parse_args(["--device", spec])
        assert info.value.code == 2 and "CUDA is not available" in capsys.readouterr().err


def test_check_range_and_announce_resume(capsys: pytest.CaptureFixture[str]) -> None:
    check_range(1, 1, "--min_lr/--max_lr")
    with pytest.raises(UsageError, match="--min_lr/--max_lr: expected 2 <= 1"):
        check_range(2, 1, "--min_lr/--max_lr")
    with pytest.raises(UsageError):
        check_range(1, 1, "--lo/--hi", strict=True)
    assert announce_resume("runs/x/ckpt.pt", "epoch 3") == "resumed from runs/x/ckpt.pt at epoch 3"
    assert capsys.readouterr().out.strip() == "resumed from runs/x/ckpt.pt at epoch 3"


def test_add_run_args_without_tensorboard_and_cpu_only() -> None:
    parser = ArgumentParser(prog="p")
    add_run_args(parser, devices=("cpu",), tensorboard=False)
    args = parser.parse_args([])
    assert args.device == "cpu" and not hasattr(args, "tensorboard")


def test_runtime_seed_device_threads() -> None:
    seed_everything(5)
    a = torch.rand(3)
    seed_everything(5)
    assert torch.equal(a, torch.rand(3))
    assert resolve_device("cpu").type == "cpu" and resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(UsageError, match="unknown device"):
        resolve_device("tpu")
    assert set_threads(1) == 1 and torch.get_num_threads() == 1


def test_checkpoint_is_atomic_and_restores_rng(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    seed_everything(0)
    state = {"model": model.state_dict(), "step": 7, "rng": rng_state()}
    path = save_checkpoint(tmp_path / "ckpt" / "checkpoint.pt", state)
    expected = torch.rand(4)
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"], "no temporary file may remain"
    loaded = load_checkpoint(path)
    assert loaded["version"] == 1 and loaded["step"] == 7
    assert torch.equal(loaded["model"]["weight"], model.weight.detach())
    set_rng_state(loaded["rng"])
    assert torch.equal(torch.rand(4), expected), "restored RNG must replay the same numbers"
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_tensorboard_logging_is_optional(tmp_path: Path) -> None:
    run = open_run("p", "e", {}, name="tb", root=tmp_path, tensorboard=True)
    run.log(step=0, loss=1.0)
    run.finish({"ok": True})
    assert list((run.path / "tensorboard").glob("events.out.tfevents.*")), "TensorBoard event file expected"


@pytest.mark.gpu
def test_cuda_device_and_model_on_gpu() -> None:
    from common.models import get_model

    device = resolve_device("cuda")
    model = get_model("resnet_cifar", width=8).to(device)
    assert model(torch.randn(2, 3, 32, 32, device=device)).shape == (2, 10)


def test_write_csv_header_append_and_extras(tmp_path: Path) -> None:
    from common.runs import write_csv

    path = tmp_path / "sub" / "t.csv"
    write_csv(path, [{"a": 1, "b": 2}, {"b": 3, "c": 4}])
    assert path.read_text().splitlines() == ["a,b,c", "1,2,", ",3,4"]
    write_csv(path, [{"a": 5, "b": 6, "c": 7}], ["a", "b", "c"], append=True)
    assert path.read_text().splitlines()[-1] == "5,6,7" and path.read_text().count("a,b,c") == 1
    with pytest.raises(ValueError):
        write_csv(path, [{"a": 1, "zzz": 2}], ["a"])
    write_csv(path, [{"a": 1, "zzz": 2}], ["a"], extrasaction="ignore")
    assert path.read_text().splitlines() == ["a", "1"]
    run = open_run("toy", "csv", name="r", root=tmp_path)
    assert run.write_csv("table.csv", [{"x": 1}]).read_text().splitlines() == ["x", "1"]


def test_auto_or_keeps_auto_and_the_inner_rule() -> None:
    workers = auto_or(nonneg_int)
    assert workers("auto") == "auto" and workers("0") == 0 and workers("8") == 8
    for bad in ("-1", "1.5", "AUTO", ""):
        with pytest.raises(argparse.ArgumentTypeError, match=f"expected 'auto' or a non-negative integer, got {bad!r}"):
            workers(bad)
    smoothing = auto_or(nonneg_float)
    assert smoothing("0.1") == 0.1
    with pytest.raises(argparse.ArgumentTypeError, match="expected 'auto' or a non-negative number"):
        smoothing("inf")
    parser = ArgumentParser(prog="t")
    parser.add_argument("--workers", type=workers, default="auto")
    assert parser.parse_args(["--workers", "3"]).workers == 3 and parser.parse_args([]).workers == "auto"
