"""`make setup` guards and the rule that every script runs by path and as a module, with --help."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAPERS = ("forward_grad", "hp_scaling", "line_search", "sgd_genfunc", "autowu")


def _scripts() -> list[Path]:
    """Every module in a paper folder with an ``if __name__ == "__main__"`` guard that uses argparse."""
    found = []
    for paper in PAPERS:
        for path in sorted((REPO / paper).rglob("*.py")):
            text = path.read_text()
            if "__main__" not in text or "ArgumentParser" not in text and "build_parser" not in text:
                continue
            tree = ast.parse(text)
            if any(isinstance(n, ast.If) and "__name__" in ast.unparse(n.test) for n in tree.body):
                found.append(path.relative_to(REPO))
    return found


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "OMP_NUM_THREADS": "1"}


def test_setup_rejects_old_python_in_one_line(tmp_path: Path) -> None:
    fake = tmp_path / "python3.9"
    fake.write_text('#!/bin/sh\nif [ "$1" = "--version" ]; then echo "Python 3.9.18"; exit 0; fi\nexit 1\n')
    fake.chmod(0o755)
    proc = subprocess.run(
        ["make", "-s", "setup", f"PYTHON={fake}", f"VENV={tmp_path / 'venv'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[0] == "setup: error: Python >= 3.10 required, found Python 3.9.18"


@pytest.mark.slow
def test_setup_reports_an_uninstallable_requirement_in_one_line(tmp_path: Path) -> None:
    lock = tmp_path / "lock.txt"
    lock.write_text("this-package-does-not-exist-stepsize-papers==0.0.1\n")
    proc = subprocess.run(
        ["make", "-s", "setup", f"VENV={tmp_path / 'venv'}", f"LOCK={lock}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    first = proc.stderr.strip().splitlines()[0]
    assert first.startswith("setup: error: a requirement could not be installed"), proc.stderr


def test_second_setup_changes_nothing() -> None:
    proc = subprocess.run(["make", "setup"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.slow
def test_every_script_has_help_by_path_and_as_module() -> None:
    scripts = _scripts()
    failures = []
    for script in scripts:
        module = ".".join(script.with_suffix("").parts)
        for cmd in ([sys.executable, str(script), "--help"], [sys.executable, "-m", module, "--help"]):
            proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=180)
            if proc.returncode != 0 or "usage" not in proc.stdout.lower():
                failures.append(f"{' '.join(cmd[1:])}: exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
    assert not failures, "\n".join(failures)
    print(f"checked {len(scripts)} scripts")


def test_stack_imports_inside_the_venv() -> None:
    code = (
        "import common, forward_grad, hp_scaling, line_search, sgd_genfunc, autowu, functorch, propulate, gpytorch, "
        "timm, transformers, datasets, mpi4py, sympy, seaborn, mlxtend, mnist1d, numpy, torch, torchvision; "
        "assert numpy.__version__ == '1.26.4' and torch.__version__.startswith('2.14.1')"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-1500:]
