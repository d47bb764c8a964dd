"""DESIGN.md §7.11 (pruning rule, loss generators), 7.12 [slow] (1-rank search), 7.15 (extract_best, LR lookups)."""

from __future__ import annotations

import json
import math
import pickle

import pytest

from common.cli import MissingInputError, UsageError
from forward_grad.lr_search.extract import extract_best, pick_lr
from forward_grad.lr_search.get_best_lr import get_math_lr, get_nn_lr
from forward_grad.lr_search.pruning import BaselinePruner
from forward_grad.lr_search.search import (
    SearchConfig,
    SearchFailedError,
    _Recorder,
    make_loss_fn,
    preflight,
    run_search,
)


def _feed(pruner, series):
    pruner.start_run()
    for t, value in enumerate(series):
        if pruner.cancel(value):
            return t
    pruner.update(series[-1])
    return None


def test_pruner_rule_margin_and_patience():
    p = BaselinePruner(margin=0.5, patience=2, max_steps=10)
    assert _feed(p, [8.0, 4.0, 2.0, 1.0]) is None and p.baseline == [8.0, 4.0, 2.0, 1.0]
    # s_t > base_t / 0.5 and > final (1.0): 17 > 16, 9 > 8, 5 > 4 -> bad three times; cancel after > 2 bad steps
    assert _feed(p, [17.0, 9.0, 5.0, 3.0]) == 2
    # within the margin (<= 2 x baseline) never prunes
    assert _feed(p, [16.0, 8.0, 4.0, 2.0]) is None
    # consecutive: a good step in between resets the count
    assert _feed(p, [17.0, 9.0, 3.9, 2.1, 1.9, 2.1]) is None
    # steps beyond the baseline's length compare with its final value (1.0): 2.1 > 2 x 1 for 3 steps -> pruned at t=6
    assert _feed(p, [1.5, 1.5, 1.5, 1.5, 2.1, 2.1, 2.1, 2.1]) == 6


def test_pruner_relative_patience_fstar_and_margin_zero():
    p = BaselinePruner(margin=0.5, patience=0.2, max_steps=10, fstar=-10.0)  # p = 2 steps; s = loss + 10
    assert p.patience == 2
    _feed(p, [-2.0, -6.0, -8.0, -9.0])  # s: 8, 4, 2, 1
    assert _feed(p, [7.0, -1.0, -5.0]) == 2  # s: 17 > 16, 9 > 8, 5 > 4
    assert _feed(p, [5.0, -2.0, -6.0, -9.5]) is None  # s: 15, 8, 4 within the margin -> improves to 0.5
    assert p.baseline[-1] == -9.5, "a better finished run becomes the baseline"
    off = BaselinePruner(margin=0.0)
    off.start_run()
    off.baseline = [1.0]
    assert not any(off.cancel(1e9) for _ in range(100)), "DESIGN.md §7.11: margin 0 never prunes"


def test_pruner_merge_keeps_better_and_unequal_lengths():
    a, b = BaselinePruner(), BaselinePruner()
    a.merge([5.0, 3.0])
    b.merge([9.0, 4.0, 2.0])
    a_data, b_data = list(a.baseline), list(b.baseline)
    a.merge(b_data)
    b.merge(a_data)
    assert a.baseline == b.baseline == [9.0, 4.0, 2.0], (
        "DESIGN.md §7.11: merge keeps the better final loss (commutative)"
    )
    b.merge([1.0, 1.0, 1.0, 1.0, 3.0])
    assert b.baseline == [9.0, 4.0, 2.0], "a worse final loss does not replace the baseline"


def test_pruner_hands_out_its_baseline_only_after_a_change():
    """propulate attaches data() to every individual it sends: an unchanged baseline travels as [] (kept small)."""
    p = BaselinePruner()
    assert p.data() == []
    assert _feed(p, [3.0, 2.0, 1.0]) is None
    assert p.data() == [3.0, 2.0, 1.0]
    assert p.data() == [], "an unchanged baseline is not sent again"
    p.merge([9.0, 0.5])
    assert p.baseline == [9.0, 0.5] and p.data() == [], "an adopted baseline came from another rank"
    p.merge([])
    assert p.baseline == [9.0, 0.5], "merging [] is a no-op"


class _Ind(dict):
    generation = 3


def _cfg(tmp_path, **kw):
    return SearchConfig(mode="math", function="sphere", n=4, search_root=str(tmp_path), **kw)


def test_loss_generator_nonfinite_and_exception(tmp_path):
    rec = _Recorder(tmp_path, 0)

    def nan_steps(cfg, lr):
        yield 0, 1.0, None
        yield 1, math.nan, "nonfinite"

    def raising(cfg, lr):
        yield 0, 1.0, None
        raise RuntimeError("boom")

    values = list(make_loss_fn(_cfg(tmp_path), rec, nan_steps)(_Ind(lr_log10=-2.0)))
    assert values == [1.0, math.inf], "DESIGN.md §7.11: NaN -> +inf"
    values = list(make_loss_fn(_cfg(tmp_path), rec, raising)(_Ind(lr_log10=-1.0)))
    assert values == [1.0, math.inf], "DESIGN.md §7.11: exception -> +inf"
    rows = [json.loads(line) for line in (tmp_path / "evaluations.r0.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["nonfinite", "error"]
    failed = (tmp_path / "failed_evaluations.jsonl").read_text().splitlines()
    assert len(failed) == 1 and "boom" in json.loads(failed[0])["error"]


def test_pick_lr_margin_rule():
    pts = [(-3.0, 1.00), (-2.0, 1.04), (-1.0, 1.03), (-2.5, 1.20), (0.0, math.inf)]
    x, loss, count = pick_lr(pts, fstar=0.0, margin=0.05)
    assert count == 3 and x == -2.0, "candidates -3, -2, -1 (loss <= 1.05); mean -2 in log space"
    x, _, count = pick_lr([(-3.0, -9.0), (-1.0, -9.4), (-2.0, -9.45)], fstar=-10.0, margin=0.1)
    assert count == 2 and x in (-1.0, -2.0), "f* shift: s = 1.0, 0.6, 0.55 -> candidates s <= 0.605"
    assert pick_lr([(-1.0, math.inf)]) is None


def test_extract_best_writes_table(tmp_path):
    from propulate import Individual

    label_dir = tmp_path / "math" / "styblinski-tang_n=0004" / "fg-mean_k=2"
    (label_dir / "checkpoints").mkdir(parents=True)
    cfg = {"label": "math/styblinski-tang_n=0004/fg-mean_k=2", "function": "styblinski-tang", "n": 4,
           "gradient": "fg-mean", "k": 2, "tangent_sampler": "normal"}  # fmt: skip
    (label_dir / "config.json").write_text(json.dumps(cfg))
    fstar = -39.16616570377142 * 4
    pop = []
    for x, s in [(-3.0, 1.0), (-2.0, 1.02), (-1.5, 5.0)]:
        ind = Individual(position={"lr_log10": x}, limits={"lr_log10": (-6.0, 0.0)})
        ind.loss = fstar + s
        pop.append(ind)
    with open(label_dir / "checkpoints" / "island_0_ckpt.pickle", "wb") as handle:
        pickle.dump(pop, handle)
    out = tmp_path / "lrs" / "math.csv"
    rows = extract_best(tmp_path, "math", out)
    assert len(rows) == 1 and rows[0]["n_candidates"] == 2 and rows[0]["num_evaluations"] == 3
    assert math.isclose(float(rows[0]["lr"]), 10**-3.0, rel_tol=1e-5) or math.isclose(
        float(rows[0]["lr"]), 10**-2.0, rel_tol=1e-5
    )
    header = out.read_text().splitlines()[0]
    assert (
        header
        == "function,n,gradient_approach,k,tangent_sampler,optimizer,lr,loss,num_evaluations,n_candidates,degenerate"
    )
    assert get_math_lr("styblinski-tang", 4, "fg-mean", 2, lrs_dir=out.parent) == float(rows[0]["lr"])
    fallback = get_math_lr("styblinski-tang", 4, "fg-mean", 2, sampler="specific_angle_30", lrs_dir=out.parent)
    assert fallback == float(rows[0]["lr"]), "DESIGN.md §7.15: a custom sampler falls back to the normal row"
    with pytest.raises(ValueError, match="no LR"):
        get_math_lr("sphere", 4, "fg-mean", 2, lrs_dir=out.parent)
    with pytest.raises(ValueError, match="no LR in lrs/fc_nns.csv"):
        get_nn_lr("fc", 256, "mnist", "frog", 2, lrs_dir=tmp_path / "lrs")
    assert get_math_lr("styblinski-tang", 4, "fg-mean", 2, table=out) == float(rows[0]["lr"])
    with pytest.raises(MissingInputError, match="nope.csv"):
        get_math_lr("styblinski-tang", 4, "fg-mean", 2, table=tmp_path / "nope.csv")
    # --update: rows of searches not under search_root stay; this search's row is replaced in place
    text = out.read_text().splitlines()
    other = "sphere,8,bp,,normal,plain_sgd,0.25,0.0,100,3,False"
    stale = text[1].split(",")
    stale[6] = "0.5"
    out.write_text("\n".join([text[0], other, ",".join(stale)]) + "\n")
    rows = extract_best(tmp_path, "math", out, update=True)
    assert [r["function"] for r in rows] == ["sphere", "styblinski-tang"] and rows[0]["lr"] == "0.25"
    assert get_math_lr("styblinski-tang", 4, "fg-mean", 2, lrs_dir=out.parent) != 0.5
    assert extract_best(tmp_path, "math", out) and len(out.read_text().splitlines()) == 2  # no update: rewritten


@pytest.mark.slow
def test_nn_search_smoke(tmp_path):
    cfg = SearchConfig(mode="nn", model="fc", model_width=32, dataset="digits", epochs=2, num_evaluations=4,
                       gradient="frog", k=2, search_root=str(tmp_path), no_progress=True, device="cpu",
                       limits=(-3.0, 0.0))  # fmt: skip
    res = run_search(cfg)
    assert res.population == 4 and res.evaluated == 4 and math.isfinite(res.best_loss)
    assert (res.run_dir / "evaluations.csv").read_text().count("\n") == 5
    assert str(res.run_dir).endswith("nns/fc_w=32__digits__e=2/frog_k=2")
    again = run_search(cfg)
    assert again.evaluated == 0 and again.population == 4, "DESIGN.md §3.5: a finished search evaluates nothing"


@pytest.mark.slow
def test_resume_corrupt_checkpoint_and_missing_rank(tmp_path):
    """DESIGN.md §7.14 (1-rank part): corrupt .pickle -> .bkp; both corrupt -> fresh start; a checkpoint without this
    rank's individuals resumes at generation 0; --delete_old_checkpoints restarts."""
    cfg = SearchConfig(mode="math", function="sphere", n=8, gradient="fg-mean", k=1, num_evaluations=6, max_steps=30,
                       search_root=str(tmp_path), no_progress=True, limits=(-3.0, 0.0))  # fmt: skip
    first = run_search(cfg)
    ckpt = first.run_dir / "checkpoints" / "island_0_ckpt.pickle"
    assert first.population == 6 and ckpt.with_suffix(".bkp").exists()
    ckpt.write_bytes(b"garbage")
    cfg.num_evaluations = 7
    res = run_search(cfg)
    assert res.evaluated in (1, 2) and res.population == 7, "DESIGN.md §7.14: the .bkp was not used"
    ckpt.write_bytes(b"garbage")
    ckpt.with_suffix(".bkp").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="fresh"):
        res = run_search(cfg)
    assert res.population == 7 and res.evaluated == 7 and list(ckpt.parent.glob("*.corrupt"))
    with open(ckpt, "rb") as handle:
        pop = pickle.load(handle)
    for ind in pop:
        ind.rank = 1  # as if written by another rank: rank 0 owns no individual
    with open(ckpt, "wb") as handle:
        pickle.dump(pop, handle)
    cfg.num_evaluations = 9
    res = run_search(cfg)
    assert res.population == 9 and res.evaluated == 2
    cfg.delete_old_checkpoints, cfg.num_evaluations = True, 3
    res = run_search(cfg)
    assert res.population == 3 and res.evaluated == 3, "DESIGN.md §7.14: --delete_old_checkpoints restarts"


@pytest.mark.slow
@pytest.mark.parametrize(
    "n,gradient,k,target", [(64, "fg-mean", 1, 7.58e-3), (1024, "frog", 4, 0.5)], ids=["fg-mean1-n64", "frog4-n1024"]
)
def test_one_rank_search_finds_derived_lr(tmp_path, n, gradient, k, target):
    cfg = SearchConfig(mode="math", function="sphere", n=n, gradient=gradient, k=k, num_evaluations=64,
                       limits=(-4.0, 0.0), seed=0, search_root=str(tmp_path), no_progress=True)  # fmt: skip
    res = run_search(cfg)
    ratio = res.best_lr / target
    assert 0.5 <= ratio <= 2.0, f"DESIGN.md §7.12: best lr {res.best_lr:.4g} not within x/÷2 of {target} (seed 0 fixed)"


def test_sweep_grids_cover_the_tables():
    from forward_grad.lr_search.sweep import grid_cells

    cells = grid_cells("math")
    assert len(cells) == 264 and len(set(cells)) == 264, "DESIGN.md §3.5: 3 functions x 11 n x 8 approaches"
    custom = grid_cells("math_custom_tangents")
    assert len(custom) == 14 and {c[3] for c in custom if c[2].startswith("frog")} == {"normal"}
    assert grid_cells("math", ["rosenbrock"], [16], ["frog:16"]) == [("rosenbrock", 16, "frog:16", "normal")]
    with pytest.raises(ValueError):
        grid_cells("math", approaches=["adam"])


def test_preflight_stops_a_search_that_cannot_evaluate(tmp_path):
    """DESIGN.md §3.5: missing data or unbuildable model settings are one UsageError before propulate starts (no run
    dir, no evaluation), not a search whose every evaluation lands in failed_evaluations.jsonl."""
    base = dict(mode="nn", model="fc", model_width=16, epochs=1, num_evaluations=4, search_root=str(tmp_path),
                no_progress=True, device="cpu")  # fmt: skip
    with pytest.raises(MissingInputError, match="MNIST"):
        run_search(SearchConfig(dataset="mnist", data_root=str(tmp_path / "nodata"), **base))
    bad_vit = {**base, "model": "vit", "model_kw": {"no_such_argument": 1}}
    with pytest.raises(UsageError, match="cannot evaluate --model vit on --dataset digits: TypeError"):
        run_search(SearchConfig(dataset="digits", **bad_vit))
    assert not list(tmp_path.rglob("evaluations.csv")) and not list(tmp_path.rglob("checkpoints"))
    preflight(SearchConfig(dataset="digits", **base))  # buildable settings pass


def test_search_where_every_evaluation_fails_raises(tmp_path):
    """DESIGN.md §3.5: no finite loss at all is SearchFailedError naming why (after summary.json records it)."""

    def broken(cfg, lr):
        raise RuntimeError(f"broken evaluation at lr {lr:.3g}")
        yield  # pragma: no cover - makes this a generator

    cfg = SearchConfig(mode="math", function="sphere", n=4, gradient="fg-mean", k=1, num_evaluations=3, max_steps=5,
                       search_root=str(tmp_path), no_progress=True)  # fmt: skip
    with pytest.raises(SearchFailedError, match=r"no evaluation ended with a finite loss \(error 3\).*broken eval"):
        run_search(cfg, broken)
    summary = json.loads((cfg.run_dir / "summary.json").read_text())
    assert summary["best_loss"] == "inf" and "error 3" in summary["failed"]

    def diverging(cfg, lr):
        yield 1, math.nan, None

    cfg.name, cfg.num_evaluations = "nonfinite", 2
    with pytest.raises(SearchFailedError, match=r"\(nonfinite 2\)"):
        run_search(cfg, diverging)


def test_search_with_one_finite_evaluation_succeeds(tmp_path):
    """The failure rule needs *every* evaluation to fail: one finite loss is a result."""

    def one_good(cfg, lr):
        one_good.calls = getattr(one_good, "calls", 0) + 1
        if one_good.calls > 1:
            raise RuntimeError("later evaluations fail")
        yield 1, 0.5, "max_steps"

    cfg = SearchConfig(mode="math", function="sphere", n=4, num_evaluations=3, max_steps=5,
                       search_root=str(tmp_path), no_progress=True)  # fmt: skip
    res = run_search(cfg, one_good)
    assert res.best_loss == 0.5 and res.status_counts == {"ok": 1, "error": 2}
