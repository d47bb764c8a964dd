"""Stamped cache for demo rows (common.report): a cached result is reused only for the same config and code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.report import (
    cached_note,
    code_version,
    config_digest,
    load_or_compute,
    read_stamped,
    stamp,
    write_stamped,
)


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A tiny repository with one paper folder of two modules (and a cache folder that must not count)."""
    (tmp_path / "paper" / "sub").mkdir(parents=True)
    (tmp_path / "paper" / "a.py").write_text("X = 1\n")
    (tmp_path / "paper" / "sub" / "b.py").write_text("Y = 2\n")
    (tmp_path / "paper" / "__pycache__").mkdir()
    (tmp_path / "paper" / "__pycache__" / "a.cpython-311.py").write_text("junk")
    (tmp_path / "paper" / "notes.txt").write_text("not code")
    return tmp_path


CONFIG = {"argv": ["--width", "8"], "seeds": [0, 1], "out": Path("results/x")}


def test_planted_summary_without_stamp_is_refused(repo: Path, tmp_path: Path) -> None:
    st = stamp("paper", CONFIG, root=repo)
    planted = tmp_path / "run" / "summary.json"
    planted.parent.mkdir()
    planted.write_text(json.dumps({"r": 0.99}))
    assert read_stamped(planted, st) is None, "a bare summary.json is never trusted"
    planted.write_text(json.dumps({"summary": {"r": 0.99}, "stamp": {"paper": "paper"}}))
    assert read_stamped(planted, st) is None, "a stamp without digests is refused"
    forged = dict(st, config_sha256=config_digest({**CONFIG, "seeds": [0]}))
    write_stamped(planted, {"r": 0.99}, forged)
    assert read_stamped(planted, st) is None, "a result of another configuration is refused"
    write_stamped(planted, {"r": 0.99}, dict(st, paper="other"))
    assert read_stamped(planted, st) is None, "a result of another paper is refused"
    planted.write_text("{not json")
    assert read_stamped(planted, st) is None
    assert read_stamped(tmp_path / "missing.json", st) is None
    planted.write_text(json.dumps({"summary": [1], "stamp": st}))
    assert read_stamped(planted, st) is None


def test_matching_stamp_is_read_with_provenance(repo: Path, tmp_path: Path) -> None:
    st = stamp("paper", CONFIG, root=repo)
    assert set(st) >= {"paper", "config_sha256", "code_sha256", "commit", "date", "config"}
    assert st["commit"] == "unknown", "the tmp folder is no git repository"
    path = write_stamped(tmp_path / "run" / "stamped_summary.json", {"r": 0.84, "n": 28}, st)
    again = stamp("paper", {"out": Path("results/x"), "seeds": [0, 1], "argv": ["--width", "8"]}, root=repo)
    assert again["config_sha256"] == st["config_sha256"], "key order does not matter"
    hit = read_stamped(path, again)
    assert hit is not None
    summary, provenance = hit
    assert summary == {"r": 0.84, "n": 28}
    assert provenance["date"] == st["date"] and provenance["commit"] == "unknown"
    assert cached_note(provenance) == f"cached from {st['date'][:10]}, unknown"
    assert cached_note({"date": "2026-12-06T13:00:00+00:00", "commit": "3f22a53"}) == "cached from 2026-12-06, 3f22a53"


def test_code_change_invalidates(repo: Path, tmp_path: Path) -> None:
    st = stamp("paper", CONFIG, root=repo)
    path = write_stamped(tmp_path / "s.json", {"r": 0.5}, st)
    (repo / "paper" / "__pycache__" / "a.cpython-311.py").write_text("other junk")
    (repo / "paper" / "notes.txt").write_text("edited notes")
    assert read_stamped(path, stamp("paper", CONFIG, root=repo)) is not None, "only .py sources count"
    (repo / "paper" / "sub" / "b.py").write_text("Y = 3\n")
    assert read_stamped(path, stamp("paper", CONFIG, root=repo)) is None, "an edited module invalidates"
    (repo / "paper" / "sub" / "b.py").write_text("Y = 2\n")
    assert read_stamped(path, stamp("paper", CONFIG, root=repo)) is not None, "the same code matches again"
    (repo / "paper" / "c.py").write_text("")
    assert read_stamped(path, stamp("paper", CONFIG, root=repo)) is None, "a new module invalidates"
    (repo / "paper" / "c.py").unlink()
    (repo / "paper" / "a.py").rename(repo / "paper" / "a2.py")
    assert read_stamped(path, stamp("paper", CONFIG, root=repo)) is None, "a renamed module invalidates"


def test_code_version_covers_the_named_folders(repo: Path) -> None:
    (repo / "common").mkdir()
    (repo / "common" / "x.py").write_text("Z = 0\n")
    only_paper = code_version(["paper"], repo)
    with_common = code_version(["paper", "common"], repo)
    assert only_paper != with_common
    (repo / "common" / "x.py").write_text("Z = 1\n")
    assert code_version(["paper"], repo) == only_paper and code_version(["paper", "common"], repo) != with_common
    st = stamp("paper", {}, code_dirs=["paper", "common"], root=repo)
    assert st["code_sha256"] == code_version(["paper", "common"], repo)


def test_stamp_of_this_repository_has_a_commit() -> None:
    st = stamp("hp_scaling", {"a": 1})
    assert st["commit"] != "" and len(st["code_sha256"]) == 64


def test_load_or_compute(repo: Path, tmp_path: Path) -> None:
    st = stamp("paper", CONFIG, root=repo)
    calls: list[int] = []

    def compute() -> dict:
        calls.append(1)
        return {"acc": 0.9}

    path = tmp_path / "cache" / "stamped_summary.json"
    assert load_or_compute(path, st, compute, allow_compute=False) == (
        None,
        "not run (no cached result for this configuration and code)",
    )
    assert load_or_compute(path, st, compute) == ({"acc": 0.9}, "computed now")
    summary, note = load_or_compute(path, st, compute)
    assert summary == {"acc": 0.9} and note.startswith("cached from ") and len(calls) == 1
    other = stamp("paper", {**CONFIG, "seeds": [0]}, root=repo)
    assert load_or_compute(path, other, compute)[1] == "computed now" and len(calls) == 2
