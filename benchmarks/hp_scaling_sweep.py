"""Stacked LR sweep benchmark (hp_scaling DESIGN.md §9): G learning rates in one stacked model vs one after another.

Target: --stack bmm >= 5x faster than the same 33 LRs (2^-6..2^2) trained sequentially as nn.Module +
torch.optim.SGD on DagMLP 2_22_222_2222, digits, width 64, batch 16, one epoch (112 steps). Printed without target:
width 32 with 15 LRs, width 128, the vmap path and (with --mpi) lr_sweep on 8 architectures with 1 vs 2 MPI ranks.
Writes results/bench/hp_scaling_sweep.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common.bench import BenchReport, compare
from common.cli import ArgumentParser, device_arg, positive_int, run_main
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


def _rate(fn, work: float, reps: int = 20) -> float:
    """work units per second of ``fn`` (median of ``reps`` after one warm-up call)."""
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return work / sorted(times)[len(times) // 2]


def roofline(width: int, g_count: int, batch: int, seq_step_s: float, bmm_step_s: float) -> dict:
    """Measured roofline of one stacked SGD step on DagMLP 2_22_222_2222 (digits: in 64, 10 classes).

    Work per step, counted from the shapes: every Linear (stem, 10 edges, readout) costs 2*B*in*out flops forward and
    twice that backward (input and weight gradients); bytes are the fp32 weights read forward and backward, their
    gradients written, the SGD update (read p and grad, write p) and each node's activation written and read in
    both passes. Roofs measured here: the batched GEMM of the step's own shape (G x (B x n) @ (n x n)), a large
    GEMM (the core's peak) and a large copy (memory bandwidth). ``ceiling_ratio`` is the S1 ratio if the stacked
    step ran at the roof of its own GEMM shape with no other cost, against the measured sequential steps.
    """
    in_dim, classes, n_edges, n_nodes = 64, 10, 10, 5
    macs = batch * (in_dim * width + n_edges * width * width + width * classes)
    flops = 3 * 2 * macs * g_count
    params = in_dim * width + n_edges * width * width + width * classes
    bytes_step = 4 * g_count * (6 * params + 4 * batch * width * (n_nodes + n_edges))
    a = torch.randn(g_count, batch, width)
    w = torch.randn(g_count, width, width)
    shape_rate = _rate(lambda: torch.bmm(a, w), 2 * g_count * batch * width * width)
    big = torch.randn(1024, 1024)
    peak_rate = _rate(lambda: big @ big, 2 * 1024**3, reps=5)
    src = torch.randn(16 * 1024 * 1024)
    dst = torch.empty_like(src)
    bandwidth = _rate(lambda: dst.copy_(src), 2 * 4 * src.numel(), reps=5)
    roof_s = max(flops / shape_rate, bytes_step / bandwidth)
    return {
        "flops_per_step": flops,
        "bytes_per_step": bytes_step,
        "arithmetic_intensity": flops / bytes_step,
        "bmm_step_ms": 1e3 * bmm_step_s,
        "seq_step_ms_all_copies": 1e3 * seq_step_s,
        "achieved_gflops": flops / bmm_step_s / 1e9,
        "shape_gemm_gflops": shape_rate / 1e9,
        "peak_gemm_gflops": peak_rate / 1e9,
        "bandwidth_gbs": bandwidth / 1e9,
        "roof_step_ms": 1e3 * roof_s,
        "ceiling_ratio": seq_step_s / roof_s,
    }


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=positive_int, default=3, metavar="INT", help="timed repetitions")
    p.add_argument("--device", type=device_arg(), default="cpu", metavar="DEV", help="cpu | cuda | auto")
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
    roof = {}
    for cid, width, n, target in cases:
        model = DagMLP("2_22_222_2222", 64, width, 10).to(dev)
        lrs = grid(-6, 2, n)
        base, ours = compare(case(model, lrs, "none"), case(model, lrs, "bmm"), warmup=1, reps=args.reps)
        rep.add(cid, f"bmm, w{width}, {n} LRs, 112 steps", base.median_s, ours.median_s, target, "sequential/bmm")
        if cid == "S1" and dev.type == "cpu":
            roof = roofline(width, n, 16, base.median_s / 112, ours.median_s / 112)
            rep.add(
                "S1-roof",
                "S1 at the GEMM roof of its shapes (ceiling)",
                base.median_s,
                roof["roof_step_ms"] * 112 / 1e3,
                None,
                f"{roof['achieved_gflops']:.1f} of {roof['shape_gemm_gflops']:.1f} GFLOP/s (shape roof), "
                f"peak {roof['peak_gemm_gflops']:.1f}, {roof['bandwidth_gbs']:.1f} GB/s",
            )
    cnn = DagCNN("2_02_002_0002", 1, 8, 10).to(dev)
    lrs = grid(-6, 0, 7)
    base, ours = compare(case(cnn, lrs, "none"), case(cnn, lrs, "vmap"), warmup=1, reps=args.reps)
    rep.add("S4", "vmap, DagCNN w8 q3, 7 LRs", base.median_s, ours.median_s, None, "sequential/vmap")
    if args.mpi:
        with tempfile.TemporaryDirectory() as tmp:
            one, two = _mpi_seconds(1, tmp), _mpi_seconds(2, tmp)
        rep.add("S5", "lr_sweep 8 archs, 1 vs 2 MPI ranks", one, two, None, "wall incl. startup")
    rep.finish()
    if roof:
        print(
            "S1 roofline (one stacked step, 33 copies): "
            f"{roof['flops_per_step'] / 1e6:.0f} MFLOP, {roof['bytes_per_step'] / 1e6:.1f} MB moved "
            f"(intensity {roof['arithmetic_intensity']:.1f} flop/byte); measured {roof['bmm_step_ms']:.2f} ms "
            f"= {roof['achieved_gflops']:.1f} GFLOP/s; roofs: {roof['shape_gemm_gflops']:.1f} GFLOP/s for the "
            f"step's bmm shape, {roof['peak_gemm_gflops']:.1f} GFLOP/s large GEMM, {roof['bandwidth_gbs']:.1f} GB/s; "
            f"sequential: {roof['seq_step_ms_all_copies']:.2f} ms for the 33 copies' steps; "
            f"ceiling ratio {roof['ceiling_ratio']:.2f}x"
        )
        (Path("results/bench") / "hp_scaling_sweep_roofline.json").write_text(json.dumps(roof, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    run_main(main)
