"""common.distributed under real launchers: torchrun (2 gloo processes) and mpirun (a propulate search)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from common.distributed import all_reduce_mean, broadcast_from_rank0, mpi_rank, mpi_size, torchrun_env

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


def test_single_process_helpers_are_identities() -> None:
    import torch

    assert torchrun_env().world_size in (1,) or torchrun_env().world_size > 1
    t = torch.tensor([3.0])
    assert all_reduce_mean(t).item() == 3.0 and broadcast_from_rank0({"x": 1}) == {"x": 1}
    assert mpi_rank() == 0 and mpi_size() == 1


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
