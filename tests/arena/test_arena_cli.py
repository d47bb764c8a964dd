"""arena.run / arena.report from the command line: plug-in files by path, bad input, kill -9 and --resume, the GPU
tier's clean refusals (arena/README.md §3, §7)."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from arena import run as arena_run
from arena.workloads import _common
from common.cli import run_main
from common.data import DatasetNotFoundError

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TINY = str(HERE / "plugin_tiny_mlp.py")
TINY_DAG = str(HERE / "plugin_tiny_dag.py")
ADAM = str(HERE / "plugin_half_adam.py")
NO_STEP = str(HERE / "plugin_no_step.py")


def _main(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        run_main(arena_run.main, argv)
    err = capsys.readouterr().err
    return exc.value.code, err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--contestants", "no_such_method", "--workloads", TINY], "unknown contestant 'no_such_method'"),
        (["--contestants", "adam_default", "--workloads", "/nonexistent/task.py"], "workload file not found"),
        (["--contestants", NO_STEP, "--workloads", TINY], "defines no step()"),
        (["--contestants", "adam_default", "--workloads", "no_such_task"], "unknown workload 'no_such_task'"),
        (
            ["--contestants", "adam_default", "--workloads", "cifar10_resnet18", "--device", "cpu"],
            "needs --device cuda",
        ),
        (["--contestants", "adam_default", "--workloads", TINY, "--targets", "/nonexistent/t.json"], "targets file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, argv, needle):
    code, err = _main(capsys, [*argv, "--out", str(tmp_path)])
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err


def test_bad_input_from_a_real_process(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "arena.run", "--contestants", NO_STEP, "--workloads", TINY, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "step()" in proc.stderr


def test_gpu_workload_missing_data_is_a_one_line_error(tmp_path, monkeypatch):
    from arena.loading import load_workload

    monkeypatch.setattr(_common, "DATA_ROOT", str(tmp_path))
    w = load_workload("cifar10_vit")
    with pytest.raises(DatasetNotFoundError) as exc:
        w.check_data()
    assert "cifar" in str(exc.value).lower() and "\n" not in str(exc.value)
    assert w.TIER == "gpu"


def _write_cifar(root: Path, n: int = 20) -> None:
    """Tiny CIFAR-10 files in the genuine python-pickle format."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n))}
        entry = {k.decode(): v for k, v in entry.items()}
        with open(base / name, "wb") as handle:
            pickle.dump(entry, handle)
    (base / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}))


@pytest.mark.parametrize("name", ["cifar10_resnet18", "cifar10_vit"])
def test_gpu_workloads_build_and_train_tiny_on_the_cpu(tmp_path, monkeypatch, name):
    import math

    from arena.loading import load_contestant, load_workload
    from arena.trial import TrialSpec, run_trial

    _write_cifar(tmp_path)
    monkeypatch.setattr(_common, "DATA_ROOT", str(tmp_path))
    w = load_workload(name)
    kw = {"limit": 16, "width": 4} if name == "cifar10_resnet18" else {"limit": 16, "hidden_dim": 16, "num_layers": 1}
    real_build = w.build
    monkeypatch.setattr(w, "build", lambda seed, device: real_build(seed, device, **kw))
    monkeypatch.setattr(w, "BATCH_SIZE", 4)
    monkeypatch.setattr(w, "EVAL_EVERY", 2)
    c = load_contestant("adam_default")
    s = run_trial(TrialSpec("adam_default", name, 0, 0, 1, {}, None, math.inf, 2), w, c)
    assert s["status"] == "steps" and s["steps"] == 2 and 0.0 <= s["final_val"] <= 1.0


def test_plug_in_contestant_and_workload_by_path(tmp_path, capsys):
    argv = [
        "--workloads",
        f"{TINY},{TINY_DAG}",
        "--contestants",
        f"{ADAM},adamw_cosine,arch_scaled",
        "--studies",
        "1",
        "--trials",
        "2",
        "--out",
        str(tmp_path),
        "--name",
        "plug",
    ]
    assert arena_run.main(argv) == 0
    run_dir = tmp_path / "arena" / "plug"
    summaries = arena_run.load_summaries(run_dir)
    pairs = {(s["contestant"], s["workload"]) for s in summaries}
    assert ("plugin_half_adam", "plugin_tiny_mlp") in pairs and ("arch_scaled", "plugin_tiny_dag") in pairs
    assert all(
        s["status"] == "n/a"
        for s in summaries
        if s["contestant"] == "arch_scaled" and s["workload"] == "plugin_tiny_mlp"
    )
    assert len(summaries) == 10
    report = (run_dir / "REPORT.md").read_text()
    assert "plugin_half_adam" in report and "n/a" in report and (run_dir / "figures" / "profiles.png").is_file()
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"run dir: {run_dir}"
    code, err = _main(capsys, argv)  # the same folder again without --resume
    assert code == 2 and "--resume" in err


def _markers(run_dir: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p): (p.stat().st_mtime_ns, p.read_bytes()) for p in (run_dir / "trials").glob("*/*/*/trial.pt")}


def test_kill_9_then_resume_reruns_no_finished_trial(tmp_path):
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps({"workloads": {"plugin_tiny_mlp": {"target": 2.0, "budget": 100.0}}}))
    argv = [
        sys.executable,
        "-m",
        "arena.run",
        "--workloads",
        TINY,
        "--contestants",
        "sgd_nesterov_cosine,salsa",
        "--studies",
        "3",
        "--trials",
        "4",
        "--targets",
        str(targets),
        "--out",
        str(tmp_path),
        "--name",
        "k",
    ]
    run_dir = tmp_path / "arena" / "k"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 240
    while time.time() < deadline and len(_markers(run_dir)) < 3 and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _markers(run_dir)
    assert 3 <= len(before) < 15, "the run should have been killed part-way"
    out = subprocess.run([*argv, "--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "resumed from" in out.stdout
    after = _markers(run_dir)
    assert len(after) == 3 * 4 + 3  # sgd: 3 studies x 4 trials; salsa: 3 runs
    for path, stamp in before.items():
        assert after[path] == stamp, f"finished trial rerun: {path}"
    assert len(arena_run.load_summaries(run_dir)) == 15
    from arena import report

    first = json.loads(report.export(run_dir, tmp_path / "first.json", studies=1).read_text())["provenance"]
    every = json.loads(report.export(run_dir, tmp_path / "every.json").read_text())["provenance"]
    assert (first["studies_finished"], first["finished_trials"]) == (1, 4 + 1)
    assert (every["studies_finished"], every["finished_trials"]) == (3, 15)


def test_report_cli_on_a_missing_folder(capsys, tmp_path):
    from arena import report

    with pytest.raises(SystemExit) as exc:
        run_main(report.main, [str(tmp_path / "none")])
    assert exc.value.code == 2 and "no arena trials" in capsys.readouterr().err
