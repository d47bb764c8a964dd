"""sgd_genfunc speed goals B1-B5 (sgd_genfunc/DESIGN.md §8): baseline and ours interleaved in one process, one thread.

python benchmarks/sgd_genfunc_bench.py [--quick]   -> prints the ratio table, writes results/bench/sgd_genfunc.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.func import functional_call, jacrev, vmap

from common.bench import BenchReport, compare, measure
from sgd_genfunc.ntk import NTKTwoLayerMLP, empirical_ntk, ntk_mlp1
from sgd_genfunc.problems import power_law_coefficients, power_law_spectrum, synthetic_problem
from sgd_genfunc.theory import FullStepper, full_step_naive, gamma, sd_run
from sgd_genfunc.theory.full import STEP_STREAMS, full_init
from sgd_genfunc.training import ResidualSGD, batch_streams, train_linearized


def b1_full(report, N):
    prob = synthetic_problem(N, 1.5, 1.0)
    g = gamma(N, 10)
    st = full_init(prob.lam, prob.U, torch.outer(prob.d0, prob.d0))
    K = prob.K_tilde
    C, J, P = (prob.U @ X @ prob.U.T for X in st[:3])
    stepper = FullStepper(prob.lam, prob.U)  # what full_run steps with (buffers reused across steps)
    base, ours = compare(lambda: full_step_naive(C, J, P, K, 0.5, 0.3, g), lambda: stepper.step(st, 0.5, 0.3, g), 1, 3)
    mm = measure(lambda: K @ C, 1, 3).median_s
    dst = torch.empty_like(C)
    copy_s = measure(lambda: dst.copy_(C), 2, 7).median_s  # 2 N^2 float64 moved
    bandwidth = 2 * C.numel() * 8 / copy_s
    roof = 1.75 * mm + STEP_STREAMS * C.numel() * 8 / bandwidth  # 1.75 GEMMs at K @ C's rate + the elementwise bytes
    report.add(
        "B1",
        f"full step N={N} (naive/eig)",
        base.median_s,
        ours.median_s,
        2.0,
        f"eig = {ours.median_s / mm:.2f} matmul-times (target <= 3.5); roof {roof / mm:.2f} = 1.75 GEMMs "
        f"({2 * N**3 / mm / 1e9:.0f} GFLOP/s) + {STEP_STREAMS} x {C.numel() * 8 / 2**20:.1f} MiB at "
        f"{bandwidth / 1e9:.1f} GB/s",
    )


def b2_sd(report, N, G, T):
    lam, c = power_law_spectrum(N, 1.5), power_law_coefficients(N, 1.0)
    alphas = torch.linspace(0.05, 0.7, G, dtype=torch.float64)

    def loop():
        for a in alphas.tolist():
            sd_run(lam, c, T, a, 0.3, 0.5, 1.0)

    base, ours = compare(loop, lambda: sd_run(lam, c, T, alphas, 0.3, 0.5, 1.0), 1, 3)
    report.add(
        "B2",
        f"SD G={G} configs, N={N}, T={T} (loop/vec)",
        base.median_s,
        ours.median_s,
        3.0,
        f"{G * T / ours.median_s:.3g} config-steps/s",
    )


def reference_ntk(model, X):
    """Reference-style empirical NTK: the full Jacobian of all N points, twice, then an einsum."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def f(p, x):
        return functional_call(model, p, (x.unsqueeze(0),)).reshape(())

    J1 = vmap(jacrev(f), in_dims=(None, 0))(params, X)
    J2 = vmap(jacrev(f), in_dims=(None, 0))(params, X)
    return sum(torch.einsum("n...,m...->nm", J1[k], J2[k]) for k in J1)


def b3_b4_ntk(report, N, H):
    torch.manual_seed(0)
    for d in (64, 784):
        X = torch.randn(N, d, dtype=torch.float64)
        model = NTKTwoLayerMLP(d, H).double()
        t = measure(lambda m=model, x=X: ntk_mlp1(m, x), 1, 3).median_s
        if d == 64:
            base, ours = compare(lambda m=model, x=X: reference_ntk(m, x), lambda m=model, x=X: ntk_mlp1(m, x), 1, 3)
            report.add(
                "B3",
                f"NTK closed form N={N} H={H} d=64 (ref/ours)",
                base.median_s,
                ours.median_s,
                10.0,
                f"absolute {ours.median_s:.2f} s (< 10 s)",
            )
            P = H * d + 2 * H
            chunk = 128
            base, ours = compare(
                lambda m=model, x=X: reference_ntk(m, x),
                lambda m=model, x=X, c=chunk: empirical_ntk(m, x, chunk_size=c, max_jacobian_bytes=0),
                1,
                3,
            )
            mem_ours = (2 * chunk * P + N * N) * 8 / 2**20
            mem_ref = (2 * N * P + N * N) * 8 / 2**20
            pivot = chunk + chunk // 2
            rows = N + sum(N - i for i in range(pivot, N, pivot))  # Jacobian rows the recompute path forms
            gflop = 2 * P * sum(min(pivot, N - i) * (N - i) for i in range(0, N, pivot)) / 1e9
            report.add(
                "B4",
                f"empirical_ntk chunk={chunk} (ref/ours)",
                base.median_s,
                ours.median_s,
                1 / 1.5,
                f"extra memory {mem_ours:.0f} MiB vs {mem_ref:.0f} MiB (2 chunk x P + N^2); Jacobian rows {rows} vs "
                f"{2 * N}, GEMM {gflop:.0f} vs {4 * N * N * P / 2e9:.0f} GFLOP",
            )
        else:
            report.add("B3", f"NTK closed form N={N} H={H} d=784 (10 s / ours)", 10.0, t, 1.0, f"absolute {t:.2f} s")


def host_synced_linearized(d0, K, T, b, R, seed):
    """Baseline: per-run, per-step numpy batch draws and .item() losses (the reference loop style)."""
    N = K.shape[0]
    rngs = batch_streams(seed, R)
    out = np.empty((R, T + 1))
    for r, rng in enumerate(rngs):
        d = d0.clone()
        out[r, 0] = (d @ d).item() / (2 * N)
        for n in range(1, T + 1):
            idx = torch.as_tensor(rng.choice(N, b, replace=False))
            d = d - 0.5 * (N / b) * (K[:, idx] @ d[idx])
            out[r, n] = (d @ d).item() / (2 * N)
    return out


def b5_linearized(report, N, R, T):
    prob = synthetic_problem(N, 1.5, 1.0)

    def ours():
        train_linearized(ResidualSGD(0.5, 0.0), prob.d0, prob.K_tilde, T, 10, R, batch_streams(0, R))

    base, cand = compare(lambda: host_synced_linearized(prob.d0, prob.K_tilde, T, 10, R, 0), ours, 1, 3)
    report.add("B5", f"linearized R={R} N={N} b=10 T={T} (synced/ours)", base.median_s, cand.median_s, 2.0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes (same ratios, less time)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    report = BenchReport("sgd_genfunc")
    q = args.quick
    b1_full(report, 500 if q else 1000)
    b2_sd(report, 1000, 256, 20 if q else 50)
    b3_b4_ntk(report, 500 if q else 1000, 1000)
    b5_linearized(report, 1000 if q else 3000, 100, 100)
    t0 = time.time()
    lam, c = power_law_spectrum(100_000, 1.5), power_law_coefficients(100_000, 1.0)
    T = 1000 if q else 10_000
    sd_run(lam, c, T, 1.0, 0.0, gamma(100_000, 10), 1.0)
    print(f"SD curve N=1e5, T={T}: {time.time() - t0:.1f} s (pilot numpy implementations: 11-40 s at T=1e4)")
    report.finish()


if __name__ == "__main__":
    main()
