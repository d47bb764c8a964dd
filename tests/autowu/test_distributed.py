"""DESIGN.md §7.13: two gloo processes agree through the rank-0 broadcast; errors are collective."""

from __future__ import annotations

import json
import math
import os
import socket
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

pytestmark = pytest.mark.slow
S, E = 10, 20  # short bowl: T = 200, W = 100, tests at 10..90


def _worker(rank, port, out_dir, mode):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    from autowu import AutoWU

    count = {"n": 0}
    orig = dist.broadcast

    def counting(*a, **k):
        count["n"] += 1
        return orig(*a, **k)

    dist.broadcast = counting
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = AutoWU(opt, S, E, reduce_loss=mode == "reduce")
    if mode == "error" and rank == 0:

        def boom(y, valid):
            raise RuntimeError("injected failure")

        sched._test = boom
    g = torch.Generator().manual_seed(10 + rank)
    lrs, losses, err = [], [], None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(S * E):
                lr = opt.param_groups[0]["lr"]
                lrs.append(lr)
                loss = 2 + 0.3 * (math.log10(max(lr, 1e-12)) + 2) ** 2 + 0.05 * float(torch.randn((), generator=g))
                loss += 0.5 * rank
                losses.append(loss)
                sched.step(torch.tensor(loss, dtype=torch.float64))
    except RuntimeError as exc:
        err = str(exc)
    res = {
        "lrs": lrs,
        "losses": losses,
        "switch_step": sched.switch_step,
        "switch_lr": sched.switch_lr,
        "broadcasts": count["n"],
        "tests_rank0": len(sched.test_log),
        "history": sched.history.tolist(),
        "error": err,
    }
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as fh:
        json.dump(res, fh)
    dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(tmp_path, mode):
    ctx = mp.start_processes(
        _worker, args=(_free_port(), str(tmp_path), mode), nprocs=2, join=False, start_method="spawn"
    )
    for p in ctx.processes:
        p.join(timeout=120)
    alive = [p for p in ctx.processes if p.is_alive()]
    for p in alive:
        p.kill()
    assert not alive, "DESIGN.md §7.13: a rank hung"
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.parametrize("mode", ["plain", "reduce"])
def test_ranks_agree(tmp_path, mode):
    r0, r1 = _spawn(tmp_path, mode)
    assert r0["switch_step"] is not None
    assert r0["switch_step"] == r1["switch_step"] and r0["switch_lr"] == r1["switch_lr"], "DESIGN.md §7.13: same switch"
    assert r0["lrs"] == r1["lrs"], "DESIGN.md §7.13: identical LR traces on both ranks"
    assert r0["broadcasts"] == r0["tests_rank0"] == r1["broadcasts"], "DESIGN.md §7.13: exactly one broadcast per test"
    if mode == "reduce":
        n = len(r0["history"])
        mean = [(a + b) / 2 for a, b in zip(r0["losses"][:n], r1["losses"][:n])]
        assert all(abs(h - m) <= 1e-12 * abs(m) for h, m in zip(r0["history"], mean)), "DESIGN.md §7.13: history = mean"


def test_error_on_rank0_is_collective(tmp_path):
    r0, r1 = _spawn(tmp_path, "error")
    assert r0["error"] and r1["error"], "DESIGN.md §7.13: both ranks raise RuntimeError"
    assert r0["switch_step"] is None and r1["switch_step"] is None
