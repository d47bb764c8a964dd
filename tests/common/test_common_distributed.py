"""common.distributed: fast tests on a 2-process gloo group (this process is rank 0, a child process rank 1),
the single-process fallbacks, and the real launchers (torchrun, mpirun; marked mpi)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import common
import common.distributed as cd
from common.distributed import (
    DistEnv,
    all_reduce_mean,
    barrier,
    broadcast_from_rank0,
    cleanup,
    init_distributed,
    is_primary,
    mpi_rank,
    mpi_size,
    torchrun_env,
)

DIST_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
MPI_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK")

# The same sequence of collectives runs on both ranks; each rank reports what it saw. A watchdog ends the child
# if the parent stops answering (a broken helper), so a failing test never leaves a process behind.
PAIR_STEPS = """
import json, os, sys, threading
import torch
import torch.distributed as dist
from common.distributed import (all_reduce_mean, barrier, broadcast_from_rank0, cleanup, init_distributed,
                                is_primary)

def steps():
    env = init_distributed("cpu")
    again = init_distributed("cpu")
    out = {"env": [env.rank, env.local_rank, env.world_size], "again": again == env,
           "backend": dist.get_backend(), "world": dist.get_world_size(), "primary": is_primary()}
    t = torch.tensor([float(env.rank + 1), 10.0 * (env.rank + 1)])
    r = all_reduce_mean(t)
    out["mean"], out["mean_in_place"] = r.tolist(), r is t
    h = torch.tensor([float(env.rank)], dtype=torch.float64)
    out["f64_mean"] = all_reduce_mean(h).tolist()
    b = torch.tensor([100.0 + env.rank, -float(env.rank)])
    rb = broadcast_from_rank0(b)
    out["bcast"], out["bcast_in_place"] = rb.tolist(), rb is b
    out["obj"] = broadcast_from_rank0({"from": env.rank, "items": [env.rank] * 2})
    barrier()
    cleanup()
    out["after_cleanup"] = dist.is_initialized()
    return out
"""

CHILD = (
    PAIR_STEPS
    + """
threading.Timer(60.0, lambda: os._exit(3)).start()
print(json.dumps(steps()), flush=True)
os._exit(0)
"""
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in DIST_VARS + MPI_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_two_process_gloo_group_mean_broadcast_and_ranks(clean_env: pytest.MonkeyPatch) -> None:
    """all_reduce_mean divides by the world size, broadcast carries rank 0's data, rank 1 is not primary."""
    port = str(_free_port())
    base = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "WORLD_SIZE": "2"}
    src = str(Path(common.__file__).resolve().parent.parent)  # the child imports the same copy of common
    child_env = {**os.environ, **base, "RANK": "1", "LOCAL_RANK": "1", "OMP_NUM_THREADS": "1"}
    child_env["PYTHONPATH"] = os.pathsep.join([src, child_env.get("PYTHONPATH", "")])
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        for key, value in {**base, "RANK": "0", "LOCAL_RANK": "0"}.items():
            clean_env.setenv(key, value)
        scope: dict = {}
        exec(PAIR_STEPS, scope)  # noqa: S102 - the very steps the child runs
        try:
            parent = scope["steps"]()
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()
        out, err = child.communicate(timeout=90)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err[-2000:]
    rows = [parent, json.loads(out.strip().splitlines()[-1])]
    assert [r["env"] for r in rows] == [[0, 0, 2], [1, 1, 2]]
    assert all(r["again"] and r["backend"] == "gloo" and r["world"] == 2 for r in rows)
    assert [r["primary"] for r in rows] == [True, False]
    assert all(r["mean"] == [1.5, 15.0] and r["mean_in_place"] for r in rows), "mean of (1, 10) and (2, 20)"
    assert all(r["f64_mean"] == [0.5] for r in rows)
    assert all(r["bcast"] == [100.0, 0.0] and r["bcast_in_place"] for r in rows), "rank 0's tensor everywhere"
    assert all(r["obj"] == {"from": 0, "items": [0, 0]} for r in rows), "rank 0's object everywhere"
    assert not any(r["after_cleanup"] for r in rows)


def test_torchrun_env_reads_the_launcher_variables(clean_env: pytest.MonkeyPatch) -> None:
    assert torchrun_env() == DistEnv(0, 0, 1) and not torchrun_env().distributed
    clean_env.setenv("RANK", "3")
    clean_env.setenv("LOCAL_RANK", "1")
    clean_env.setenv("WORLD_SIZE", "4")
    env = torchrun_env()
    assert (env.rank, env.local_rank, env.world_size) == (3, 1, 4) and env.distributed
    assert DistEnv(world_size=2).distributed and not DistEnv(world_size=1).distributed
    assert DistEnv() == DistEnv(0, 0, 1)


def test_single_process_helpers_do_nothing(clean_env: pytest.MonkeyPatch) -> None:
    assert init_distributed("cpu") == DistEnv(0, 0, 1) and not dist.is_initialized()
    clean_env.setenv("WORLD_SIZE", "1")
    clean_env.setenv("RANK", "0")
    assert init_distributed("cpu") == DistEnv(0, 0, 1) and not dist.is_initialized()
    t = torch.tensor([3.0, 5.0])
    assert all_reduce_mean(t) is t and t.tolist() == [3.0, 5.0]
    with pytest.raises(TypeError, match="floating-point tensor, got torch.int64"):
        all_reduce_mean(torch.tensor([1, 2]))
    assert all_reduce_mean(torch.tensor([1j])).tolist() == [1j]
    assert broadcast_from_rank0(t) is t and t.tolist() == [3.0, 5.0]
    box = {"x": 1}
    assert broadcast_from_rank0(box) is box
    assert barrier() is None and cleanup() is None and not dist.is_initialized()
    assert is_primary() and mpi_rank() == 0 and mpi_size() == 1


def test_is_primary_without_a_group_follows_rank_variables(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("RANK", "1")
    assert not is_primary()
    clean_env.setenv("RANK", "0")
    assert is_primary()
    clean_env.setattr(cd, "mpi_comm", lambda: _FakeComm(rank=2, size=3))
    clean_env.setenv("OMPI_COMM_WORLD_SIZE", "3")
    assert not is_primary(), "an MPI rank other than 0 is not primary"


class _FakeComm:
    def __init__(self, rank: int, size: int) -> None:
        self.rank, self.size = rank, size

    def Get_rank(self) -> int:  # noqa: N802 - mpi4py's spelling
        return self.rank

    def Get_size(self) -> int:  # noqa: N802
        return self.size


@pytest.mark.parametrize("var", MPI_VARS)
def test_mpi_rank_and_size_under_each_launcher_variable(clean_env: pytest.MonkeyPatch, var: str) -> None:
    clean_env.setattr(cd, "mpi_comm", lambda: _FakeComm(rank=2, size=5))
    assert (mpi_rank(), mpi_size()) == (0, 1), "no launcher variable: MPI is never touched"
    clean_env.setenv(var, "5")
    assert (mpi_rank(), mpi_size()) == (2, 5)


def test_init_on_cuda_picks_nccl_and_the_local_device(clean_env: pytest.MonkeyPatch) -> None:
    calls: dict = {}
    clean_env.setattr(torch.cuda, "set_device", lambda i: calls.setdefault("device", i))
    clean_env.setattr(cd.dist, "is_initialized", lambda: False)
    clean_env.setattr(cd.dist, "init_process_group", lambda **kw: calls.setdefault("init", kw))
    for key, value in {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"}.items():
        clean_env.setenv(key, value)
    assert init_distributed("cuda") == DistEnv(3, 1, 4)
    assert calls == {"device": 1, "init": {"backend": "nccl", "rank": 3, "world_size": 4}}
    calls.clear()
    assert init_distributed(torch.device("cpu")) == DistEnv(3, 1, 4)
    assert calls == {"init": {"backend": "gloo", "rank": 3, "world_size": 4}}, "no CUDA device set on the CPU"
    calls.clear()
    assert init_distributed() == DistEnv(3, 1, 4) and calls == {"init": {"backend": "gloo", "rank": 3, "world_size": 4}}
    calls.clear()
    init_distributed("cuda:0", backend="gloo")
    assert calls == {"device": 1, "init": {"backend": "gloo", "rank": 3, "world_size": 4}}, "gloo on CUDA is allowed"


TORCHRUN_WORKER = """
import json, sys, torch
from common.distributed import init_distributed, all_reduce_mean, broadcast_from_rank0, is_primary, cleanup
env = init_distributed("cpu")
t = torch.tensor([float(env.rank + 1)])
mean = all_reduce_mean(t.clone()).item()
b = broadcast_from_rank0(torch.tensor([100.0 + env.rank])).item()
obj = broadcast_from_rank0({"from": env.rank})
row = {"rank": env.rank, "world": env.world_size, "mean": mean, "bcast": b, "obj": obj["from"], "primary": is_primary()}
open(f"{sys.argv[1]}/rank{env.rank}.json", "w").write(json.dumps(row))
cleanup()
"""

PROPULATE_WORKER = """
import json, random, sys
from pathlib import Path
import propulate
from propulate.utils import get_default_propagator
from common.distributed import mpi_comm, mpi_rank, mpi_size

def sphere(params):
    return sum(v * v for v in params.values())

comm = mpi_comm()
rng = random.Random(42 + comm.rank)
limits = {"a": (-5.0, 5.0), "b": (-5.0, 5.0)}
prop = get_default_propagator(pop_size=4, limits=limits, rng=rng)
ckpt = Path(sys.argv[1])
propulator = propulate.Propulator(loss_fn=sphere, propagator=prop, rng=rng, island_comm=comm, generations=15,
                                  checkpoint_path=ckpt)
propulator.propulate()
best = propulator.summarize(top_n=1, debug=0)
comm.barrier()
if mpi_rank() == 0:
    best_loss = float(best[0][0].loss) if isinstance(best[0], list) else float(best[0].loss)
    print(json.dumps({"size": mpi_size(), "best": best_loss}), flush=True)
"""


@pytest.mark.mpi
def test_torchrun_two_gloo_processes(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(TORCHRUN_WORKER)
    torchrun = Path(sys.executable).parent / "torchrun"
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in rows] == [0, 1] and all(r["world"] == 2 for r in rows)
    assert all(r["mean"] == 1.5 for r in rows), "all-reduce mean of 1 and 2"
    assert all(r["bcast"] == 100.0 and r["obj"] == 0 for r in rows), "broadcast must carry rank 0's values"
    assert [r["primary"] for r in rows] == [True, False]


@pytest.mark.mpi
def test_mpirun_two_ranks_propulate_sphere(tmp_path: Path, mpirun: list[str]) -> None:
    script = tmp_path / "search.py"
    script.write_text(PROPULATE_WORKER)
    proc = subprocess.run(
        [*mpirun, "-n", "2", sys.executable, str(script), str(tmp_path / "ckpt")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, (proc.stdout[-1500:], proc.stderr[-1500:])
    result = json.loads([line for line in proc.stdout.splitlines() if line.startswith('{"size"')][-1])
    assert result["size"] == 2
    # 2 ranks x 15 generations on a 2-D sphere (f in [0, 50]): the best point must be far below a random draw
    assert result["best"] < 2.0, result
