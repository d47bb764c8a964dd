"""Stacked LR sweep benchmark (hp_scaling DESIGN.md §9): G learning rates in one stacked model vs one after another.

Target: --stack bmm >= 5x faster than the same 33 LRs (2^-6..2^2) trained sequentially as nn.Module +
torch.optim.SGD on DagMLP 2_22_222_2222, digits, width 64, batch 16, one epoch (112 steps). Printed without target:
width 32 with 15 LRs, width 128, the vmap path and (with --mpi) lr_sweep on 8 architectures with 1 vs 2 MPI ranks.
Writes results/bench/hp_scaling_sweep.json.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common.bench import BenchReport, compare
from common.cli import ArgumentParser, positive_int, run_main
from common.runtime import resolve_device
from hp_scaling.loaders import load_data
from hp_scaling.models import DagCNN, DagMLP
from hp_scaling.stacked import train_lrs


def grid(lo: int, hi: int, n: int) -> list[float]:
    return [2.0 ** (lo + (hi - lo) * i / (n - 1)) for i in range(n)]


def _mpi_seconds(ranks: int, out: str) -> float:
    py = sys.executable
    cmd = [
        py,
        "hp_scaling/lr_sweep.py",
        "--depth_chain",
        "0",
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
        "7",
        "--width",
        "32",
        "--seeds",
        "0",
        "--steps_per_octave",
        "1",
        "--no_progress",
        "--out",
        out,
        "--name",
        f"r{ranks}",
    ]
    if ranks > 1:
        cmd = [str(Path(py).parent / "mpirun"), "-n", str(ranks), "--oversubscribe", *cmd]
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=Path(__file__).resolve().parents[1])
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=positive_int, default=3, metavar="INT", help="timed repetitions")
    p.add_argument("--device", default="cpu", metavar="DEV", help="cpu | cuda | auto")
    p.add_argument("--mpi", action="store_true", help="also time lr_sweep with 1 vs 2 MPI ranks (informational)")
    p.add_argument("--threads", type=positive_int, default=1, metavar="INT", help="torch threads")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    data = load_data("digits", "all").to(dev)
    rep = BenchReport("hp_scaling_sweep")

    def case(model, lrs, mode):
        return lambda: train_lrs(model, data, lrs, batch_size=16, seed=0, stack=mode)

    torch.manual_seed(0)
    cases = [("S1", 64, 33, 5.0), ("S2", 32, 15, None), ("S3", 128, 33, None)]
    for cid, width, n, target in cases:
        model = DagMLP("2_22_222_2222", 64, width, 10).to(dev)
        lrs = grid(-6, 2, n)
        base, ours = compare(case(model, lrs, "none"), case(model, lrs, "bmm"), warmup=1, reps=args.reps)
        rep.add(cid, f"bmm, w{width}, {n} LRs, 112 steps", base.median_s, ours.median_s, target, "sequential/bmm")
    cnn = DagCNN("2_02_002_0002", 1, 8, 10).to(dev)
    lrs = grid(-6, 0, 7)
    base, ours = compare(case(cnn, lrs, "none"), case(cnn, lrs, "vmap"), warmup=1, reps=args.reps)
    rep.add("S4", "vmap, DagCNN w8 q3, 7 LRs", base.median_s, ours.median_s, None, "sequential/vmap")
    if args.mpi:
        with tempfile.TemporaryDirectory() as tmp:
            one, two = _mpi_seconds(1, tmp), _mpi_seconds(2, tmp)
        rep.add("S5", "lr_sweep 8 archs, 1 vs 2 MPI ranks", one, two, None, "wall incl. startup")
    rep.finish()
    return 0


if __name__ == "__main__":
    run_main(main)
