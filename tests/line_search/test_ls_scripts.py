"""The seed's scripts (DESIGN.md §4, §7.12, §7.19, §9): help, exit 2 on bad input, INI = JSON, resume, grids."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from common.cli import run_main

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _run_dir(out: Path) -> Path:
    """The one run folder main.py made under the results root `out` (<out>/line_search/main/<name>)."""
    (path,) = (out / "line_search" / "main").iterdir()
    return path


def _grid_configs(out: Path, rows: list[dict]) -> list[dict]:
    return [json.loads((out / "runs" / r["name"] / "config.json").read_text()) for r in rows]


def _main():
    from line_search.main import main

    return main


@pytest.mark.slow
def test_help_runs_as_file_and_module():
    """DESIGN.md §2: `python line_search/main.py --help` and `python -m line_search.run_multiple --help` work."""
    a = subprocess.run([sys.executable, "line_search/main.py", "--help"], cwd=ROOT, env=ENV, capture_output=True)
    b = subprocess.run(
        [sys.executable, "-m", "line_search.run_multiple_img", "--help"], cwd=ROOT, env=ENV, capture_output=True
    )
    assert a.returncode == 0 and b"--config_file" in a.stdout, a.stderr.decode()[-500:]
    assert b.returncode == 0 and b"--adam_lrs" in b.stdout, b.stderr.decode()[-500:]


@pytest.mark.parametrize("module", ["main", "run_multiple", "run_multiple_img"])
def test_help_in_process(module, capsys):
    mod = __import__(f"line_search.{module}", fromlist=["main"])
    with pytest.raises(SystemExit) as exc:
        mod.main(["--help"])
    assert exc.value.code == 0 and "--device" in capsys.readouterr().out


BAD = {
    "c=2": ["--set", "c=2"],
    "optim=foo": ["--set", "optim=foo"],
    "optim=lionsls": ["--set", "optim=lionsls"],
    "optim=amsgradsls": ["--set", "optim=amsgradsls"],
    "dataset=pol": ["--set", "dataset=pol"],
    "num_diff_opt=2": ["--set", "num_diff_opt=2"],
    "speed_up=maybe": ["--set", "speed_up=maybe"],
    "unknown key": ["--set", "colour=red"],
    "missing config": ["--config_file", "no/such/config.json"],
    "mlm": ["--train_type", "mlm"],
    "bad device": ["--device", "tpu"],
}


@pytest.mark.parametrize("argv", list(BAD.values()), ids=list(BAD))
def test_bad_input_exits_2_with_one_line(argv, capsys, tmp_path):
    """DESIGN.md §4 / 9: bad input -> one line on stderr, exit status 2."""
    with pytest.raises(SystemExit) as exc:
        run_main(_main(), [*argv, "--out", str(tmp_path / "r"), "--no_progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1, f"DESIGN.md §9: exit {exc.value.code}, stderr {err}"


def test_seed_verbatim_config_lists_datasets(tmp_path, capsys):
    """DESIGN.md §4.1: the seed's config (dataset = pol) exits 2 with the dataset list."""
    cfg = tmp_path / "config.json"
    cfg.write_text("[DEFAULT]\nbatch_size = 32\ndataset = pol\noptim = kensls\nmodel = bert\ntype = NLP\n")
    with pytest.raises(SystemExit) as exc:
        run_main(_main(), ["--config_file", str(cfg), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "digits" in err and "synthetic_order" in err


@pytest.mark.parametrize(
    "script,argv",
    [
        pytest.param("run_multiple_img", ["--paper", "--data_root", "/nonexistent"], marks=pytest.mark.slow),
        ("run_multiple", ["--paper"]),
    ],
    ids=["img", "nlp"],
)
def test_paper_without_data_exits_2(script, argv, capsys):
    """DESIGN.md §4.2: with --paper, missing data or weights exit 2 and name what is missing."""
    mod = __import__(f"line_search.{script}", fromlist=["main"])
    with pytest.raises(SystemExit) as exc:
        run_main(mod.main, [*argv, "--dry_run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "--paper" in err[0]


def test_dry_run_lists_grid(capsys):
    """DESIGN.md §4.2: --dry_run lists the configs (R1 grid: 4 ours + 5 Adam + 5 SGD, x 3 seeds)."""
    from line_search.run_multiple_img import main

    assert main(["--dry_run"])["n_runs"] == (4 + 5 + 5) * 3
    assert "digits_mlp_kensls_s0" in capsys.readouterr().out


@pytest.mark.slow
def test_ini_and_json_give_identical_summaries(tmp_path):
    """DESIGN.md §7.19: the bundled config.json (INI) and its JSON twin give identical summary numbers (epochs=1)."""
    from line_search.harness.config import read_config

    raw, _ = read_config(ROOT / "line_search" / "config.json")
    twin = tmp_path / "twin.json"
    twin.write_text(json.dumps({"DEFAULT": raw}))
    a = _main()(["--set", "epochs=1", "--out", str(tmp_path / "ini"), "--no_progress", "--device", "cpu"])
    b = _main()(["--config_file", str(twin), "--set", "epochs=1", "--out", str(tmp_path / "json"), "--no_progress"])
    keys = ("final_train_loss", "val_acc", "forwards_per_step", "search_fraction", "n_fail", "steps", "status")
    assert {k: a[k] for k in keys} == {k: b[k] for k in keys}, "DESIGN.md §7.19: INI and JSON runs differ"
    assert a["steps"] == 43 and a["status"] == "done"
    files = {p.name for p in (tmp_path / "ini" / "line_search" / "main" / "digits_kensls_s42").iterdir()}
    want = {"config.json", "metrics.csv", "epochs.csv", "summary.json", "SysOut.txt", "checkpoint.pt", "loss.png"}
    assert want <= files, f"DESIGN.md §4.1 run dir lacks {want - files}"


def test_diverged_run_exits_0(tmp_path, capsys):
    """DESIGN.md §9: a NaN loss stops the run with status "diverged", metrics kept, no error exit."""
    argv = ["--set", "optim=sgd", "--set", "lr=1e8", "--set", "epochs=2", "--no_progress", "--name", "div"]
    s = _main()([*argv, "--out", str(tmp_path)])
    run_dir = tmp_path / "line_search" / "main" / "div"
    assert s["status"] == "diverged", s
    assert (run_dir / "metrics.csv").exists() and (run_dir / "summary.json").exists()
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"run dir: {run_dir}"


@pytest.mark.slow
def test_killed_main_resumes_bitwise(tmp_path, monkeypatch, capsys):
    """DESIGN.md §7.12: main.py killed in epoch 2 of 3, run with --resume == uninterrupted run, no duplicate rows."""
    from line_search.harness import trainer

    argv = ["--set", "epochs=3", "--set", "optim=salsa", "--no_progress", "--device", "cpu"]
    full = _main()([*argv, "--out", str(tmp_path / "full")])

    class Killed(Exception):
        pass

    def kill(step):
        if step == 60:
            raise Killed

    monkeypatch.setattr(trainer, "STEP_HOOK", [kill])
    with pytest.raises(Killed):
        _main()([*argv, "--out", str(tmp_path / "cut")])
    monkeypatch.setattr(trainer, "STEP_HOOK", [])
    capsys.readouterr()
    resumed = _main()([*argv, "--out", str(tmp_path / "cut"), "--resume"])
    assert "resumed from " in capsys.readouterr().out, "a resumed run says so (common.cli.announce_resume)"
    keys = ("final_train_loss", "val_acc", "forwards_per_step", "n_fail", "steps")
    assert {k: full[k] for k in keys} == {k: resumed[k] for k in keys}, "DESIGN.md §7.12: resumed run differs"
    rows = [list(csv.DictReader(open(_run_dir(tmp_path / d) / "metrics.csv"))) for d in ("full", "cut")]
    assert [r["step"] for r in rows[1]] == [str(i) for i in range(1, 130)], "DESIGN.md §9: duplicate or missing rows"
    assert [r["loss"] for r in rows[0]] == [r["loss"] for r in rows[1]], "DESIGN.md §7.12: per-step losses differ"


@pytest.mark.slow
@pytest.mark.parametrize("script", ["run_multiple_img", "run_multiple"])
def test_quick_grids_write_tables(script, tmp_path):
    """DESIGN.md §7.19: `--quick` grids write table.csv and summary.json."""
    mod = __import__(f"line_search.{script}", fromlist=["main"])
    summary = mod.main(["--quick", "--out", str(tmp_path), "--no_progress", "--device", "cpu"])
    out = tmp_path / "line_search" / script / "quick"
    assert summary["run_dir"] == str(out)
    assert (out / "table.csv").exists() and (out / "summary.json").exists()
    rows = list(csv.DictReader(open(out / "table.csv")))
    assert len(rows) == (6 if script == "run_multiple_img" else 5)
    assert all((out / "runs" / r["name"] / "config_gen.json").exists() for r in rows)
    assert all(r["epochs"] == 1 for r in _grid_configs(out, rows))


def test_quick_keeps_typed_flags(capsys):
    """A preset fills only what the user did not type: `--quick --epochs 3` runs 3 epochs, 1 seed."""
    from line_search.run_multiple_img import main

    assert main(["--quick", "--epochs", "3", "--optims", "kensls", "--dry_run"])["n_runs"] == 1
    configs = [json.loads(line.split(" ", 1)[1]) for line in capsys.readouterr().out.splitlines()[:-1]]
    assert [c["epochs"] for c in configs] == [3]
    main(["--quick", "--numexp", "2", "--optims", "adam", "--dry_run"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "2 runs", "--quick keeps the typed --numexp 2 and fills Adam {1e-3}"


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--quick", "--epochs", "0"], "--epochs"),
        (["--quick", "--numexp", "-1"], "--numexp"),
        (["--speed_up", "maybe"], "True, False or default"),
        (["--c", "2"], "--c"),
        (["--device", "tpu"], "--device"),
        (["--adam_lrs", "0"], "--adam_lrs"),
    ],
    ids=["epochs0", "numexp-1", "speed_up", "c2", "tpu", "lr0"],
)
def test_grid_bad_flags_exit_2(argv, needle, capsys):
    """Bad grid flags: one stderr line naming the flag, exit 2, no internal function names."""
    from line_search.run_multiple_img import main

    with pytest.raises(SystemExit) as exc:
        run_main(main, [*argv, "--dry_run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and needle in err[0], err
    assert "_bool_list" not in err[0] and "speed_up_list" not in err[0]


def test_out_is_the_results_root(tmp_path):
    """`--out DIR` is the results root: main.py writes <DIR>/line_search/main/<name>/."""
    s = _main()(["--set", "epochs=1", "--set", "optim=adam", "--out", str(tmp_path), "--name", "r", "--no_plots"]
                + ["--no_progress", "--device", "cpu", "--seed", "3"])  # fmt: skip
    run_dir = tmp_path / "line_search" / "main" / "r"
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == s["steps"] == 43
    assert s["seed"] == 3, "--seed overrides the config's seed"
