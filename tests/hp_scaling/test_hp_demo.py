"""Demo rows (DESIGN.md §5): computed with the unchanged rules; cached results only under a matching stamp."""

import json

import pytest

import hp_scaling.demo as demo
from common.report import write_stamped


def _summary(r: float, run_dir: str) -> dict:
    return {"pearson_off3": r, "pearson_off1": r, "run_dir": run_dir}


@pytest.fixture
def fake_run(monkeypatch):
    """Replace the training runs by a stub with r = 0.1 (a 'no' under the R2 rule); record what was run."""
    calls = []

    def run(script, argv, out_root, name):
        calls.append(name)
        return _summary(0.1, str(out_root / "fake" / name))

    monkeypatch.setattr(demo, "_run", run)
    return calls


def test_planted_summary_does_not_make_r2_yes(tmp_path, fake_run):
    out = tmp_path / "demo" / "hp_scaling"
    for init in ("paper", "reference"):
        planted = out / "lr_sweep" / f"R2-demo-{init}"
        planted.mkdir(parents=True)
        (planted / "summary.json").write_text(json.dumps(_summary(0.99, str(planted))))
        stale = demo._stamp_for("lr_sweep", [*demo.R2_DEMO, "--init", init]) | {"code_sha256": "old code"}
        write_stamped(out / "cache" / f"R2-demo-{init}.json", _summary(0.99, str(planted)), stale)
    rows = demo.topology_rows(out, quick=True)
    assert len(rows) == 1 and rows[0].verdict == "no", "a planted r = 0.99 must not turn R2 into 'yes'"
    assert "0.100" in rows[0].our_figure and "computed now" in rows[0].our_figure
    assert sorted(fake_run) == ["R2-demo-paper", "R2-demo-reference"], "the demo preset was recomputed"


def test_matching_stamp_is_reused_and_labelled(tmp_path, fake_run):
    out = tmp_path / "demo" / "hp_scaling"
    full = tmp_path / "reproduce" / "hp_scaling"
    for init, r in (("paper", 0.5), ("reference", 0.8)):
        write_stamped(
            full / "cache" / f"R2-{init}.json",
            _summary(r, "x"),
            demo._stamp_for("lr_sweep", [*demo.R2, "--init", init]),
        )
    rows = demo.topology_rows(out, quick=True)
    assert [r.verdict for r in rows] == ["no", "yes"], "demo preset computed (stub, no); full run cached (yes)"
    assert "cached from" in rows[1].our_figure and "0.800" in rows[1].our_figure
    again = demo.topology_rows(out, quick=True)
    assert "cached from" in again[0].our_figure and len(fake_run) == 2, "a matching demo stamp is not recomputed"


def test_full_rows_with_other_config_are_not_shown(tmp_path, fake_run):
    out = tmp_path / "demo" / "hp_scaling"
    full = tmp_path / "reproduce" / "hp_scaling"
    for init in ("paper", "reference"):
        other = demo._stamp_for("lr_sweep", [*demo.R2, "--init", init, "--width", "32"])
        write_stamped(full / "cache" / f"R2-{init}.json", _summary(0.99, "x"), other)
    assert len(demo.topology_rows(out, quick=True)) == 1, "a full-run cache of another configuration is ignored"


def test_rules_unchanged():
    assert demo.r2_verdict(_summary(0.31, ""), _summary(0.61, ""))[0] == "yes"
    assert demo.r2_verdict(_summary(0.30, ""), _summary(0.61, ""))[0] == "no", "r > 0.3 is strict (paper init)"
    assert demo.r2_verdict(_summary(0.31, ""), _summary(0.60, ""))[0] == "no", "r > 0.6 is strict (reference init)"
    s = {"all_finite": True, "mean_acc_base": 0.5, "mean_acc_ours": 0.5, "mean_gain": -0.02}
    s.update(gain_bottom_half=0.0, gain_top_half=0.0, kendall_tau=None)
    assert demo.r4_verdict(s)[0] == "yes"
    assert demo.r4_verdict({**s, "mean_gain": -0.021})[0] == "no"
    assert demo.r4_verdict({**s, "mean_acc_ours": 0.49})[0] == "no"
    assert demo.r4_verdict({**s, "all_finite": False})[0] == "no"
