"""The mutation runner's bookkeeping (tests/mutation/run.py): keys, equivalents, the README score table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("mutation_run", HERE / "run.py")
run = importlib.util.module_from_spec(_spec)
sys.modules["mutation_run"] = run  # dataclasses look their module up there
_spec.loader.exec_module(run)

DIFF = """--- common/distributed.py
+++ common/distributed.py
@@ -1,5 +1,5 @@
 def all_reduce_mean(tensor):
     if dist.is_initialized():
-        tensor /= dist.get_world_size()
+        tensor *= dist.get_world_size()
     return tensor
"""


def test_mutant_key_names_function_and_changed_lines() -> None:
    assert run.function_of("common.distributed.x_all_reduce_mean__mutmut_12") == "all_reduce_mean"
    assert run.function_of("line_search.sls.x\u01c1SLS\u01c1step__mutmut_3") == "SLS.step"
    removed, added = run.changed_lines(DIFF)
    assert removed == ["tensor /= dist.get_world_size()"] and added == ["tensor *= dist.get_world_size()"]
    m = run.Mutant("common.distributed.x_all_reduce_mean__mutmut_12", "survived", "all_reduce_mean", removed, added)
    assert m.key == "all_reduce_mean: tensor /= dist.get_world_size() => tensor *= dist.get_world_size()"


def test_every_listed_module_and_test_file_exists() -> None:
    modules = run.load_modules()
    assert "common/distributed.py" in modules and "common/checkpoint.py" in modules
    for module, entry in modules.items():
        run.check_module(module, entry)
    with pytest.raises(SystemExit, match="missing files"):
        run.check_module("common/nope.py", {"tests": ["tests/common/test_data.py"]})
    with pytest.raises(SystemExit, match="no tests listed"):
        run.check_module("common/report.py", {"tests": []})


def test_equivalent_records_need_a_reason(tmp_path: Path) -> None:
    good = tmp_path / "eq.toml"
    good.write_text('[[equivalent]]\nmodule = "m.py"\nmutant = "f: a => b"\nreason = "same for every input"\n')
    assert run.load_equivalent(good) == {"m.py": {"f: a => b": "same for every input"}}
    bad = tmp_path / "bad.toml"
    bad.write_text('[[equivalent]]\nmodule = "m.py"\nmutant = "f: a => b"\nreason = " "\n')
    with pytest.raises(SystemExit, match="no reason"):
        run.load_equivalent(bad)
    assert run.load_equivalent(tmp_path / "absent.toml") == {}
    run.load_equivalent()  # the committed file parses and every record has a reason


def test_readme_table_keeps_other_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run, "SCRATCH", tmp_path / "scratch")
    readme = tmp_path / "README.md"
    row = {"killed": 8, "timeout": 1, "survived": 0, "equivalent": 2, "not_checked": 0, "date": "2026-12-06"}
    readme.write_text(f"intro\n{run.TABLE_START}\n{run.table({'a.py': row})}\n{run.TABLE_END}\nafter\n")
    assert run.parse_table(readme.read_text()) == {"a.py": row}
    new = {"killed": 3, "timeout": 0, "survived": 1, "equivalent": 0, "not_checked": 2, "date": "2026-12-07"}
    run.update_readme({"b.py": new}, readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("after\n")
    assert run.parse_table(text) == {"a.py": row, "b.py": new}
    assert "| a.py | 10 | 8 (1) | 0 | 2 | 100.0% | 2026-12-06 |" in text
    assert "| b.py | 6 | 3 (0) | 1 (2 not checked) | 0 | 50.0% | 2026-12-07 |" in text
    assert run.percent(222 / 223) == "99.5%" and run.percent(1.0) == "100.0%", "a survivor never reads 100 %"
    readme_rows = run.parse_table(run.README.read_text())  # every row of the real table reads back
    assert set(readme_rows) == set(run.load_modules()), "one score row per module of modules.toml"
    hand_edited = text.replace("| 1 (2 not checked) |", "| 1 (2 not checked: 1800 s cap) |")
    assert run.parse_table(hand_edited)["b.py"] == new, "a cap note after 'not checked' still parses"
    with pytest.raises(SystemExit, match="cannot read"):
        run.parse_table(text.replace("| 3 (0) |", "| 3 |"))  # a malformed row is an error, never dropped


def test_scratch_config_mutates_only_the_module(tmp_path: Path) -> None:
    scratch = tmp_path / "s"
    run.prepare_scratch("common/distributed.py", {"tests": ["tests/common/test_common_distributed.py"]}, scratch)
    text = (scratch / "pyproject.toml").read_text()
    cfg = run.tomllib.loads(text)["tool"]["mutmut"]
    assert cfg["only_mutate"] == ["common/distributed.py"] and cfg["source_paths"] == ["common"]
    assert "not slow and not mpi and not gpu" in cfg["pytest_add_cli_args"]
    assert cfg["pytest_add_cli_args_test_selection"] == ["tests/common/test_common_distributed.py"]
    assert (scratch / "common" / "distributed.py").is_file() and (scratch / "tests" / "conftest.py").is_file()
    assert not list(scratch.rglob("__pycache__"))
