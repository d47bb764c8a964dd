"""Process-group helpers for torchrun (gloo on CPU, nccl on GPU) and rank helpers for mpirun (mpi4py).

Every helper degrades to the single-process case: world size 1, rank 0, all-reduce and broadcast are identities.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "DistEnv",
    "torchrun_env",
    "init_distributed",
    "is_primary",
    "all_reduce_mean",
    "broadcast_from_rank0",
    "barrier",
    "cleanup",
    "mpi_comm",
    "mpi_rank",
    "mpi_size",
]


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def torchrun_env() -> DistEnv:
    """RANK, LOCAL_RANK and WORLD_SIZE as set by torchrun (defaults for a plain single process)."""
    return DistEnv(
        int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    )


def init_distributed(device: str | torch.device = "cpu", backend: str | None = None) -> DistEnv:
    """Join the torchrun process group (nccl for CUDA devices, gloo otherwise); no-op for world size 1.

    On CUDA each process takes ``cuda:LOCAL_RANK``. ``backend`` ("nccl" or "gloo") overrides the automatic choice;
    gloo on CUDA devices is legitimate (collectives then run on CPU tensors or through gloo's CUDA support).
    """
    env = torchrun_env()
    if not env.distributed or dist.is_initialized():
        return env
    is_cuda = torch.device(device).type == "cuda"
    if is_cuda:
        torch.cuda.set_device(env.local_rank)
    if backend is None:
        backend = "nccl" if is_cuda else "gloo"
    dist.init_process_group(backend=backend, rank=env.rank, world_size=env.world_size)
    return env


def is_primary() -> bool:
    """True on global rank 0 (or when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return torchrun_env().rank == 0 and mpi_rank() == 0


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """In-place mean of ``tensor`` over all ranks; returns it.

    Floating (or complex) tensors only, on one process as on many: an integer mean cannot be stored in place.
    """
    if not (tensor.is_floating_point() or tensor.is_complex()):
        raise TypeError(f"all_reduce_mean needs a floating-point tensor, got {tensor.dtype}")
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= dist.get_world_size()
    return tensor


def broadcast_from_rank0(obj: Any) -> Any:
    """Rank 0's tensor (in place) or picklable object on every rank."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return obj
    if isinstance(obj, torch.Tensor):
        dist.broadcast(obj, src=0)
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _launched_by_mpi() -> bool:
    return any(v in os.environ for v in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"))


def mpi_comm() -> Any:
    """MPI.COMM_WORLD (mpi4py is imported lazily, so non-MPI code never initialises MPI)."""
    from mpi4py import MPI

    return MPI.COMM_WORLD


def mpi_rank() -> int:
    """This process's MPI rank (0 when not launched by mpirun)."""
    if not _launched_by_mpi():
        return 0
    return mpi_comm().Get_rank()


def mpi_size() -> int:
    """Number of MPI ranks (1 when not launched by mpirun)."""
    if not _launched_by_mpi():
        return 1
    return mpi_comm().Get_size()
