"""GPU readiness in one command (``make gpu-check``): writes ``<out>/gpu/REPORT.md`` and ``<out>/gpu/report.json``.

On a machine with CUDA (sized for at most 8 minutes on one H100) it runs, in this order:

1. the tests marked ``gpu`` (``pytest -m gpu tests``);
2. every paper's seed command (the script and flags the paper's README gives) with ``--device cuda`` at a tiny size
   (the table :data:`COMMANDS`), each as its own process with a time limit;
3. one step-time ratio per paper: the same training or solver step (:data:`STEPS`, built from each paper's public
   API on a fixed seed) timed with ``torch.utils.benchmark`` on the CPU and on the GPU; the ratio is CPU time / GPU
   time (above 1: the GPU is faster).

Without CUDA (or with ``--dry_run``) it is a dry run: every command of step 2 is parsed by its script's own parser
(with ``--device cpu`` in place of ``--device cuda``, which a machine without CUDA rejects) and every step of
step 3 is built and run once on the CPU, untimed. The report then says ``dry run: no GPU``. The dry run is what
``tests/common/test_gpu_check.py`` runs, so the GPU run meets commands and APIs that are known to parse and build.
``--target cpu`` runs steps 2 and 3 for real on the CPU: a rehearsal of the GPU run's code path (its ratios compare
the CPU with itself).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import platform
import re
import runpy
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.cli import ArgumentParser, UsageError, positive_int, run_main

REPO = Path(__file__).resolve().parents[1]

# (paper, script, argv): the seed commands of the papers' READMEs at a tiny size, on the GPU.
COMMANDS: list[tuple[str, str, list[str]]] = [
    ("forward_grad", "forward_grad/lr_search/propulate_search.py",
     ["--num_evaluations", "2", "--gradient", "fg-mean", "-k", "2", "nn", "--device", "cuda", "--model", "fc",
      "--model_width", "32", "--dataset", "digits", "--epochs", "1"]),
    ("forward_grad", "forward_grad/nn_training/train.py",
     ["--dataset", "digits", "--model", "fc", "--model_hidden_size", "64", "--gradient_computation", "frog",
      "--num_directions", "4", "--epochs", "1", "--max_batches", "5", "--device", "cuda", "--no_progress"]),
    ("hp_scaling", "hp_scaling/main.py",
     ["--device", "cuda", "--batch_size", "256", "--aug", "--momentum", "0.9", "--weight_decay", "0.0005",
      "--nesterov", "--decreasing_lr", "--width", "16", "--arch", "tinynetwork", "--num_dags", "1", "--dataset",
      "digits", "--epochs", "1", "--steps", "5", "--lr", "0.46", "--lr_autoscale", "--no_progress"]),
    ("line_search", "line_search/main.py", ["--set", "epochs=1", "--device", "cuda", "--no_progress"]),
    ("line_search", "line_search/run_multiple_img.py",
     ["--quick", "--numexp", "1", "--epochs", "1", "--optims", "sls,adam", "--device", "cuda", "--no_progress"]),
    ("sgd_genfunc", "sgd_genfunc/train_nn.py",
     ["--N", "256", "--hidden_dim", "64", "--n_steps", "50", "--batch_size", "8", "--lr", "0.1", "--device", "cuda",
      "--no_progress"]),
    ("sgd_genfunc", "sgd_genfunc/train_spectral_diagonal.py",
     ["--N", "1000", "--nu", "1.5", "--n_steps", "200", "--lr", "0.5", "1.0", "--momentum", "0.0", "-0.2",
      "--device", "cuda", "--no_progress"]),
    ("autowu", "autowu/train.py",
     ["--dataset", "digits", "--epochs", "2", "--batch-size", "256", "--amp", "--device", "cuda", "--no-progress"]),
]  # fmt: skip

COMMAND_TIMEOUT_S = 150
TESTS_TIMEOUT_S = 240


# ------------------------------------------------------------------------------------------------ steps per paper


def _forward_grad_step(device: Any) -> tuple[Callable[[], None], str]:
    import torch

    from forward_grad.forward_gradient import ForwardGradient
    from forward_grad.nn_training.models import build_model

    torch.manual_seed(0)
    model = build_model("fc", 1, 28, width=1024).to(device)
    x, y = torch.randn(64, 1, 28, 28, device=device), torch.randint(0, 10, (64,), device=device)
    estimator = ForwardGradient(16, "frog", perturbation_mode="node")
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step() -> None:
        estimator.step(model, (x, y))
        opt.step()
        opt.zero_grad()

    return step, "FC-1024 on 28x28 inputs, batch 64: frog K=16 node-mode forward gradient + SGD"


def _hp_scaling_step(device: Any) -> tuple[Callable[[], None], str]:
    import torch

    from hp_scaling.models import build_model

    torch.manual_seed(0)
    model = build_model("mlp", "2_22_222_2222", in_shape=(1, 28, 28), num_classes=10, width=512).to(device)
    x, y = torch.randn(256, 1, 28, 28, device=device), torch.randint(0, 10, (256,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step() -> None:
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()

    return step, "DagMLP 2_22_222_2222 width 512, batch 256: SGD step (eq. 4 init)"


def _line_search_step(device: Any) -> tuple[Callable[[], None], str]:
    import torch

    from common.models import get_model
    from line_search.sls import SLS

    torch.manual_seed(0)
    model = get_model("mlp", in_features=784).to(device)
    x, y = torch.randn(256, 784, device=device), torch.randint(0, 10, (256,), device=device)
    opt = SLS(model.parameters())

    def closure() -> Any:
        return torch.nn.functional.cross_entropy(model(x), y)

    def step() -> None:
        opt.zero_grad()
        opt.step(closure)

    return step, "MLP on 784 inputs, batch 256: one SLS step (Armijo backtracking, forward passes included)"


def _sgd_genfunc_step(device: Any) -> tuple[Callable[[], None], str]:
    import torch

    from sgd_genfunc.problems import power_law_coefficients, power_law_spectrum
    from sgd_genfunc.theory import sd_run

    lam = power_law_spectrum(100_000, 1.5).to(device)
    c = power_law_coefficients(100_000, 3.0).to(device)
    alphas = torch.linspace(0.1, 1.0, 16, dtype=torch.float64)

    def step() -> None:
        sd_run(lam, c, 100, alphas, 0.0, 0.01)

    return step, "spectral-diagonal dynamics, N = 100,000 modes, 16 step sizes at once: 100 steps"


def _autowu_step(device: Any) -> tuple[Callable[[], None], str]:
    import torch

    from autowu import AutoWU
    from common.models import get_model

    torch.manual_seed(0)
    model = get_model("cnn_bn", width=32).to(device)
    x, y = torch.randn(256, 1, 28, 28, device=device), torch.randint(0, 10, (256,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = AutoWU(opt, 1_000_000, 10, device=device)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        scheduler.step(loss)

    return step, "CNN-BN width 32 on 28x28, batch 256: SGD step + AutoWU.step(loss)"


STEPS: dict[str, Callable[[Any], tuple[Callable[[], None], str]]] = {
    "forward_grad": _forward_grad_step,
    "hp_scaling": _hp_scaling_step,
    "line_search": _line_search_step,
    "sgd_genfunc": _sgd_genfunc_step,
    "autowu": _autowu_step,
}


# ------------------------------------------------------------------------------------------------ results


@dataclass
class Row:
    """One line of the report."""

    part: str
    name: str
    status: str  # ok | FAIL | parsed | built | skipped
    seconds: float = 0.0
    detail: str = ""
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    mode: str
    device: str
    started: str
    rows: list[Row] = field(default_factory=list)

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.status == "FAIL"]


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


# ------------------------------------------------------------------------------------------------ dry run: parsing


class _Parsed(BaseException):
    pass


_depth = threading.local()


@contextlib.contextmanager
def _stop_after_parsing() -> Iterator[None]:
    """Let the outermost parse (parse_args, or a direct parse_known_args) run, then stop main before any work."""
    known, full = argparse.ArgumentParser.parse_known_args, argparse.ArgumentParser.parse_args

    def nested(call: Callable[[], Any]) -> Any:
        _depth.value = getattr(_depth, "value", 0) + 1
        try:
            return call()
        finally:
            _depth.value -= 1

    def parse_known_then_stop(self: argparse.ArgumentParser, args: Any = None, namespace: Any = None) -> Any:
        result = nested(lambda: known(self, args, namespace))
        if _depth.value == 0:
            raise _Parsed()
        return result

    def parse_then_stop(self: argparse.ArgumentParser, args: Any = None, namespace: Any = None) -> Any:
        _, extras = nested(lambda: self.parse_known_args(args, namespace))
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        if _depth.value == 0:
            raise _Parsed()
        return full(self, args, namespace)

    argparse.ArgumentParser.parse_known_args = parse_known_then_stop  # type: ignore[method-assign]
    argparse.ArgumentParser.parse_args = parse_then_stop  # type: ignore[method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_known_args = known  # type: ignore[method-assign]
        argparse.ArgumentParser.parse_args = full  # type: ignore[method-assign]


def _module(script: str) -> str:
    return script[: -len(".py")].replace("/", ".")


def parse_only(script: str, argv: list[str]) -> tuple[bool, str]:
    """Parse ``argv`` with the script's own parser without running it: (accepted, first stderr line)."""
    err = io.StringIO()
    module = importlib.import_module(_module(script))
    main = getattr(module, "main", None)
    saved_argv = sys.argv
    try:
        with _stop_after_parsing(), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            if callable(main):
                main(list(argv))
            else:  # the __main__ block imports main from elsewhere
                sys.argv = [script, *argv]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    runpy.run_module(_module(script), run_name="__main__", alter_sys=False)
    except _Parsed:
        return True, ""
    except SystemExit as exc:
        lines = err.getvalue().strip().splitlines()
        return False, lines[0] if lines else f"exit {exc.code}"
    except Exception as exc:  # noqa: BLE001 - reported in the row
        return False, f"{type(exc).__name__}: {exc}"
    finally:
        sys.argv = saved_argv
    return False, "main returned without parsing its arguments"


def on_device(argv: list[str], device: str) -> list[str]:
    """``argv`` with the value of ``--device`` replaced by ``device``."""
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg == "--device":
            out[i + 1] = device
    return out


# ------------------------------------------------------------------------------------------------ the three parts


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}


def run_gpu_tests(report: Report, deadline: _Deadline) -> None:
    start = time.monotonic()
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-m", "gpu", "tests"]
    try:
        proc = subprocess.run(
            cmd,
            cwd=REPO,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=max(30, min(TESTS_TIMEOUT_S, deadline.left())),
        )
        tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr.strip()[-300:]
        ok = proc.returncode in (0, 5)  # 5: no test carries the mark
        counts = dict(
            (k, int(v)) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)", tail)
        )
        report.rows.append(
            Row("tests", "pytest -m gpu tests", "ok" if ok else "FAIL", time.monotonic() - start, tail, counts)
        )
    except subprocess.TimeoutExpired:
        report.rows.append(Row("tests", "pytest -m gpu tests", "FAIL", time.monotonic() - start, "time limit"))


def run_commands(report: Report, deadline: _Deadline, out: Path, dry: bool, target: str = "cuda") -> None:
    for paper, script, argv in COMMANDS:
        name = f"python -m {_module(script)} {' '.join(argv)}"
        start = time.monotonic()
        if dry:
            ok, message = parse_only(script, on_device(argv, "cpu"))
            status = "parsed" if ok else "FAIL"
            detail = message or "parses (--device cpu)"
            report.rows.append(Row("commands", name, status, time.monotonic() - start, detail, {"paper": paper}))
            continue
        if deadline.left() < 20:
            report.rows.append(Row("commands", name, "skipped", 0.0, "time budget spent", {"paper": paper}))
            continue
        argv = on_device(argv, target)
        if script.startswith("forward_grad/lr_search/"):
            full = ["--search_root", str(out / "runs" / "lr_search"), *argv]
        else:
            full = [*argv, "--out", str(out / "runs")]
        try:
            proc = subprocess.run(
                [sys.executable, "-m", _module(script), *full],
                cwd=REPO,
                env=_env(),
                capture_output=True,
                text=True,
                timeout=max(10, min(COMMAND_TIMEOUT_S, deadline.left() - 10)),
            )
            last = (proc.stdout.strip().splitlines() or [""])[-1]
            detail = (
                last if proc.returncode == 0 else (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            )
            status = "ok" if proc.returncode == 0 else "FAIL"
        except subprocess.TimeoutExpired:
            status, detail = "FAIL", f"time limit {COMMAND_TIMEOUT_S} s"
        report.rows.append(Row("commands", name, status, time.monotonic() - start, detail[-300:], {"paper": paper}))


def _time(step: Callable[[], None], device: Any) -> float:
    """Median seconds of one call (torch.utils.benchmark synchronizes CUDA)."""
    from torch.utils import benchmark

    step()  # warm-up (kernels, allocator, lazy init)
    timer = benchmark.Timer(stmt="step()", globals={"step": step}, label=str(device))
    return timer.blocked_autorange(min_run_time=1.0).median


def run_steps(report: Report, deadline: _Deadline, dry: bool, target: str = "cuda") -> None:
    import torch

    for paper, build in STEPS.items():
        start = time.monotonic()
        try:
            if dry:
                step, what = build(torch.device("cpu"))
                step()
                report.rows.append(Row("steps", paper, "built", time.monotonic() - start, what))
                continue
            if deadline.left() < 15:
                report.rows.append(Row("steps", paper, "skipped", 0.0, "time budget spent"))
                continue
            cpu_step, what = build(torch.device("cpu"))
            cpu_s = _time(cpu_step, "cpu")
            gpu_step, _ = build(torch.device(target))
            gpu_s = _time(gpu_step, target)
            values = {"cpu_ms": cpu_s * 1e3, "gpu_ms": gpu_s * 1e3, "ratio": cpu_s / gpu_s,
                      "cpu_threads": torch.get_num_threads()}  # fmt: skip
            report.rows.append(Row("steps", paper, "ok", time.monotonic() - start, what, values))
        except Exception as exc:  # noqa: BLE001 - one paper's failure is a row, the others still run
            report.rows.append(
                Row("steps", paper, "FAIL", time.monotonic() - start, f"{type(exc).__name__}: {exc}"[:300])
            )


# ------------------------------------------------------------------------------------------------ report


def _commit() -> str:
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        )
        return proc.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def render(report: Report) -> str:
    lines = [
        "# GPU readiness (`make gpu-check`)",
        "",
        f"- mode: **{report.mode}**",
        f"- device: {report.device}",
        f"- started: {report.started}, commit {_commit()}, python {platform.python_version()}",
        f"- result: {'all checks passed' if not report.failed else f'{len(report.failed)} check(s) failed'}",
        "",
        "## gpu-marked tests",
        "",
    ]
    tests = [r for r in report.rows if r.part == "tests"]
    lines += [f"- {r.status}: {r.detail} ({r.seconds:.0f} s)" for r in tests] or ["- not run (dry run: no GPU)"]
    lines += [
        "",
        "## Seed commands at a tiny size",
        "",
        "| paper | command | status | s | last line |",
        "|---|---|---|---|---|",
    ]
    for r in (r for r in report.rows if r.part == "commands"):
        detail = r.detail.replace("|", "/")
        lines.append(f"| {r.values.get('paper', '')} | `{r.name}` | {r.status} | {r.seconds:.1f} | {detail} |")
    lines += ["", "## One step per paper, CPU vs GPU (ratio = CPU time / GPU time)", ""]
    lines += ["| paper | step | status | CPU ms | GPU ms | ratio |", "|---|---|---|---|---|---|"]
    for r in (r for r in report.rows if r.part == "steps"):
        v = r.values
        cells = [f"{v['cpu_ms']:.2f}", f"{v['gpu_ms']:.2f}", f"{v['ratio']:.1f}x"] if "ratio" in v else ["", "", ""]
        lines.append(f"| {r.name} | {r.detail.replace('|', '/')} | {r.status} | {' | '.join(cells)} |")
    if report.mode.startswith("dry run"):
        lines += [
            "",
            "Dry run: commands were parsed with `--device cpu` in place of `--device cuda`; steps were built and run",
            "once on the CPU, untimed. Run `make gpu-check` on a machine with CUDA for the figures.",
        ]
    return "\n".join(lines) + "\n"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="results", metavar="DIR", help="results root: the report goes to <out>/gpu/")
    p.add_argument("--dry_run", action="store_true", help="parse and build only, even where CUDA exists")
    p.add_argument("--budget_s", type=positive_int, default=420, metavar="S", help="time budget for the GPU run")
    p.add_argument("--skip_tests", action="store_true", help="leave out the gpu-marked tests")
    p.add_argument(
        "--target",
        choices=["cuda", "cpu"],
        default="cuda",
        help="device of the full run; cpu rehearses the GPU run's code path on the CPU (ratios near 1)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    has_cuda = torch.cuda.is_available()
    if args.target == "cpu":
        dry = args.dry_run
        mode = "dry run (--dry_run)" if dry else "rehearsal on the CPU (--target cpu): not a GPU figure"
    else:
        dry = args.dry_run or not has_cuda
        mode = "dry run: no GPU" if not has_cuda else ("dry run (--dry_run)" if dry else "GPU run")
    device = torch.cuda.get_device_name(0) if has_cuda else f"CPU only ({platform.processor() or platform.machine()})"
    out = Path(args.out) / "gpu"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {args.out}: cannot create {out} ({exc.strerror})") from None
    report = Report(mode, device, time.strftime("%Y-%m-%d %H:%M:%S"))
    deadline = _Deadline(args.budget_s)
    print(f"gpu-check: {mode} on {device}", flush=True)
    if not dry and not args.skip_tests and args.target == "cuda":
        run_gpu_tests(report, deadline)
    run_commands(report, deadline, out, dry, args.target)
    run_steps(report, deadline, dry, args.target)
    for row in report.rows:
        print(f"  {row.part:8s} {row.status:7s} {row.name[:90]}", flush=True)
    (out / "REPORT.md").write_text(render(report))
    (out / "report.json").write_text(json.dumps({**asdict(report), "failed": len(report.failed)}, indent=2))
    print(f"report: {out / 'REPORT.md'}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    run_main(main)
