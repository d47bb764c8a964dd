"""lr_sweep: R1 (DESIGN.md §5, fast), bad input (DESIGN.md §6.4), resume (7.15), MPI (7.14), R2 (slow)."""

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.cli import run_main
from hp_scaling.lr_sweep import main
from hp_scaling.maxlr import lr_grid, random_topologies, select_lr

REPO = Path(__file__).resolve().parents[2]
R1 = (
    "--arch mlp --depth_chain 0 2 4 6 8 --chain_nodes 9 --width 32 --seeds 0 1 --lr_min 0.015625 --lr_max 2 "
    "--steps_per_octave 2 --no_progress"
).split()


def run_dir(out: str) -> Path:
    return Path(out.strip().splitlines()[-1].removeprefix("run dir: "))


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_grid_and_selection():
    assert len(lr_grid(2**-8, 4, 4)) == 41 and len(lr_grid(2**-6, 2, 2)) == 15, "DESIGN.md §6: grid sizes"
    lrs = [0.1, 0.2, 0.4]
    assert select_lr(lrs, [1.0, 0.5, 0.5], [1, 1, 1])[0] == 0.2, "DESIGN.md §6: ties pick the smaller LR"
    assert select_lr(lrs, [1.0, 0.5, 0.2], [1, 1, 1])[2] == "high", "DESIGN.md §6.4: grid-edge flag"
    lr, idx, _ = select_lr(lrs, [math.inf] * 3, [math.inf] * 3)
    assert math.isnan(lr) and idx == -1, "DESIGN.md §6.4: all diverged gives NaN"
    assert select_lr(lrs, [1, 1, 1], [2.0, 2.2, 2.4], "max_stable")[0] == 0.2, "max_stable: below ln(10)"


def test_r2_selection_sizes():
    assert len(random_topologies()) == 28, "DESIGN.md §5.2: 7 bins x 4 codes"
    assert len(random_topologies(linear_only=True)) == 20, "DESIGN.md §5.2: 20 with --linear_only"


@pytest.fixture(scope="module")
def r1(tmp_path_factory):
    out = tmp_path_factory.mktemp("r1")
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main([*R1, "--out", str(out)]) == 0
    path = run_dir(buf.getvalue())
    return json.loads((path / "summary.json").read_text()), read_csv(path / "found.csv"), path


def test_r1_depth_chains(r1):
    s, found, path = r1
    lrs = [float(r["found_lr"]) for r in found]
    r3, r1_ = s["pearson_off3"], s["pearson_off1"]
    assert r3 >= 0.9, f"DESIGN.md §5.1: r(offset 3) = {r3:.3f} must be >= 0.9 (pilot 0.974-0.995)"
    assert lrs[-1] < lrs[0], f"DESIGN.md §5.1: LR(k=8) {lrs[-1]:.3g} must be below LR(k=0) {lrs[0]:.3g}"
    ratio = lrs[0] / lrs[-1]
    assert 2 <= ratio <= 10, f"DESIGN.md §5.1: LR(k=0)/LR(k=8) = {ratio:.2f} must lie in [2, 10] (pilot 2.8-4.0)"
    assert r3 >= r1_, f"DESIGN.md §5.1: r(offset 3) {r3:.3f} must be >= r(offset 1) {r1_:.3f}"
    assert math.isfinite(s["slope_vs_S"]), "DESIGN.md §5.1: slope recorded"
    for f in ("losses.csv", "found.csv", "summary.json", "pred_vs_found.png", "loss_vs_lr.png", "config.json"):
        assert (path / f).exists(), f"DESIGN.md §6: {f} missing"


BAD = [
    (["--dags", "2_02_0002"], "token"),
    (["--dags", "3_03_101_0001"], "digit"),
    (["--lr_min", "2", "--lr_max", "1"], "--lr_min"),
    (["--lrs", "-0.1"], "positive"),
    (["--width", "0"], "--width"),
    (["--batch_size", "0"], "--batch_size"),
    (["--dataset", "foo"], "unknown dataset"),
    (["--dags", "0_00_000_0000"], "no requested DAG"),
]


@pytest.mark.parametrize("extra,needle", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_input_exits_2(tmp_path, capsys, extra, needle):
    with pytest.raises(SystemExit) as e:
        run_main(main, ["--out", str(tmp_path), "--steps", "1", "--no_progress", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and needle in err[0], f"DESIGN.md §6.4: one line, exit 2; got {err}"


SMALL = (
    "--depth_chain 0 2 4 --chain_nodes 5 --width 16 --lr_min 0.0625 --lr_max 2 --steps_per_octave 1 --no_progress"
).split()


def _run_dir(out, name):
    """--out is the results root: lr_sweep writes <out>/hp_scaling/lr_sweep/<name> (DESIGN.md §6.2)."""
    return out / "hp_scaling" / "lr_sweep" / name


def _script(*args):
    return [sys.executable, "hp_scaling/lr_sweep.py", *args]


@pytest.mark.slow
def test_resume_after_sigkill(tmp_path):
    seeds = ["--seeds", "0", "1", "2"]
    ref = subprocess.run(
        _script(*SMALL, *seeds, "--out", str(tmp_path), "--name", "ref"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ref.returncode == 0, ref.stderr[-1000:]
    p = subprocess.Popen(
        _script(*SMALL, *seeds, "--out", str(tmp_path), "--name", "cut"),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    part = _run_dir(tmp_path, "cut") / "partial" / "rank0.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and p.poll() is None:
        if part.exists() and part.read_text().count("\n") >= 1:
            break
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    n_done = part.read_text().count("\n")
    assert 1 <= n_done < 9, f"kill should land after the first partial row, got {n_done} rows"
    res = subprocess.run(
        _script(*SMALL, *seeds, "--out", str(tmp_path), "--name", "cut", "--resume"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-1000:]
    assert "resumed from" in res.stdout, "a resumed sweep says so"
    found = [(_run_dir(tmp_path, n) / "found.csv").read_text() for n in ("cut", "ref")]
    assert found[0] == found[1], "DESIGN.md §8.15: resumed found.csv must equal an uninterrupted run"


@pytest.mark.mpi
def test_mpi_two_ranks_equal_one(tmp_path):
    mpirun = Path(sys.executable).parent / "mpirun"
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    args = [*SMALL, "--seeds", "0", "1", "--out", str(tmp_path)]
    one = subprocess.run(_script(*args, "--name", "one"), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-1000:]
    two = subprocess.run(
        [str(mpirun), "-n", "2", "--oversubscribe", *_script(*args, "--name", "two")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert two.returncode == 0, two.stderr[-2000:]
    one_dir, two_dir = _run_dir(tmp_path, "one"), _run_dir(tmp_path, "two")
    assert (one_dir / "found.csv").read_text() == (two_dir / "found.csv").read_text(), (
        "DESIGN.md §8.14: found.csv must not depend on the rank count"
    )
    a, b = read_csv(one_dir / "losses.csv"), read_csv(two_dir / "losses.csv")
    assert len(a) == len(b) > 0
    for ra, rb in zip(a, b):
        x, y = float(ra["mean_loss"]), float(rb["mean_loss"])
        assert x == y or abs(x - y) <= 1e-7 * abs(x), "DESIGN.md §8.14: losses within 1e-7 relative"
    assert json.loads((two_dir / "summary.json").read_text())["n_ranks"] == 2
