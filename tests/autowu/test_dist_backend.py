"""train.py's --dist-backend reaches the process group (DESIGN.md §4): common.distributed.init_distributed(backend=)."""

from __future__ import annotations

import pytest
import torch.distributed as dist

from common import distributed


@pytest.mark.parametrize(
    ("device", "backend", "expected"),
    [("cpu", None, "gloo"), ("cpu", "gloo", "gloo"), ("cpu", "nccl", "nccl"), ("meta", None, "gloo")],
)
def test_init_distributed_uses_the_requested_backend(monkeypatch, device, backend, expected):
    seen = {}
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: seen.update(kw))
    env = distributed.init_distributed(device, backend=backend)
    assert seen == {"backend": expected, "rank": 1, "world_size": 2}
    assert (env.rank, env.local_rank, env.world_size) == (1, 1, 2)


def test_single_process_never_initialises(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: pytest.fail("no group for one process"))
    assert distributed.init_distributed("cpu", backend="gloo").world_size == 1
