"""common.checkpoint: atomic writes, RNG snapshots that replay bit-exactly."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from common.checkpoint import CHECKPOINT_VERSION, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from common.cli import MissingInputError


def test_round_trip_keeps_version_and_values(tmp_path: Path) -> None:
    state = {"step": 3, "weights": torch.arange(4.0), "nested": {"a": [1, 2.5, "x", None, True]}}
    path = save_checkpoint(tmp_path / "deep" / "ck.pt", state)
    assert path == tmp_path / "deep" / "ck.pt" and path.is_file()
    loaded = load_checkpoint(path)
    assert loaded["version"] == CHECKPOINT_VERSION == 1
    assert loaded["step"] == 3 and loaded["nested"] == {"a": [1, 2.5, "x", None, True]}
    assert torch.equal(loaded["weights"], torch.arange(4.0))
    assert sorted(p.name for p in path.parent.iterdir()) == ["ck.pt"], "no temporary file left behind"


def test_missing_checkpoint_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(MissingInputError, match=r"checkpoint not found: .*nope\.pt"):
        load_checkpoint(tmp_path / "nope.pt")


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "ck.pt", {"step": 1})

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        save_checkpoint(path, {"step": 2, "bad": Unpicklable()})
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]


def test_rng_state_replays_python_numpy_and_torch(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    path = save_checkpoint(tmp_path / "rng.pt", {"rng": rng_state()})
    expected = (random.random(), np.random.rand(), torch.rand(3))
    random.seed(10)
    np.random.seed(20)
    torch.manual_seed(30)
    set_rng_state(load_checkpoint(path)["rng"])
    got = (random.random(), np.random.rand(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])
