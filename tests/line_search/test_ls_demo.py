"""Demo rows trust only stamped results (DESIGN.md §11): planted or stale files are not read as results."""

from __future__ import annotations

import json

import pytest

from common.report import stamp, write_stamped
from line_search import demo


@pytest.fixture
def bench_file(tmp_path, monkeypatch):
    path = tmp_path / "line_search_stamped.json"
    monkeypatch.setattr(demo, "BENCH_STAMPED", path)
    return path


ROWS = {"rows": [{"id": "B3", "measure": "time/step Adam / SaLSa", "baseline_s": 2.0, "ours_s": 2.2}]}


def test_bench_b3_ignores_a_planted_plain_file(bench_file):
    bench_file.write_text(json.dumps(ROWS))
    assert demo._bench_b3() == (None, "")


def test_bench_b3_ignores_other_settings(bench_file):
    write_stamped(bench_file, ROWS, stamp("line_search", demo.bench_config(steps=60), ("line_search",)))
    assert demo._bench_b3() == (None, "")


def test_bench_b3_reads_a_matching_stamp(bench_file):
    write_stamped(bench_file, ROWS, stamp("line_search", demo.bench_config(), ("line_search",)))
    ratio, provenance = demo._bench_b3()
    assert ratio == pytest.approx(1.1) and provenance


def test_grid_recomputes_unless_the_stamp_matches(tmp_path, monkeypatch):
    """A planted result under the grid's cache name is ignored; the second call reuses the stamped result."""
    calls = []

    class FakeScript:
        @staticmethod
        def main(argv):
            calls.append(argv)
            return {"run_dir": str(tmp_path / "run"), "verdicts": {}, "groups": {}, "value": len(calls)}

    import sys

    monkeypatch.setitem(sys.modules, "line_search.fake_grid", FakeScript)
    (tmp_path / "g.stamped.json").write_text(json.dumps({"summary": {"value": 99}}))
    first, note1 = demo._grid("fake_grid", tmp_path, "g", ["--numexp", "1"])
    second, note2 = demo._grid("fake_grid", tmp_path, "g", ["--numexp", "1"])
    other, note3 = demo._grid("fake_grid", tmp_path, "g", ["--numexp", "2"])
    assert first["value"] == 1 and note1 == "computed now"
    assert second["value"] == 1 and note2.startswith("cached from ")
    assert other["value"] == 2 and note3 == "computed now", "a different configuration must not reuse the cache"
    assert len(calls) == 2 and calls[0][2:6] == ["--out", str(tmp_path), "--name", "g"]
