"""DDP agreement (DESIGN.md §7.18, §3.3): 2 gloo ranks, different shards, identical steps; no loss sync drifts apart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parents[2]


CASES = (("KenSLS", True), ("SaLSa", True), ("SaLSa", False))


def _worker(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    from torch import nn

    import line_search.sls as sls
    from line_search.harness.data import load_task

    x, y = load_task("digits").train.tensors
    crit = nn.CrossEntropyLoss()
    results = {}
    for cls_name, sync in CASES:
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)
        )
        ddp = nn.parallel.DistributedDataParallel(model)
        opt = getattr(sls, cls_name)(ddp.parameters(), sync_losses=sync, seed=1)
        g = torch.Generator().manual_seed(0)
        etas = []
        for _ in range(30):
            idx = torch.randperm(len(y), generator=g)[:64][rank::world]  # each rank its own half
            opt.zero_grad()
            opt.step(lambda idx=idx, net=ddp: crit(net(x[idx]), y[idx]))
            etas.append(opt.eta)
        flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        gathered = [torch.zeros_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        eta_t = torch.tensor(etas, dtype=torch.float64)
        eta_all = [torch.zeros_like(eta_t) for _ in range(world)]
        dist.all_gather(eta_all, eta_t)
        results[(cls_name, sync)] = {"params": gathered, "etas": eta_all}
    if rank == 0:
        torch.save(results, out)
    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_ranks_agree_and_sync_binds_them(tmp_path):
    """DESIGN.md §7.18: KenSLS and SaLSa, 2 ranks, 30 steps: max |param diff| = 0, equal etas;
    sync_losses=False differs."""
    out = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    res = torch.load(out)
    failures = []
    for (cls_name, sync), r in res.items():
        diff = (r["params"][0] - r["params"][1]).abs().max().item()
        if sync and diff != 0.0:
            failures.append(f"DESIGN.md §7.18 {cls_name}: ranks differ by {diff}")
        if sync and not torch.equal(r["etas"][0], r["etas"][1]):
            failures.append(f"DESIGN.md §7.18 {cls_name}: eta sequences differ")
        if not sync and diff == 0.0:
            failures.append("DESIGN.md §7.18: SaLSa with sync_losses=False kept ranks identical")
    assert len(res) == 3 and not failures, "\n".join(failures)


@pytest.mark.slow
def test_torchrun_main(tmp_path):
    """Issue decision: `torchrun --nproc_per_node 2 line_search/main.py --set epochs=1 --device cpu` exits 0."""
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [str(torchrun), "--nproc_per_node", "2", "line_search/main.py", "--set", "epochs=1", "--device", "cpu"]
    cmd += ["--out", str(tmp_path / "run"), "--no_progress", "--no_plots"]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    run_dir = tmp_path / "run" / "line_search" / "main" / "digits_kensls_s42"  # --out is the results root
    assert p.stdout.strip().splitlines()[-1] == f"run dir: {run_dir}"
    assert (run_dir / "summary.json").exists()
