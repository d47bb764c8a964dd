"""The command-line contract (common/cli.py docstring), checked on every script of the papers and the arena.

A *script* is any ``.py`` file under a paper folder (or ``arena/``) that calls ``run_main(`` and has a module-level
``if __name__ == "__main__":`` block: a new script is picked up without editing this file. For each script:

- ``--help`` exits 0 and prints the usage;
- a table of bad inputs derived from the script's own parser (captured while ``main`` builds it, then walked
  action by action): an unknown flag; a non-numeric value for every int/float option; 0 and -1 for positive
  counts and sizes (-1 for non-negative ones); an unknown and an absent device for ``--device``; a missing file or
  folder for ``existing_file``/``existing_dir`` options. Each must exit 2 with exactly one line on stderr that
  names the flag, and no traceback. These are parse-level checks, run in this process;
- inverted ranges for the pairs the parser declares (``X_min``/``X_max``, ``min-X``/``max-X``, two-value
  ``--limits``) and missing files for path-valued options that main opens: run through ``run_main(main)`` in this
  process, they must exit 2 with one line naming the flag before the run logs a metric, saves a figure, finishes or
  starts a progress bar;
- a subprocess sample (one script per folder, ``python -m <module>``) shows the real entry point keeps the same
  contract (exit 2, one line, no traceback);
- every script that accepts ``--tensorboard`` writes TensorBoard events in a tiny run. The tiny settings live in
  ``TINY_ARGV``; a script that accepts ``--tensorboard`` without an entry there fails, so new scripts register one.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import io
import os
import re
import runpy
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

import common.cli as cli
import common.runs as runs

REPO = Path(__file__).resolve().parents[2]
FOLDERS = ("forward_grad", "hp_scaling", "line_search", "sgd_genfunc", "autowu", "arena")
MISSING = "/nonexistent/script-contract/missing.file"
UNKNOWN_FLAG = "--no-such-flag-for-contract"

# Arguments that complete a command line for scripts with required arguments or a subcommand, keyed by script (the
# whole command) or by "script subcommand" (what that subcommand requires): every bad input is checked in a command
# that would otherwise parse, so the error is about the bad input and not about a missing argument.
BASE_ARGV: dict[str, list[str]] = {
    "forward_grad/lr_search/propulate_search.py": ["math", "--function", "sphere", "-n", "4"],
    "forward_grad/lr_search/propulate_search.py math": ["--function", "sphere", "-n", "4"],
    "forward_grad/lr_search/propulate_search.py nn": ["--model", "fc"],
    "hp_scaling/dags.py": ["info", "2_22_222_2222"],
    "hp_scaling/dags.py info": ["2_22_222_2222"],
    "hp_scaling/dag_tool.py": ["info", "2_22_222_2222"],
    "hp_scaling/dag_tool.py info": ["2_22_222_2222"],
    "arena/report.py": ["results/arena/quick"],
    "hp_scaling/main.py": ["--dataset", "digits"],
    "sgd_genfunc/train_spectral_diagonal_from_hparam_dict.py": ["--hparam_dict_path", "README.md"],
}
# A path option that is only read together with another flag gets that flag in the missing-file check.
PATH_COMPANION: dict[str, list[str]] = {
    "checkpoint": ["--inference"],
    "data_path": ["--from_saved"],
    "model_path": ["--paper"],
}

# The quickest settings of each script that accepts --tensorboard (taken from the scripts' own tests); the test
# adds --tensorboard, --out and --save_dir/--save-dir (where the script has them) pointing into a temporary folder,
# and completes the command from BASE_ARGV.
TINY_ARGV: dict[str, list[str]] = {
    "autowu/reproduce.py": ["--preset", "demo", "--dataset", "synthetic", "--epochs", "2", "--seeds", "0",
                            "--peaks", "0.01", "--warmups", "0.1", "--no-progress"],
    "autowu/simulate.py": ["--curve", "bowl", "--epochs", "4", "--steps-per-epoch", "5"],
    "autowu/train.py": ["--dataset", "digits", "--smoke", "--epochs", "1", "--batch-size", "32", "--device", "cpu",
                        "--no-progress"],
    "forward_grad/approximation_quality.py": ["--n", "4", "--k", "1", "2", "--samples", "8", "--no_progress"],
    "forward_grad/function_optimization/math_experiments.py": ["--functions", "sphere", "--n", "4", "--seeds", "0",
                                                               "--approaches", "bp", "--lr", "0.02", "--max_steps",
                                                               "5", "--no_progress"],
    "forward_grad/nn_training/train.py": ["--dataset", "digits", "--model", "fc", "--model_hidden_size", "16",
                                          "--epochs", "1", "--max_batches", "2", "--no_progress"],
    "hp_scaling/lr_sweep.py": ["--arch", "mlp", "--depth_chain", "0", "2", "--chain_nodes", "3", "--width", "8",
                               "--seeds", "0", "--lr_min", "0.25", "--lr_max", "1", "--steps_per_octave", "1",
                               "--steps", "1", "--no_progress"],
    "hp_scaling/main.py": ["--dataset", "digits", "--arch", "mlp", "--dag", "2_22", "--steps", "2", "--width", "8",
                           "--batch_size", "16", "--no_progress"],
    "line_search/main.py": ["--set", "epochs=1", "--device", "cpu", "--no_progress"],
    "line_search/run_multiple.py": ["--quick", "--numexp", "1", "--epochs", "1", "--optims", "sls", "--n_train",
                                    "64", "--n_test", "32", "--no_progress"],
    "line_search/run_multiple_img.py": ["--quick", "--numexp", "1", "--epochs", "1", "--optims", "sls",
                                        "--no_progress"],
    "sgd_genfunc/phase_exponents.py": ["--N", "64", "--kappa", "1", "--n_steps", "20", "--fit_min", "2",
                                       "--fit_max", "20", "--no_progress"],
    "sgd_genfunc/reproduce.py": ["--ci", "--only", "r3", "--no_progress"],
    "sgd_genfunc/scan_alpha_beta.py": ["--N", "32", "--n_steps", "10", "--n_alpha", "2", "--n_beta", "2",
                                       "--batch_size", "1", "--no_progress"],
    "sgd_genfunc/train_4_regimes.py": ["--N", "32", "--hidden_dim", "16", "--n_steps", "5", "--batch_size", "4",
                                       "--lr", "0.1", "--no_progress"],
    "sgd_genfunc/train_4_regimes_serial.py": ["--N", "32", "--hidden_dim", "16", "--n_steps", "5", "--batch_size",
                                              "4", "--lr", "0.1", "--tau", "1.0", "--no_progress"],
    "sgd_genfunc/train_full.py": ["--N", "32", "--nu", "1.5", "--n_steps", "20", "--no_progress"],
    "sgd_genfunc/train_linearized.py": ["--N", "32", "--nu", "1.5", "--n_steps", "20", "--no_progress"],
    "sgd_genfunc/train_nn.py": ["--N", "32", "--hidden_dim", "16", "--n_steps", "5", "--batch_size", "4",
                                "--lr", "0.1", "--no_progress"],
    "sgd_genfunc/train_spectral_diagonal.py": ["--N", "32", "--nu", "1.5", "--n_steps", "20", "--no_progress"],
    "sgd_genfunc/train_spectral_diagonal_from_hparam_dict.py": ["--hparam_dict_path", "{tmp}/hparams.json", "--N",
                                                                "32", "--n_steps", "20", "--no_progress"],
    "sgd_genfunc/tune_alpha_beta.py": ["--pairs", "1.5,4", "--N", "64", "--n_steps", "20", "--betas",
                                       "0.0:0.2:0.1", "--no_progress"],
}  # fmt: skip
# Input files a tiny run reads, written into the test's temporary folder ("{tmp}" in TINY_ARGV).
TINY_FILES: dict[str, dict[str, str]] = {
    "sgd_genfunc/train_spectral_diagonal_from_hparam_dict.py": {"hparams.json": '{"1.5,4": 0.5}'},
}

# Scripts that do not keep the contract yet, each being fixed by its paper's owner (strict: an unexpected pass fails
# and the mark must go). Keys: (check, script) with check in {"bad_inputs", "main_checks", "subprocess",
# "tensorboard"}.
XFAIL: dict[tuple[str, str], str] = {}

NUMERIC_TYPES = {int, float, cli.positive_int, cli.positive_float, cli.nonneg_int, cli.nonneg_float, cli.probability}
POSITIVE_TYPES = {cli.positive_int, cli.positive_float}
NONNEG_TYPES = {cli.nonneg_int, cli.nonneg_float}
# Path-valued options that a script opens in main (not typed existing_file): a missing file must be exit 2 too.
PATH_DEST = re.compile(r"(^|_)(path|file|csv|table|checkpoint|configfile)$")
RANGE_WORDS = (("min", "max"), ("lo", "hi"), ("low", "high"), ("start", "end"))


# ------------------------------------------------------------------------------------------------ discovery


def discover_scripts() -> list[str]:
    """Every script (repo-relative path) in the paper folders and the arena: ``run_main(`` + a __main__ block."""
    found = []
    for folder in FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            text = path.read_text()
            if "run_main(" not in text or "__main__" not in text:
                continue
            tree = ast.parse(text)
            if any(isinstance(n, ast.If) and "__name__" in ast.unparse(n.test) for n in tree.body):
                found.append(path.relative_to(REPO).as_posix())
    return found


def module_name(script: str) -> str:
    return script[: -len(".py")].replace("/", ".")


class _Captured(BaseException):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser


@contextlib.contextmanager
def _patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    """Set ``owner.name`` for the block; restore it (or remove it, if ``owner`` did not define it) afterwards."""
    missing = object()
    saved = owner.__dict__.get(name, missing)
    setattr(owner, name, value)
    try:
        yield
    finally:
        if saved is missing:
            delattr(owner, name)
        else:
            setattr(owner, name, saved)


def entry_point(script: str) -> Callable[[list[str]], Any]:
    """``main`` of the script's module, or (for a module whose __main__ block imports it) the __main__ block."""
    module = importlib.import_module(module_name(script))
    if callable(getattr(module, "main", None)):
        return module.main

    def run_as_main(argv: list[str]) -> None:
        saved = sys.argv
        sys.argv = [script, *argv]
        try:
            with warnings.catch_warnings():  # runpy warns that the module is already imported; intended here
                warnings.simplefilter("ignore", RuntimeWarning)
                runpy.run_module(module_name(script), run_name="__main__", alter_sys=False)
        finally:
            sys.argv = saved

    return run_as_main


@cache
def capture_parser(script: str) -> argparse.ArgumentParser:
    """The parser ``main`` builds: the first ``parse_known_args`` call raises it out of ``main`` before any work."""

    def grab(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
        raise _Captured(self)

    main = entry_point(script)
    with (  # the private _parse_known_args too: a parser subclass with its own parse_known_args still calls it
        _patched(argparse.ArgumentParser, "parse_known_args", grab),
        _patched(argparse.ArgumentParser, "_parse_known_args", grab),
        _patched(cli.ArgumentParser, "parse_known_args", grab),
    ):
        try:
            main([])
        except _Captured as captured:
            return captured.parser
    raise AssertionError(f"{script}: main([]) returned without parsing arguments")


def _capture_or_none(script: str) -> argparse.ArgumentParser | None:
    try:
        return capture_parser(script)
    except BaseException:  # noqa: BLE001 - reported by the tests that need the parser
        return None


def _option(parser: argparse.ArgumentParser, *names: str) -> argparse.Action | None:
    return next((a for a in parser._actions if set(a.option_strings) & set(names)), None)


def _subparsers(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(argv prefix, parser) for the parser and every subcommand parser below it."""
    found = [(prefix, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice, sub in action.choices.items():
                found.extend(_subparsers(sub, (*prefix, choice)))
    return found


# ------------------------------------------------------------------------------------------------ the bad inputs


@dataclass(frozen=True)
class Case:
    """One bad command line: ``argv`` must exit 2 with one stderr line containing one of ``names``."""

    label: str
    argv: tuple[str, ...]
    names: tuple[str, ...]


def _item_type(action: argparse.Action) -> Any:
    """The value type of an option; for ``csv_list(item)`` the item type."""
    kind = action.type
    if getattr(kind, "__qualname__", "") == "csv_list.<locals>.parse" and kind.__closure__:
        return kind.__closure__[0].cell_contents
    return kind


def _values(action: argparse.Action, value: str) -> list[str]:
    count = action.nargs if isinstance(action.nargs, int) else 1
    return [value] * count


def _complete(argv: tuple[str, ...], base: list[str]) -> tuple[str, ...]:
    """``argv`` followed by ``base`` without the base options that ``argv`` sets itself."""
    rest, i = [], 0
    while i < len(base):
        if base[i] in argv:
            i += 2
            continue
        rest.append(base[i])
        i += 1
    return (*argv, *rest)


def parse_cases(script: str, parser: argparse.ArgumentParser) -> list[Case]:
    """The parse-level bad inputs of one script, derived from its actions."""
    cases = [Case("unknown flag", _complete((UNKNOWN_FLAG,), BASE_ARGV.get(script, [])), (UNKNOWN_FLAG,))]
    for prefix, sub in _subparsers(parser):
        base = BASE_ARGV.get(" ".join((script, *prefix)), []) if prefix else BASE_ARGV.get(script, [])
        for action in sub._actions:
            if not action.option_strings or action.nargs == 0 or isinstance(action, argparse._HelpAction):
                continue
            flag = action.option_strings[-1]
            names = tuple(action.option_strings)
            kind = _item_type(action)
            bad: list[tuple[str, str]] = []
            if kind in NUMERIC_TYPES:
                bad.append(("non-numeric", "abc"))
            if kind in POSITIVE_TYPES:
                bad += [("zero", "0"), ("negative", "-1")]
            if kind in NONNEG_TYPES:
                bad.append(("negative", "-1"))
            if action.dest == "device":
                bad += [("unknown device", "tpu"), ("absent device", "cuda:99")]
            if kind in (cli.existing_file, cli.existing_dir):
                bad.append(("missing file", MISSING))
            for label, value in bad:
                argv = _complete((*prefix, flag, *_values(action, value)), base)
                cases.append(Case(f"{' '.join(prefix + (flag,))} {label}", argv, names))
    return cases


def _range_pairs(parser: argparse.ArgumentParser) -> list[tuple[argparse.Action, argparse.Action | None]]:
    """(low, high) option pairs the parser declares; (action, None) for a two-value range option like --limits."""
    by_dest = {a.dest: a for a in parser._actions if a.option_strings}
    pairs: list[tuple[argparse.Action, argparse.Action | None]] = []
    for dest, action in by_dest.items():
        for low, high in RANGE_WORDS:
            for lo_name, hi_name in ((f"{low}_", f"{high}_"), (f"_{low}", f"_{high}")):
                if lo_name.startswith("_") and dest.endswith(lo_name):
                    partner = dest[: -len(lo_name)] + hi_name
                elif lo_name.endswith("_") and dest.startswith(lo_name):
                    partner = hi_name + dest[len(lo_name) :]
                else:
                    continue
                if partner in by_dest:
                    pairs.append((action, by_dest[partner]))
        if action.nargs == 2 and _item_type(action) in NUMERIC_TYPES and re.search("limit|range", dest):
            pairs.append((action, None))
    return pairs


def _inverted_values(low: argparse.Action, high: argparse.Action | None) -> tuple[str, str]:
    """Two values in the wrong order: the swapped defaults where they are ordered numbers, else 2 and 1."""
    lo_default = low.default[0] if high is None and isinstance(low.default, list) else low.default
    hi_default = low.default[1] if high is None and isinstance(low.default, list) else getattr(high, "default", None)
    if isinstance(lo_default, (int, float)) and isinstance(hi_default, (int, float)) and lo_default < hi_default:
        return str(hi_default), str(lo_default)
    return "2", "1"


def main_cases(script: str, parser: argparse.ArgumentParser) -> list[Case]:
    """Bad inputs that main must reject before the run starts working: inverted ranges, missing inputs.

    An inverted range is set into the script's tiny command where it has one, so that a script that accepts it stops
    soon; a missing file goes into the plain command (the tiny one may make the file unnecessary).
    """
    tiny = list(_complete(tuple(TINY_ARGV.get(script, [])), BASE_ARGV.get(script, [])))
    base = BASE_ARGV.get(script, [])
    cases = []
    for low, high in _range_pairs(parser):
        first, second = _inverted_values(low, high)
        if high is None:
            argv = (low.option_strings[-1], first, second)
            names = (low.dest, *low.option_strings)
        else:
            argv = (low.option_strings[-1], first, high.option_strings[-1], second)
            names = (low.dest, high.dest, *low.option_strings, *high.option_strings)
        names = tuple({n.lstrip("-") for n in names} | {n.lstrip("-").replace("-", "_") for n in names})
        cases.append(Case(f"inverted {' '.join(argv[::2] if high else argv[:1])}", _complete(argv, tiny), names))
    for action in parser._actions:
        if (
            action.option_strings
            and action.type not in (cli.existing_file, cli.existing_dir)
            and action.nargs in (None, "?")
            and PATH_DEST.search(action.dest)
            and not action.dest.startswith("out")
        ):
            flag = action.option_strings[-1]
            companion = [c for c in PATH_COMPANION.get(action.dest, []) if _option(parser, c)]
            argv = _complete((flag, MISSING, *companion), base)
            cases.append(Case(f"{' '.join((flag, *companion))} missing file", argv, (MISSING, flag)))
    return cases


# ------------------------------------------------------------------------------------------------ running them


class _WorkStarted(BaseException):
    """Raised when a run logs, plots, finishes or starts a progress bar: the script accepted the input."""


class _TimedOut(BaseException):
    pass


def _call(fn: Callable[[], Any], seconds: int = 0) -> tuple[int | str, str, str]:
    """Run ``fn`` with stdout/stderr captured; returns (exit code or outcome, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()

    def on_alarm(signum: int, frame: Any) -> None:
        raise _TimedOut()

    previous = signal.signal(signal.SIGALRM, on_alarm) if seconds else None
    if seconds:
        signal.alarm(seconds)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            fn()
        code: int | str = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except _WorkStarted:
        code = "accepted (the run started working)"
    except _TimedOut:
        code = f"accepted (still running after {seconds} s)"
    except Exception as exc:  # noqa: BLE001
        code = f"raised {type(exc).__name__}: {exc}"
    finally:
        if seconds:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    return code, out.getvalue(), err.getvalue()


def _verdict(case: Case, code: int | str, err: str) -> str | None:
    """None when the case kept the contract, else what went wrong."""
    lines = [line for line in err.splitlines() if line.strip()]
    problems = []
    if code != 2:
        problems.append(f"exit {code}")
    if "Traceback" in err:
        problems.append("traceback on stderr")
    if len(lines) != 1:
        problems.append(f"{len(lines)} stderr lines")
    elif not any(name in lines[0] for name in case.names):
        hint = " (complete the command in BASE_ARGV)" if "required" in lines[0] else ""
        problems.append(f"message names none of {list(case.names)}{hint}")
    if not problems:
        return None
    return f"{case.label} [{' '.join(case.argv)}]: {', '.join(problems)}: {err.strip()[-300:]!r}"


def _params(check: str, scripts: list[str]) -> list[Any]:
    params = []
    for script in scripts:
        reason = XFAIL.get((check, script))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(script, marks=marks, id=script))
    return params


SCRIPTS = discover_scripts()


def test_discovery_finds_the_scripts() -> None:
    """The enumeration sees the known entry points of every paper (a broken discovery would check nothing)."""
    expected = {
        "forward_grad/nn_training/train.py",
        "forward_grad/lr_search/propulate_search.py",
        "hp_scaling/main.py",
        "line_search/main.py",
        "line_search/run_multiple_img.py",
        "sgd_genfunc/train_nn.py",
        "autowu/train.py",
    }
    assert expected <= set(SCRIPTS), sorted(expected - set(SCRIPTS))
    stale = [k for k in (*TINY_ARGV, *BASE_ARGV) if k.split(" ")[0] not in SCRIPTS]
    assert not stale, f"TINY_ARGV/BASE_ARGV name scripts that are gone: {stale}"


@pytest.mark.parametrize("script", _params("bad_inputs", SCRIPTS))
def test_help_and_parse_level_bad_inputs(script: str) -> None:
    parser = capture_parser(script)
    code, out, err = _call(lambda: parser.parse_args(["--help"]))
    failures = [] if code == 0 and "usage" in out.lower() else [f"--help: exit {code}, stderr {err.strip()!r}"]
    for case in parse_cases(script, parser):
        code, _, err = _call(lambda case=case: parser.parse_args(list(case.argv)))
        verdict = _verdict(case, code, err)
        if verdict:
            failures.append(verdict)
    assert not failures, f"{script}:\n" + "\n".join(failures)


def _main_check_scripts() -> list[str]:
    return [s for s in SCRIPTS if (p := _capture_or_none(s)) is None or main_cases(s, p)]


@pytest.mark.parametrize("script", _params("main_checks", _main_check_scripts()))
def test_inverted_ranges_and_missing_inputs_exit_2_before_work_starts(
    script: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Through ``run_main(main)``: rejected before the run logs, plots, finishes or shows a progress bar."""
    import tqdm.std

    parser = capture_parser(script)
    main = entry_point(script)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise _WorkStarted()

    for name in ("log", "save_figure", "finish"):
        monkeypatch.setattr(runs.Run, name, refuse)
    monkeypatch.setattr(tqdm.std.tqdm, "__init__", refuse)
    monkeypatch.setenv("ERROR_LOG_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # anything written by accident stays in the temporary folder
    failures = []
    for case in main_cases(script, parser):
        argv = [*_output_args(parser, tmp_path), *case.argv]
        code, _, err = _call(lambda argv=argv: cli.run_main(main, argv), seconds=30)
        verdict = _verdict(case, code, err)
        if verdict:
            failures.append(verdict)
    assert not failures, f"{script}:\n" + "\n".join(failures)


def _output_args(parser: argparse.ArgumentParser, tmp_path: Path) -> list[str]:
    """Point --out and the seed-defined --save_dir/--save-dir into ``tmp_path``."""
    argv = ["--out", str(tmp_path / "out")] if _option(parser, "--out") else []
    for flag in ("--save_dir", "--save-dir"):
        if _option(parser, flag):
            argv += [flag, str(tmp_path / "save")]
    return argv


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


def _sample() -> list[str]:
    """One script per folder: the sample that runs as a real process."""
    chosen: dict[str, str] = {}
    for script in SCRIPTS:
        chosen.setdefault(script.split("/")[0], script)
    return list(chosen.values())


@pytest.mark.slow
@pytest.mark.parametrize("script", _params("subprocess", _sample()))
def test_bad_input_as_a_process_is_one_line_exit_2(script: str, tmp_path: Path) -> None:
    """``python -m <module>`` with one bad input: a bad device or value where the script has one, else unknown flag."""
    parser = capture_parser(script)
    cases = parse_cases(script, parser)
    ranked = sorted(cases, key=lambda c: ("device" not in c.label, "non-numeric" not in c.label))
    picked = ranked[:1]  # one process per script: a bad device, else a non-numeric value, else an unknown flag
    failures = []
    for case in picked:
        proc = subprocess.run(
            [sys.executable, "-m", module_name(script), *case.argv],
            cwd=REPO,
            env={**_env(), "ERROR_LOG_DIR": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        verdict = _verdict(case, proc.returncode, proc.stderr)
        if verdict:
            failures.append(verdict)
    assert not failures, f"{script}:\n" + "\n".join(failures)


def _tensorboard_scripts() -> list[str]:
    """Scripts that accept --tensorboard (and those whose parser cannot be captured, so that they fail)."""
    return [s for s in SCRIPTS if (p := _capture_or_none(s)) is None or _option(p, "--tensorboard")]


def test_every_tensorboard_script_registers_a_tiny_run() -> None:
    missing = [s for s in _tensorboard_scripts() if s not in TINY_ARGV]
    assert not missing, f"scripts accepting --tensorboard need a TINY_ARGV entry in {__file__}: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("script", _params("tensorboard", _tensorboard_scripts()))
def test_tensorboard_writes_events(script: str, tmp_path: Path) -> None:
    assert script in TINY_ARGV, f"register the quickest settings of {script} in TINY_ARGV"
    parser = capture_parser(script)
    for name, text in TINY_FILES.get(script, {}).items():
        (tmp_path / name).write_text(text)
    tiny = tuple(arg.replace("{tmp}", str(tmp_path)) for arg in TINY_ARGV[script])
    argv = [*_output_args(parser, tmp_path), *_complete(tiny, BASE_ARGV.get(script, [])), "--tensorboard"]
    proc = subprocess.run(
        [sys.executable, "-m", module_name(script), *argv],
        cwd=REPO,
        env={**_env(), "ERROR_LOG_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr[-1500:]}"
    events = list(tmp_path.rglob("events.out.tfevents.*"))
    assert events, f"{script} --tensorboard wrote no events under {tmp_path}"
