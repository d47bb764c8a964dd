"""common.checkpoint: atomic writes, plain data only (a crafted file runs nothing), RNG snapshots that replay."""

from __future__ import annotations

import argparse
import collections
import os
import pickle
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from common.checkpoint import CHECKPOINT_VERSION, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from common.cli import MissingInputError, UsageError


def test_round_trip_keeps_version_and_values(tmp_path: Path) -> None:
    state = {"step": 3, "weights": torch.arange(4.0), "nested": {"a": [1, 2.5, "x", None, True]}}
    path = save_checkpoint(tmp_path / "deep" / "er" / "ck.pt", state)
    assert path == tmp_path / "deep" / "er" / "ck.pt" and path.is_file()
    loaded = load_checkpoint(path)
    assert loaded["version"] == CHECKPOINT_VERSION == 1
    assert loaded["step"] == 3 and loaded["nested"] == {"a": [1, 2.5, "x", None, True]}
    assert torch.equal(loaded["weights"], torch.arange(4.0))
    assert sorted(p.name for p in path.parent.iterdir()) == ["ck.pt"], "no temporary file left behind"


def test_missing_checkpoint_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(MissingInputError, match=r"checkpoint not found: .*nope\.pt"):
        load_checkpoint(tmp_path / "nope.pt")


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_checkpoint(tmp_path / "ck.pt", {"step": 1})

    seen: list[list[str]] = []

    def crash(obj, handle) -> None:
        handle.write(b"half a file")
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert len(seen) == 1 and len(seen[0]) == 2 and seen[0][1] == "ck.pt"
    assert re.fullmatch(r"\.ck\.pt\..+\.tmp", seen[0][0]), f"temporary file beside the target: {seen[0][0]}"
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]


def test_interrupt_right_after_the_rename_keeps_the_new_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupt between os.replace and the end of the write surfaces as itself, not as a cleanup error."""
    real_replace = os.replace

    def replace_then_interrupt(src, dst) -> None:
        real_replace(src, dst)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "ck.pt", {"step": 5})
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "ck.pt")["step"] == 5 and [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


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


class _Payload:
    """Unpickling this runs code: it writes a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_crafted_file_is_refused_and_runs_nothing(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pt"
    payload = {"version": 1, "step": 1, "model": _Payload(marker)}
    if writer == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(UsageError) as info:
        load_checkpoint(path)
    asks = " (it asks for builtins.getattr, pathlib.Path, pathlib.PosixPath)" if writer == "torch" else ""
    assert str(info.value) == (
        f"refusing to load checkpoint {path}: it holds more than plain data and tensors{asks}, and loading that "
        "could run code; write it again with common.checkpoint.save_checkpoint"
    ), "one line, naming the file (and, where torch can list them, what it asks for)"
    assert not marker.exists(), "nothing in the file may run"


def test_saving_anything_but_plain_data_is_rejected_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "ck.pt"
    with pytest.raises(TypeError, match=r"cannot store argparse.Namespace at state\['opts'\]\['args'\]\[1\]"):
        save_checkpoint(path, {"opts": {"args": [1, argparse.Namespace(a=1)]}})
    with pytest.raises(TypeError, match=r"numpy array of Python objects at state\['x'\]"):
        save_checkpoint(path, {"x": np.array([object()])})
    with pytest.raises(TypeError, match=r"cannot store a \w*Path key at state"):
        save_checkpoint(path, {Path("a"): 1})
    with pytest.raises(TypeError) as info:
        save_checkpoint(path, {"p": Path("a")})
    assert str(info.value) == (
        f"cannot store pathlib.{type(Path('a')).__name__} at state['p']: a checkpoint holds only plain data (dict, "
        "list, tuple, set, str, bytes, numbers, bool, None), tensors and numeric numpy arrays"
    )
    assert not path.exists() and not list(tmp_path.iterdir()), "nothing written"


def test_numpy_and_torch_values_round_trip_exactly(tmp_path: Path) -> None:
    state = {
        "arr": np.arange(6, dtype=np.uint32).reshape(2, 3),
        "f16": np.array([1.5, -2.25], dtype=np.float16),
        "empty": np.zeros((0, 2)),
        "zero_d": np.array(3.5),
        "no_bytes": b"",
        "scalar": np.float64(0.1),
        "iscalar": np.int32(-7),
        "history": [{"loss": np.float32(0.25), "step": 3}],
        "od": collections.OrderedDict([("b", 1), ("a", (2, {3}))]),
        "meta": (torch.float16, torch.device("cpu"), torch.Size([2, 3]), 1 + 2j, b"raw", None, True, 2**80),
        "param": torch.nn.Parameter(torch.ones(2)),
        "int_keys": {0: {"step": torch.tensor(4.0)}, 1: "x"},
        "tagged_like": {"data": b"x", "dtype": "<f8"},
    }
    loaded = load_checkpoint(save_checkpoint(tmp_path / "np.pt", state))
    for key in ("arr", "f16", "empty", "zero_d"):
        assert type(loaded[key]) is np.ndarray and loaded[key].dtype == state[key].dtype
        assert np.array_equal(loaded[key], state[key]) and loaded[key].shape == state[key].shape
        assert loaded[key].flags.writeable
    assert type(loaded["scalar"]) is np.float64 and loaded["scalar"] == np.float64(0.1)
    assert type(loaded["iscalar"]) is np.int32 and loaded["iscalar"] == -7
    assert type(loaded["history"][0]["loss"]) is np.float32 and loaded["history"][0]["loss"] == 0.25
    assert type(loaded["od"]) is collections.OrderedDict and list(loaded["od"].items()) == [("b", 1), ("a", (2, {3}))]
    assert loaded["meta"] == state["meta"] and type(loaded["meta"][2]) is torch.Size
    assert isinstance(loaded["param"], torch.nn.Parameter) and torch.equal(loaded["param"], state["param"])
    assert torch.equal(loaded["int_keys"][0]["step"], torch.tensor(4.0)) and loaded["int_keys"][1] == "x"
    assert loaded["tagged_like"] == {"data": b"x", "dtype": "<f8"} and loaded["no_bytes"] == b""
    raw = torch.load(tmp_path / "np.pt", weights_only=True)  # on disk: tensors of bytes, no numpy object
    assert raw["arr"]["data"].dtype == torch.uint8 and raw["arr"]["data"].numel() == 6 * 4
    assert raw["no_bytes"]["data"].dtype == torch.uint8 and raw["no_bytes"]["data"].numel() == 0
    assert raw["tagged_like"] == {
        "data": {"__checkpoint_numpy__": "bytes", "data": torch.tensor([120], dtype=torch.uint8)},
        "dtype": "<f8",
    }


def test_checkpoint_of_the_previous_encoding_still_loads_and_replays(tmp_path: Path) -> None:
    """Before the plain-data rule numpy's RNG state was a pickled array (the only extra type allowed)."""
    random.seed(4)
    np.random.seed(5)
    torch.manual_seed(6)
    old_rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    path = tmp_path / "v1.pt"
    torch.save({"version": 1, "step": 9, "rng": old_rng, "w": np.ones(2), "s": np.float32(0.5)}, path)
    expected = (random.random(), np.random.rand(), torch.rand(2))
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    loaded = load_checkpoint(path)
    assert loaded["version"] == 1 and loaded["step"] == 9 and np.array_equal(loaded["w"], np.ones(2))
    assert type(loaded["s"]) is np.float32 and loaded["s"] == 0.5
    set_rng_state(loaded["rng"])
    got = (random.random(), np.random.rand(), torch.rand(2))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


def test_rng_state_is_plain_data() -> None:
    state = rng_state()
    assert set(state) >= {"python", "numpy", "torch"}
    assert isinstance(state["numpy"]["key"], torch.Tensor) and state["numpy"]["key"].dtype == torch.int64
    assert state["numpy"]["bit_generator"] == "MT19937" and state["numpy"]["key"].shape == (624,)
    assert state["numpy"]["key"].max() >= 2**31, "uint32 words above 2**31 survive the int64 tensor"
    np.random.seed(1)
    np.random.standard_normal()  # leaves a cached gaussian
    s = rng_state()
    assert s["numpy"]["has_gauss"] == 1 and s["numpy"]["gauss"] != 0.0
    after = np.random.standard_normal()
    np.random.seed(2)
    set_rng_state(s)
    assert np.random.standard_normal() == after, "the cached gaussian is restored"
    assert np.random.get_state()[2] == s["numpy"]["pos"]


@pytest.mark.parametrize(
    ("content", "error"), [(b"", "EOFError"), (b"PK\x03\x04truncated zip", "RuntimeError")], ids=["empty", "zip"]
)
def test_unreadable_file_is_one_line_naming_it(tmp_path: Path, content: bytes, error: str) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(UsageError) as info:
        load_checkpoint(path)
    assert str(info.value) == f"checkpoint {path} cannot be read: empty, truncated or not a torch checkpoint ({error})"


def test_a_file_that_is_no_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "text.pt"
    path.write_text("not a checkpoint at all")
    with pytest.raises(UsageError, match=r"refusing to load checkpoint .*text\.pt: it holds more than plain data"):
        load_checkpoint(path)


def test_cuda_generators_are_saved_and_restored_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [torch.tensor([1, 2], dtype=torch.uint8)])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", calls.append)
    state = rng_state()
    assert [t.tolist() for t in state["cuda"]] == [[1, 2]]
    set_rng_state(state)
    assert len(calls) == 1 and calls[0] is state["cuda"]
    set_rng_state({k: v for k, v in state.items() if k != "cuda"})
    assert len(calls) == 1, "no CUDA state saved: nothing to restore"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    set_rng_state(state)
    assert len(calls) == 1, "CUDA state is ignored where CUDA is not available"
    assert "cuda" not in rng_state()


def test_old_encoding_with_python_objects_in_an_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "objects.pt"
    torch.save({"version": 1, "a": np.array([1, "a"], dtype=object)}, path)
    with pytest.raises(UsageError, match=r"refusing to load checkpoint .*objects\.pt"):
        load_checkpoint(path)


def test_a_file_that_is_not_a_dict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([1, 2], path)
    with pytest.raises(UsageError, match=r"checkpoint .*list\.pt holds a list, not a dict"):
        load_checkpoint(path)


def test_map_location_is_passed(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", {"t": torch.ones(1)})
    assert load_checkpoint(path, map_location="meta")["t"].is_meta
