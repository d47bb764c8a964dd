"""`make gpu-check` as a dry run: every seed command parses and every per-paper step builds and runs on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from common import gpu_check


def test_dry_run_parses_every_command_and_builds_every_step(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert gpu_check.main(["--dry_run", "--out", str(tmp_path)]) == 0, capsys.readouterr().out
    text = (tmp_path / "gpu" / "REPORT.md").read_text()
    mode = "dry run: no GPU" if not torch.cuda.is_available() else "dry run (--dry_run)"
    assert f"mode: **{mode}**" in text and "all checks passed" in text
    data = json.loads((tmp_path / "gpu" / "report.json").read_text())
    commands = [r for r in data["rows"] if r["part"] == "commands"]
    steps = [r for r in data["rows"] if r["part"] == "steps"]
    assert len(commands) == len(gpu_check.COMMANDS) and all(r["status"] == "parsed" for r in commands), commands
    assert {r["name"] for r in steps} == set(gpu_check.STEPS) and all(r["status"] == "built" for r in steps), steps
    assert not [r for r in data["rows"] if r["part"] == "tests"]  # the gpu tests need CUDA
    papers = {paper for paper, _, _ in gpu_check.COMMANDS}
    assert papers == {"forward_grad", "hp_scaling", "line_search", "sgd_genfunc", "autowu"}
    assert all("--device" in argv and argv[argv.index("--device") + 1] == "cuda" for _, _, argv in gpu_check.COMMANDS)


def test_parse_only_rejects_what_the_script_rejects() -> None:
    ok, message = gpu_check.parse_only("sgd_genfunc/train_nn.py", ["--n_steps", "many"])
    assert not ok and "--n_steps" in message
    ok, message = gpu_check.parse_only("line_search/main.py", ["--device", "cpu", "--no_progress"])
    assert ok and message == ""
    assert gpu_check.on_device(["--x", "1", "--device", "cuda", "--y"], "cpu") == ["--x", "1", "--device", "cpu", "--y"]


def test_a_failing_part_fails_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_check, "COMMANDS", [("hp_scaling", "hp_scaling/main.py", ["--no_such_flag"])])

    def broken(device: object) -> None:
        raise RuntimeError("API moved")

    monkeypatch.setattr(gpu_check, "STEPS", {"autowu": broken})
    assert gpu_check.main(["--dry_run", "--out", str(tmp_path)]) == 1
    text = (tmp_path / "gpu" / "REPORT.md").read_text()
    assert "2 check(s) failed" in text and "RuntimeError: API moved" in text and "unrecognized arguments" in text
