"""Speed goals of forward_grad (DESIGN.md §8): P1 vmap vs loop jvps, P2 FG step vs BP step, P3 E1 grid time, P4 search
evaluations/s on 2 ranks vs 1. Prints ratios (baseline / ours) and writes results/bench/forward_grad.json.

    python benchmarks/forward_grad_bench.py [--reps 20] [--threads 1 2] [--skip P3 P4]
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
import torch.nn.functional as F

from common.bench import BenchReport, compare, measure
from common.cli import ArgumentParser, positive_int, run_main
from forward_grad.forward_gradient import ForwardGradient
from forward_grad.nn_training.models import build_model

REPO = Path(__file__).resolve().parents[1]


def fc1024(device):
    torch.manual_seed(0)
    model = build_model("fc", 1, 28, width=1024).to(device)  # 784-1024-1024-10: 1,863,690 parameters
    x = torch.randn(64, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (64,), device=device)
    return model, (x, y)


def p1(report, device, reps, tag):
    model, batch = fc1024(device)
    for mode in ("weight", "node"):
        vm = ForwardGradient(16, "mean", perturbation_mode=mode, jvp_backend="vmap")
        lp = ForwardGradient(16, "mean", perturbation_mode=mode, jvp_backend="loop")
        n = vm.dimension(model, batch[0])
        D = torch.randn(16, n, device=device)
        jv = vm.weight_jvps if mode == "weight" else vm.node_jvps
        jl = lp.weight_jvps if mode == "weight" else lp.node_jvps
        base, ours = compare(lambda jl=jl, D=D: jl(model, batch, D), lambda jv=jv, D=D: jv(model, batch, D), 3, reps)
        report.add(f"P1{tag}", f"K=16 jvps {mode}: loop / vmap", base.median_s, ours.median_s, 2.0,
                   "target ours <= 0.5x loop")  # fmt: skip


def p2(report, device, reps, tag):
    model, batch = fc1024(device)
    params = [p for p in model.parameters()]
    sizes = [p.numel() for p in params]
    opt = torch.optim.SGD(params, lr=1e-4)
    fg = ForwardGradient(1, "mean", perturbation_mode="weight")
    D = torch.empty(1, sum(sizes), device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    for p in params:
        p.grad = torch.zeros_like(p)

    def bp_step():
        opt.zero_grad(set_to_none=False)
        F.cross_entropy(model(batch[0]), batch[1]).backward()
        opt.step()

    def fg_step():  # tangent pre-sampled into D (its drawing is timed apart below); g_hat written into .grad
        _, d = fg.weight_jvps(model, batch, D)
        fg.write_weight_grads(params, d, D, D)
        opt.step()

    D.normal_(generator=gen)
    base, ours = compare(bp_step, fg_step, 3, reps)
    report.add(f"P2{tag}", "K=1 FG weight step vs BP step", base.median_s, ours.median_s, 1 / 1.3,
               "target FG <= 1.3x BP")  # fmt: skip
    draw = measure(lambda: D.normal_(generator=gen), 3, reps)
    report.add(f"i{tag}", "draw 1.86M-entry tangent vs BP step", base.median_s, draw.median_s, None, "printed only")
    node = ForwardGradient(1, "mean", perturbation_mode="node")
    base, ours = compare(bp_step, lambda: (node.step(model, batch), opt.step()), 3, reps)
    report.add(f"i{tag}", "node K=1 step vs BP step", base.median_s, ours.median_s, None, "pilot 1.3-1.6x")
    frog = ForwardGradient(16, "frog", perturbation_mode="node")
    mean = ForwardGradient(16, "mean", perturbation_mode="node")
    base, ours = compare(lambda: mean.step(model, batch), lambda: frog.step(model, batch), 3, reps)
    report.add(f"i{tag}", "node K=16 step: fg-mean / frog", base.median_s, ours.median_s, None, "pilot 1.03-1.08")


def p3(report):
    cmd = [sys.executable, str(REPO / "forward_grad" / "approximation_quality.py"), "--n", "16", "64", "256", "1024",
           "4096", "--k", "1", "2", "4", "16", "64", "256", "--samples", "500", "--aggregations", "mean", "frog",
           "--normalize_tangents", "false", "--threads", "1", "--no_progress"]  # fmt: skip
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run(
            [*cmd, "--out", out], check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
        )
        seconds = time.perf_counter() - start
    report.add("P3", "approximation_quality E1 grid (1 thread)", 60.0, seconds, 1.0, "baseline = the 60 s target")


def p4(report, backend="analytic"):
    """Search throughput, 2 ranks vs 1 (16 evaluations per rank, pruning off). The analytic backend makes a sphere
    evaluation ~0.1 s, so propulate's per-generation overhead shows; vmap (~0.6 s per evaluation) is work-bound."""
    mpirun = Path(sys.executable).parent / "mpirun"
    rates = {}
    for ranks in (1, 2):
        with tempfile.TemporaryDirectory() as root:
            script = REPO / "forward_grad" / "lr_search" / "propulate_search.py"
            cmd = [sys.executable, str(script), "--num_evaluations", str(16 * ranks), "--surrogate_margin", "0",
                   "--gradient", "fg-mean", "-k", "16", "--search_root", root, "--no_progress", "math",
                   "--function", "sphere", "-n", "1024", "--jvp_backend", backend]  # fmt: skip
            if ranks > 1:
                cmd = [str(mpirun), "--oversubscribe", "-n", str(ranks), *cmd]
            env = {**os.environ, "OMP_NUM_THREADS": "1", "OMPI_ALLOW_RUN_AS_ROOT": "1",
                   "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}  # fmt: skip
            subprocess.run(cmd, check=True, capture_output=True, env=env)
            label = Path(root) / "math" / "sphere_n=1024" / "fg-mean_k=16"
            rows = [json.loads(ln) for f in label.glob("evaluations.r*.jsonl") for ln in f.read_text().splitlines()]
            span = max(r["time"] for r in rows) - min(r["time"] - r["eval_seconds"] for r in rows)
            rates[ranks] = span / len(rows)  # seconds per evaluation, all ranks together
    report.add("P4", f"search s/evaluation ({backend} backend): 1 rank / 2 ranks", rates[1], rates[2], 1.6,
               "target 2 ranks >= 1.6x")  # fmt: skip


def main(argv=None) -> int:
    parser = ArgumentParser(prog="forward_grad_bench.py", description=__doc__)
    parser.add_argument("--reps", type=positive_int, default=20, metavar="INT", help="timed repetitions")
    parser.add_argument("--threads", nargs="+", type=positive_int, default=[1, 2], metavar="INT")
    parser.add_argument("--skip", nargs="*", default=[], choices=["P1", "P2", "P3", "P4"])
    parser.add_argument("--out", default="results/bench", metavar="DIR")
    args = parser.parse_args(argv)
    report = BenchReport("forward_grad", Path(args.out))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for threads in args.threads if device == "cpu" else [torch.get_num_threads()]:
            torch.set_num_threads(threads)
            tag = f"[{device},{threads}t]" if device == "cpu" else "[cuda]"
            if "P1" not in args.skip:
                p1(report, device, args.reps, tag)
            if "P2" not in args.skip:
                p2(report, device, args.reps, tag)
    torch.set_num_threads(1)
    if "P3" not in args.skip:
        p3(report)
    if "P4" not in args.skip:
        p4(report, "analytic")
        p4(report, "vmap")
    report.finish()
    return 0


if __name__ == "__main__":
    run_main(main)
