"""Slow tier, preregistered rules of DESIGN.md §6.1 (R1) and 6.2 (R2), and the speed-up checks of DESIGN.md §7.8.

Each reproduction runs once (one test per grid, so xdist never runs a grid twice); all failures of a grid are
collected and reported together.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

SLOW_EVAL = ["--eval_every", "100", "--no_progress", "--device", "cpu"]


def _metrics(out, name):
    with open(out / "runs" / name / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_r1_digits_rule_and_speed_up(tmp_path):
    """DESIGN.md §6.1 rule per class (3 seeds) and DESIGN.md §7.8 (speed-up cadence, forwards/step)."""
    from line_search.run_multiple_img import main

    s = main(["--optims", "sls,adamsls,kensls,salsa,adam", "--numexp", "3", "--out", str(tmp_path), "--name", "r1"]
             + SLOW_EVAL)  # fmt: skip
    nosu = main(["--optims", "salsa", "--speed_up", "False", "--numexp", "1", "--out", str(tmp_path), "--name", "nosu"]
                + SLOW_EVAL)  # fmt: skip
    failures = []
    v = s["verdicts"].get("R1")
    assert v is not None, "R1 grid incomplete"
    for name, r in v["optimizers"].items():
        if not r["pass"]:
            failures.append(
                f"DESIGN.md §6.1: {name} loss {r['final_train_loss']:.5f} (<= {v['loss_threshold']:.5f}?) "
                f"acc {r['val_acc']:.4f} (>= {v['acc_threshold']:.4f}?)"
            )
    checked = 0
    for seed in range(3):
        rows = _metrics(Path(s["run_dir"]), f"digits_mlp_salsa_s{seed}")
        assert len(rows) == 645
        searched = [int(r["searched"]) for r in rows]
        if not all(searched[:10]):
            failures.append(f"DESIGN.md §7.8 seed {seed}: steps 1-10 did not all search")
        for i in range(10, len(rows) - 9):
            checked += 1
            if not any(searched[i : i + 10]):
                failures.append(f"DESIGN.md §7.8 seed {seed}: no search in steps {i + 1}-{i + 10}")
                break
        late = sum(int(r["forwards"]) for r in rows[200:]) / len(rows[200:])
        if late > 1.2:
            failures.append(f"seed {seed}: SaLSa forwards/step over 201-645 = {late:.3f} > 1.2 (pilot 1.14)")
    groups = s["groups"]["digits"]
    fwd = {k: groups[k]["forwards_per_step_mean"] for k in ("sls", "adamsls", "kensls")}
    fwd["salsa_nosu"] = nosu["groups"]["digits"]["salsa_nosu"]["forwards_per_step_mean"]
    for k, f in fwd.items():
        if f > 2.6:
            failures.append(f"DESIGN.md §7.8: {k} without speed-up {f:.3f} forwards/step > 2.6")
    print({k: round(f, 3) for k, f in fwd.items()}, v)
    assert checked > 600
    assert not failures, "\n".join(failures)


@pytest.mark.slow
def test_r2_tiny_bert_rule(tmp_path):
    """DESIGN.md §6.2 rule for AdamSLS, KenSLS, SaLSa (2 seeds); SLS is reported, not ruled."""
    from line_search.run_multiple import main

    s = main(["--optims", "sls,adamsls,kensls,salsa,adam", "--numexp", "2", "--out", str(tmp_path), *SLOW_EVAL])
    v = s["verdicts"].get("R2")
    assert v is not None, "R2 grid incomplete"
    print(v)
    failures = [
        f"DESIGN.md §6.2: {name} loss {r['final_train_loss']:.4f} (<= {v['loss_threshold']:.4f}?) "
        f"acc {r['val_acc']:.4f} (>= {v['acc_threshold']:.4f}?)"
        for name, r in v["optimizers"].items()
        if not r["pass"]
    ]
    assert not failures, "\n".join(failures)
