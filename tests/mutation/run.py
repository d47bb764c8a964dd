"""Mutation testing runner (``make mutation``): mutmut over the modules of tests/mutation/modules.toml.

Usage (from the repository root)::

    make mutation                                   # every module of modules.toml, then update tests/README.md
    make mutation MODULE=common/distributed.py      # one module
    .venv/bin/python tests/mutation/run.py --module common/checkpoint.py --jobs 2 --no-readme

Each module runs in its own scratch folder ``results/mutation/<module>/`` (a copy of the module's package, tests/
and pyproject.toml with a ``[tool.mutmut]`` table), so runs of different modules, and people editing the tree,
never disturb each other. mutmut mutates only that module and runs only the module's fast test files (slow, mpi
and gpu markers deselected, no xdist). Statuses are folded into four counts:

- killed: a test failed, or the mutant ran past its time limit (a hang counts as killed, "timeout"),
- survived: every test passed (or no test reached the mutated function) and no reason is recorded,
- equivalent: survived, and tests/mutation/equivalent.toml records why the change cannot alter behaviour,
- not checked: the module's wall-clock cap ran out first.

Survivors are printed with their diff and a key; to record one as equivalent, copy the key into
equivalent.toml with a reason. Keys name the function and the changed lines, so they survive edits elsewhere in
the file. ``--update-readme`` (the default of ``make mutation``) rewrites the score table in tests/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MODULES_FILE = HERE / "modules.toml"
EQUIVALENT_FILE = HERE / "equivalent.toml"
README = ROOT / "tests" / "README.md"
SCRATCH = ROOT / "results" / "mutation"
TABLE_START = "<!-- mutation-scores:start -->"
TABLE_END = "<!-- mutation-scores:end -->"
MARKERS = "not slow and not mpi and not gpu"
KILLED = {"killed", "timeout", "caught by type check", "segfault"}
SURVIVED = {"survived", "no tests", "suspicious"}


@dataclass
class Mutant:
    name: str
    status: str
    function: str = ""
    removed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    diff: str = ""

    @property
    def key(self) -> str:
        """Stable description: function and changed lines (whitespace-normalised), independent of mutant numbers."""
        return f"{self.function}: {' / '.join(self.removed)} => {' / '.join(self.added)}"


@dataclass
class Score:
    module: str
    killed: int = 0
    timeout: int = 0
    survived: int = 0
    equivalent: int = 0
    not_checked: int = 0
    seconds: float = 0.0
    date: str = ""
    survivors: list[dict] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.killed + self.survived + self.equivalent + self.not_checked

    @property
    def score(self) -> float:
        """Killed share of the mutants that can change behaviour (equivalent ones excluded)."""
        relevant = self.killed + self.survived + self.not_checked
        return self.killed / relevant if relevant else 1.0


def load_modules(path: Path = MODULES_FILE) -> dict[str, dict]:
    """modules.toml as {module path: {"tests": [...], ...}}."""
    return tomllib.loads(path.read_text())


def check_module(module: str, entry: dict, path: Path = MODULES_FILE) -> None:
    """Every file a module entry names must exist, and it must list tests."""
    missing = [p for p in [module, *entry.get("tests", [])] if not (ROOT / p).is_file()]
    if missing or not entry.get("tests"):
        raise SystemExit(f"mutation: error: {path.name}: {module}: missing files {missing} or no tests listed")


def load_equivalent(path: Path = EQUIVALENT_FILE) -> dict[str, dict[str, str]]:
    """equivalent.toml as {module: {mutant key: reason}}; a record without a reason is an error."""
    if not path.exists():
        return {}
    out: dict[str, dict[str, str]] = {}
    for rec in tomllib.loads(path.read_text()).get("equivalent", []):
        if not rec.get("reason", "").strip():
            raise SystemExit(f"mutation: error: {path.name}: no reason for {rec.get('module')}: {rec.get('mutant')}")
        out.setdefault(rec["module"], {})[rec["mutant"]] = rec["reason"]
    return out


def function_of(mutant_name: str) -> str:
    """``common.distributed.x_all_reduce_mean__mutmut_3`` -> ``all_reduce_mean``; methods give ``Class.method``."""
    tail = mutant_name.rsplit(".", 1)[-1]
    tail = re.sub(r"__mutmut_\d+$", "", tail)
    if tail.startswith("x\u01c1"):
        cls, meth = tail[2:].split("\u01c1", 1)
        return f"{cls}.{meth}"
    return tail.removeprefix("x_")


def changed_lines(diff: str) -> tuple[list[str], list[str]]:
    """Lines removed and added by a unified diff, whitespace-normalised."""
    removed, added = [], []
    for line in diff.splitlines():
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("-"):
            removed.append(" ".join(line[1:].split()))
        elif line.startswith("+"):
            added.append(" ".join(line[1:].split()))
    return removed, added


def prepare_scratch(module: str, entry: dict, scratch: Path) -> None:
    """A fresh folder with the module's package, tests/ and a pyproject.toml that configures mutmut."""
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    package = Path(module).parts[0]
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
    shutil.copytree(ROOT / package, scratch / package, ignore=ignore)
    shutil.copytree(ROOT / "tests", scratch / "tests", ignore=ignore)
    mutmut = {
        "source_paths": [package],
        "only_mutate": [module],
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-p", "no:xdist", "-m", MARKERS, "-q"],
        "pytest_add_cli_args_test_selection": list(entry["tests"]),
        "timeout_multiplier": float(entry.get("timeout_multiplier", 15.0)),
        "use_git_change_detection": False,
    }
    lines = ["", "[tool.mutmut]"] + [f"{k} = {json.dumps(v)}" for k, v in mutmut.items()]
    text = (ROOT / "pyproject.toml").read_text()
    text = re.sub(r"(?ms)^\[tool\.mutmut\].*?(?=^\[|\Z)", "", text)  # a [tool.mutmut] of the repo is replaced
    (scratch / "pyproject.toml").write_text(text + "\n".join(lines) + "\n")


def mutmut_exe() -> str:
    exe = Path(sys.executable).parent / "mutmut"
    if not exe.exists():
        raise SystemExit(f"mutation: error: mutmut not found next to {sys.executable}; run `make setup`")
    return str(exe)


def read_statuses(scratch: Path, module: str) -> dict[str, str]:
    """mutant name -> mutmut status, from mutmut's meta file of the module."""
    from mutmut.stats import status_by_exit_code

    meta = scratch / "mutants" / (module + ".meta")
    if not meta.exists():
        return {}
    codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
    return {name: status_by_exit_code[code] for name, code in codes.items()}


DIFF_SCRIPT = """
import json, sys
from mutmut.mutation.diff_apply import find_mutant, get_diff_for_mutant
out = {}
for name in json.loads(sys.stdin.read()):
    out[name] = get_diff_for_mutant(name, path=find_mutant(name).path)
print(json.dumps(out))
"""


def mutant_diffs(scratch: Path, names: list[str]) -> dict[str, str]:
    """Each mutant's unified diff (as ``mutmut show`` prints it), from one interpreter in the scratch folder."""
    if not names:
        return {}
    proc = subprocess.run(
        [sys.executable, "-c", DIFF_SCRIPT],
        input=json.dumps(names),
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=600,
        env=child_env(),
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    return env


def run_module(module: str, entry: dict, equivalent: dict[str, str], jobs: int, log) -> Score:
    """Mutate one module in its scratch folder and fold mutmut's statuses into a Score."""
    scratch = SCRATCH / module.removesuffix(".py").replace("/", "__")
    prepare_scratch(module, entry, scratch)
    start = time.time()
    cap = float(entry.get("timeout_s", 1800))
    timed_out = False
    with open(scratch / "mutmut.log", "w") as out:
        proc = subprocess.Popen(
            [mutmut_exe(), "run", "--max-children", str(jobs)],
            cwd=scratch,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=child_env(),
            start_new_session=True,
        )
        try:
            proc.wait(timeout=cap)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait()
    statuses = read_statuses(scratch, module)
    if not statuses or (proc.returncode != 0 and not timed_out):
        tail = (scratch / "mutmut.log").read_text()[-3000:]
        raise SystemExit(f"mutation: error: mutmut failed on {module} (log {scratch / 'mutmut.log'}):\n{tail}")
    score = Score(module, seconds=round(time.time() - start, 1), date=datetime.date.today().isoformat())
    matched: set[str] = set()
    diffs = mutant_diffs(scratch, [n for n, st in statuses.items() if st not in KILLED and st != "not checked"])
    for name, status in sorted(statuses.items()):
        if status in KILLED:
            score.killed += 1
            score.timeout += status == "timeout"
            continue
        if status == "not checked":
            score.not_checked += 1
            continue
        diff = diffs[name]
        removed, added = changed_lines(diff)
        mutant = Mutant(name, status, function_of(name), removed, added, diff)
        if mutant.key in equivalent:
            score.equivalent += 1
            matched.add(mutant.key)
            continue
        score.survived += 1
        score.survivors.append(asdict(mutant) | {"key": mutant.key})
        log(f"\n  SURVIVED ({status}) {name}\n  key: {json.dumps(mutant.key, ensure_ascii=False)}\n{diff}")
    for stale in sorted(set(equivalent) - matched):
        log(f"  note: equivalent.toml entry matches no surviving mutant now: {json.dumps(stale, ensure_ascii=False)}")
    return score


def percent(share: float) -> str:
    """Rounded down to 0.1 %, so that a module with a survivor never reads 100 %."""
    return f"{math.floor(share * 1000) / 10:.1f}%"


def table(scores: dict[str, dict]) -> str:
    lines = [
        "| module | mutants | killed (of which timeout) | survived | equivalent | score | date |",
        "|---|---|---|---|---|---|---|",
    ]
    for module in sorted(scores):
        s = scores[module]
        total = s["killed"] + s["survived"] + s["equivalent"] + s.get("not_checked", 0)
        relevant = total - s["equivalent"]
        score = s["killed"] / relevant if relevant else 1.0
        unchecked = f" ({s['not_checked']} not checked)" if s.get("not_checked") else ""
        lines.append(
            f"| {module} | {total} | {s['killed']} ({s['timeout']}) | {s['survived']}{unchecked} | {s['equivalent']} "
            f"| {percent(score)} | {s['date']} |"
        )
    return "\n".join(lines)


def parse_table(text: str) -> dict[str, dict]:
    """The rows of the README score table back as dicts (so one module's run keeps the others' rows)."""
    rows: dict[str, dict] = {}
    block = text.split(TABLE_START, 1)[-1].split(TABLE_END, 1)[0] if TABLE_START in text else ""
    pattern = re.compile(
        r"\| (\S+) \| (\d+) \| (\d+) \((\d+)\) \| (\d+)(?: \((\d+) not checked[^)]*\))? \| (\d+) \| [^|]+ \| (\S+) \|"
    )
    for line in block.strip().splitlines()[2:]:
        m = pattern.fullmatch(line.strip())
        if m is None:  # never drop a row silently: a hand edit that breaks the format is an error
            raise SystemExit(f"mutation: error: cannot read this score-table row of tests/README.md: {line.strip()}")
        rows[m[1]] = {
            "killed": int(m[3]),
            "timeout": int(m[4]),
            "survived": int(m[5]),
            "not_checked": int(m[6] or 0),
            "equivalent": int(m[7]),
            "date": m[8],
        }
    return rows


def update_readme(new: dict[str, dict], readme: Path = README) -> None:
    """Replace the rows of the modules just run in the README's score table (under a lock: runs may overlap)."""
    lock_path = SCRATCH / ".readme.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = readme.read_text() if readme.exists() else ""
        if TABLE_START not in text:
            raise SystemExit(f"mutation: error: {readme} has no {TABLE_START} ... {TABLE_END} block")
        rows = parse_table(text) | new
        head, rest = text.split(TABLE_START, 1)
        tail = rest.split(TABLE_END, 1)[1]
        readme.write_text(f"{head}{TABLE_START}\n{table(rows)}\n{TABLE_END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make mutation", description=__doc__.splitlines()[0])
    parser.add_argument("--module", action="append", help="module path from modules.toml (repeatable; default all)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants tested in parallel (the box has 2 shared cores)")
    parser.add_argument("--update-readme", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    modules = load_modules()
    chosen = args.module or list(modules)
    unknown = [m for m in chosen if m not in modules]
    if unknown:
        parser.error(f"not in {MODULES_FILE.relative_to(ROOT)}: {', '.join(unknown)}; add it there with its tests")
    equivalent = load_equivalent()
    SCRATCH.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    for module in chosen:
        check_module(module, modules[module])
    for module in chosen:
        print(f"== {module} ({', '.join(modules[module]['tests'])})", flush=True)
        score = run_module(module, modules[module], equivalent.get(module, {}), args.jobs, lambda s: print(s))
        results[module] = {k: v for k, v in asdict(score).items() if k not in ("module",)}
        print(
            f"   {score.total} mutants: killed {score.killed} (timeout {score.timeout}), survived {score.survived}, "
            f"equivalent {score.equivalent}, not checked {score.not_checked}; score {percent(score.score)}; "
            f"{score.seconds:.0f} s",
            flush=True,
        )
        out = SCRATCH / (module.removesuffix(".py").replace("/", "__") + ".json")
        out.write_text(json.dumps({"module": module, **results[module]}, indent=2) + "\n")
    print()
    print(table(results))
    if args.update_readme:
        update_readme(results)
        print(f"score table updated in {README.relative_to(ROOT)}")
    return 1 if any(r["survived"] or r["not_checked"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
