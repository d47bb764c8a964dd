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


def _cell(loss, acc, n, fwd=2.0, late=1.1):
    return {"final_train_loss_mean": loss, "val_acc_mean": acc, "val_acc_min": acc - 0.01, "val_acc_max": acc + 0.01,
            "forwards_per_step_mean": fwd, "forwards_per_step_after_200_mean": late, "n": n}  # fmt: skip


def _fake_grid(script, out_dir, name, argv):
    from line_search.harness.grid import rule_verdicts

    n = int(argv[argv.index("--numexp") + 1])
    adam = {f"adam_lr{lr:g}": _cell(loss, acc, n) for lr, loss, acc in
            [(1e-4, 0.7, 0.5), (3e-4, 0.6, 0.6), (1e-3, 0.3, 0.9), (3e-3, 0.02, 0.99), (1e-2, 0.1, 0.95)]}  # fmt: skip
    ours = {o: _cell(0.01, 0.98, n) for o in ("sls", "adamsls", "kensls", "salsa")}
    dataset = "digits" if script == "run_multiple_img" else "synthetic_order"
    groups = {**adam, **ours}
    margin, rule, names = (0.015, "R1", ("sls", "adamsls", "kensls", "salsa"))
    if dataset == "synthetic_order":
        margin, rule, names = 0.05, "R2", ("adamsls", "kensls", "salsa")
    verdict = rule_verdicts(groups, names, margin, "x")
    return {"groups": {dataset: groups}, "verdicts": {rule: verdict}, "run_dir": str(out_dir / name)}, "computed now"


def test_demo_rows_label_seed_counts(tmp_path, monkeypatch):
    """The demo's R1 row says it is a one-seed verdict; R2 runs the rule's two seeds and shows the spread."""
    monkeypatch.setattr(demo, "_grid", _fake_grid)
    monkeypatch.setattr(demo, "BENCH_STAMPED", tmp_path / "none.json")
    rows = demo.demo_rows(tmp_path, quick=True)
    r1, r2 = rows[0].our_figure, rows[1].our_figure
    assert "one-seed verdict" in r1 and "1 seed" in r1
    assert "2 seeds (the rule's count)" in r2 and "acc per seed" in r2
    assert "not run" in rows[2].our_figure, "no stamped benchmark: the B3 part says it was not run"
    assert [r.verdict for r in rows[:2]] == ["yes", "yes"]
