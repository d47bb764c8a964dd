"""Speed and cost goals of the line_search optimizers (line_search/DESIGN.md §8): B1-B5, writes results/bench/*.json.

B1: forwards/step of SaLSa (speed-up) over steps 201-645 of R1 (target <= 1.2; whole run printed).
B2: forwards/step without speed-up, each class, R1 setting (target <= 2.6).
B3: time/step SaLSa (speed-up) / torch.optim.Adam(lr=1e-3) (target <= 1.25).
B4: time/step naive baseline / ours, SaLSa settings (target >= 1.3 with speed-up; without: printed).
B5: state + work bytes vs Adam state (target <= + 1x params); CUDA: peak allocated during step() vs Adam's.
Timing: one thread, candidates interleaved step by step in one process, process CPU clock (CUDA: wall clock between
synchronizations), mean time/step over steps 301-1000 of 1000; MLP 784-512-512-10 on mnist5k, batch 128.
Ratios in common.bench's rows are baseline/ours; for the "<=" targets the row's baseline is the bound or Adam.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from common.bench import BenchReport
from common.cli import ArgumentParser, apply_preset, check_range, device_arg, positive_int, run_main
from common.report import stamp, write_stamped
from line_search.demo import BENCH_STAMPED, bench_config
from line_search.harness.data import load_task
from line_search.sls import SLS, AdamSLS, KenSLS, SaLSa


def _naive_cls():
    path = Path(__file__).with_name("line_search_naive.py")
    spec = importlib.util.spec_from_file_location("line_search_naive", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.NaiveArmijo


def _mlp(device) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
    ).to(device)


def _clock(device):
    if device.type == "cuda":
        torch.cuda.synchronize()
        return time.perf_counter()
    return time.process_time()


def timing(device, steps: int, first: int, model_fn=_mlp, batch_fn=None) -> dict[str, float]:
    """Mean time/step over steps first+1..steps, candidates interleaved step by step."""
    if batch_fn is None:
        x, y = load_task("mnist5k").train.tensors
        x, y = x.to(device), y.to(device)
        g = torch.Generator().manual_seed(0)

        def batch_fn(i):
            idx = torch.randint(0, len(y), (128,), generator=g).to(device)
            return x[idx], y[idx]

    naive = _naive_cls()
    cands = {}
    for name in ("adam", "salsa", "naive", "salsa_nosu", "naive_nosu"):
        m = model_fn(device)
        if name == "adam":
            opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        elif name.startswith("salsa"):
            opt = SaLSa(m.parameters(), speed_up=name == "salsa", seed=0)
        elif device.type == "cuda":
            continue
        else:
            opt = naive(m.parameters(), speed_up=name == "naive", seed=0)
        cands[name] = (m, opt, [])
    crit = nn.CrossEntropyLoss()
    for i in range(steps):
        bx, by = batch_fn(i)
        for _name, (m, opt, times) in cands.items():
            t0 = _clock(device)
            if isinstance(opt, torch.optim.Adam):
                opt.zero_grad()
                crit(m(bx), by).backward()
                opt.step()
            else:
                opt.zero_grad()
                opt.step(lambda m=m, bx=bx, by=by: crit(m(bx), by))
            if i >= first:
                times.append(_clock(device) - t0)
    return {k: sum(t) / len(t) for k, (_, _, t) in cands.items()}


def forwards(epochs: int) -> dict[str, dict]:
    """R1 runs (digits MLP, seed 0) through line_search/main.py: SaLSa with speed-up and each class without."""
    from line_search.main import main

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, su in (("salsa", "True"), ("sls", "False"), ("adamsls", "False"), ("kensls", "False")):
            argv = ["--set", f"optim={name}", "--set", f"speed_up={su}", "--set", f"epochs={epochs}"]
            argv += ["--set", "seed=0", "--set", "c=None", "--set", "beta=None", "--out", f"{tmp}/{name}{su}"]
            out[f"{name}_{su}"] = main([*argv, "--no_progress", "--no_plots", "--device", "cpu"])
        argv = ["--set", "optim=salsa", "--set", "speed_up=False", "--set", f"epochs={epochs}", "--set", "seed=0"]
        out["salsa_False"] = main([*argv, "--set", "c=None", "--out", f"{tmp}/salsaF", "--no_progress", "--no_plots"])
    return out


def memory(device) -> dict[str, float]:
    x = torch.randn(128, 784, device=device)
    y = torch.randint(0, 10, (128,), device=device)
    crit = nn.CrossEntropyLoss()
    out = {}
    for cls in (SLS, AdamSLS, KenSLS, SaLSa):
        m = _mlp(device)
        opt = cls(m.parameters())
        for _ in range(2):
            opt.zero_grad()
            opt.step(lambda m=m: crit(m(x), y))
        fp = opt.memory_footprint()
        out[cls.__name__] = fp["state_bytes"] + fp["work_bytes"]
    m = _mlp(device)
    out["params"] = sum(p.numel() * p.element_size() for p in m.parameters())
    out["adam_state"] = 2 * out["params"]
    if device.type == "cuda":
        for name in ("adam", "salsa"):
            m = _mlp(device)
            opt = torch.optim.Adam(m.parameters(), lr=1e-3) if name == "adam" else SaLSa(m.parameters())
            for i in range(3):
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                opt.zero_grad()
                if name == "adam":
                    crit(m(x), y).backward()
                    opt.step()
                else:
                    opt.step(lambda m=m: crit(m(x), y))
                torch.cuda.synchronize()
                if i == 2:
                    out[f"peak_{name}"] = torch.cuda.max_memory_allocated() - base
    return out


def main(argv=None) -> None:
    p = ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", type=device_arg(("cpu", "cuda")), default="cpu", help="cpu|cuda")
    p.add_argument("--steps", type=positive_int, default=1000, help="timed run length (steps)")
    p.add_argument("--first", type=positive_int, default=300, help="untimed warm-up steps")
    p.add_argument("--epochs", type=positive_int, default=15, help="R1 epochs for B1/B2")
    p.add_argument("--quick", action="store_true", help="smoke test: 60 steps, 3 epochs (fills untyped flags only)")
    args = p.parse_args(argv)
    if args.quick:
        apply_preset(args, {"steps": 60, "first": 20, "epochs": 3}, p.explicit)
    check_range(args.first, args.steps, "--first must be below --steps", strict=True)
    torch.set_num_threads(1)
    device = torch.device(args.device)
    rep = BenchReport("line_search")
    fw = forwards(args.epochs)
    s = fw["salsa_True"]
    late = s["forwards_per_step_after_200"] or s["forwards_per_step"]
    rep.add(
        "B1",
        "fwd/step SaLSa 201-645 (bound/ours)",
        1.2,
        late,
        1.0,
        f"whole run {s['forwards_per_step']:.2f}",
        unit="fwd",
    )
    for name in ("sls", "adamsls", "kensls", "salsa"):
        f = fw[f"{name}_False"]["forwards_per_step"]
        rep.add("B2", f"fwd/step {name}, no speed-up (bound/ours)", 2.6, f, 1.0, unit="fwd")
    t = timing(device, args.steps, args.first)
    rep.add("B3", "time/step Adam / SaLSa", t["adam"], t["salsa"], 0.8, f"SaLSa/Adam = {t['salsa'] / t['adam']:.2f}")
    if "naive" in t:
        rep.add("B4", "time/step naive / ours, speed-up on", t["naive"], t["salsa"], 1.3)
        rep.add("B4", "time/step naive / ours, speed-up off", t["naive_nosu"], t["salsa_nosu"], None)
    if device.type == "cuda":
        from common.models import get_model

        def resnet(dev):
            torch.manual_seed(0)
            return get_model("resnet18", num_classes=10).to(dev)

        def batch(i):
            g = torch.Generator(device=device).manual_seed(i)
            return torch.rand(128, 3, 32, 32, device=device, generator=g), torch.randint(
                0, 10, (128,), device=device, generator=g
            )

        tr = timing(device, max(60, args.steps // 5), max(20, args.first // 5), resnet, batch)
        rep.add("B3", "GPU ResNet-18 time/step Adam / SaLSa", tr["adam"], tr["salsa"], 0.8)
    mem = memory(device)
    bound = mem["adam_state"] + mem["params"]
    for name in ("AdamSLS", "KenSLS", "SaLSa"):
        rep.add("B5", f"bytes (Adam state + params) / {name}", bound, mem[name], 1.0, unit="B")
    if "peak_salsa" in mem:
        rep.add(
            "B5",
            "CUDA peak (Adam step + params) / SaLSa",
            mem["peak_adam"] + mem["params"],
            mem["peak_salsa"],
            1.0,
            unit="B",
        )
    rep.finish()
    # demo overhead row: B3 from this stamped copy, used only if settings and code match (line_search/DESIGN.md §11)
    config = bench_config(args.steps, args.first, args.epochs, args.device)
    write_stamped(
        BENCH_STAMPED, {"rows": [asdict(r) for r in rep.rows]}, stamp("line_search", config, ("line_search",))
    )


if __name__ == "__main__":
    run_main(main)
