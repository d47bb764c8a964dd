"""Stamped cache for demo rows (common.report): a cached result is reused only for the same config and code."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from common.report import (
    REPO_ROOT,
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


def test_config_digest_is_sha256_of_canonical_json() -> None:
    config = {"b": Path("x/y"), "a": [1, 2.5], "n": float("nan")}
    canonical = '{"a":[1,2.5],"b":"x/y","n":NaN}'
    assert config_digest(config) == hashlib.sha256(canonical.encode()).hexdigest()


def test_code_version_matches_an_independent_computation(repo: Path) -> None:
    (repo / "paper" / "a").mkdir()
    (repo / "paper" / "a" / "z.py").write_text("Z = 1\n")
    expected = hashlib.sha256()
    for rel in ["paper/a.py", "paper/a/z.py", "paper/sub/b.py"]:  # posix path order: "." sorts before "/"
        expected.update(rel.encode() + b"\0")
        expected.update(hashlib.sha256((repo / rel).read_bytes()).digest())
    assert code_version(["paper"], repo) == expected.hexdigest()


def test_cached_note_without_provenance() -> None:
    assert cached_note({}) == "cached from unknown date, unknown commit"


def test_stamp_holds_the_config_dirs_and_a_utc_date(repo: Path) -> None:
    st = stamp("paper", {"p": Path("a/b"), "k": [1, 2]}, root=repo)
    assert st["paper"] == "paper" and st["code_dirs"] == ["paper"] and st["config"] == {"p": "a/b", "k": [1, 2]}
    assert st["date"].endswith("+00:00") and "T" in st["date"]
    assert st["code_sha256"] == code_version(["paper"], repo)


def test_a_stamp_that_is_no_dict_is_refused(tmp_path: Path, repo: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"stamp": "forged", "summary": {"r": 1}}))
    assert read_stamped(path, stamp("paper", {}, root=repo)) is None


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def test_commit_is_git_short_hash_and_dirty_mark(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "f.py").write_text("A = 1\n")
    _git(repo, "add", "f.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = _git(repo, "rev-parse", "--short", "HEAD")
    assert stamp("r", {}, code_dirs=[], root=repo)["commit"] == head
    (repo / "new.py").write_text("")
    assert stamp("r", {}, code_dirs=[], root=repo)["commit"] == head, "untracked files do not make it dirty"
    (repo / "f.py").write_text("A = 2\n")
    assert stamp("r", {}, code_dirs=[], root=repo)["commit"] == head + "+dirty"
    assert stamp("hp_scaling", {})["commit"].startswith(_git(REPO_ROOT, "rev-parse", "--short", "HEAD"))
    monkeypatch.setenv("PATH", "")
    assert stamp("r", {}, code_dirs=[], root=repo)["commit"] == "unknown", "no git executable"


def test_write_stamped_is_readable_json_in_new_folders(tmp_path: Path, repo: Path) -> None:
    st = {"paper": "p", "config_sha256": "c", "code_sha256": "k"}
    path = write_stamped(tmp_path / "a" / "b" / "s.json", {"run": Path("r/x"), "r": 0.5}, st)
    expected = {"stamp": st, "summary": {"run": "r/x", "r": 0.5}}
    assert path.read_text() == json.dumps(expected, indent=2) + "\n"
    assert [p.name for p in path.parent.iterdir()] == ["s.json"] and path.stat().st_mode & 0o777 == 0o644


def test_atomic_write_cleans_up_and_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import re

    from common.report import _write_atomic

    path = _write_atomic(tmp_path / "f.json", "old")
    real_replace = os.replace
    seen: list[str] = []

    def failing_replace(src, dst) -> None:
        seen.append(str(Path(src).relative_to(tmp_path)))
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        _write_atomic(path, "new")
    assert len(seen) == 1 and re.fullmatch(r"\.f\.json\..+\.tmp", seen[0]), seen
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.json"]

    def replace_then_interrupt(src, dst) -> None:
        real_replace(src, dst)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        _write_atomic(path, "newer")
    assert path.read_text() == "newer" and [p.name for p in tmp_path.iterdir()] == ["f.json"]
