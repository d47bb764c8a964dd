"""Step 1 of the method and the "ground truth" of Figs. 2, 3, 5: the max-LR grid search per
architecture (DESIGN.md §5, §6).

Items are (code, q, seed). Each item builds its model under ``torch.manual_seed(item_seed(code, q, seed))`` and
trains every LR of the grid (hp_scaling.stacked) on the batch order of ``seed``, so an item's result depends only
on (seed, code, q), never on the rank count. The found LR of an item is selected by a criterion; the found LR of an
architecture is the geometric mean over seeds. The prediction is lr_base * lr_multiplier (eq. 8/9), lr_base being
the found LR of the family's base code (k = 0).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hp_scaling.dags import all_codes, base_code, depth_chain, parse_code, path_moments, random_order
from hp_scaling.scaling import NoPathError, lr_multiplier

__all__ = [
    "CRITERIA",
    "Item",
    "correlations",
    "found_table",
    "item_seed",
    "lr_grid",
    "random_topologies",
    "read_partial",
    "select_lr",
]

CRITERIA = ("mean_loss", "final_loss", "max_stable")


@dataclass(frozen=True)
class Item:
    code: str
    q: int
    seed: int

    @property
    def key(self) -> str:
        return f"{self.code}|{self.q}|{self.seed}"


def item_seed(code: str, q: int, seed: int) -> int:
    """Init seed of an item, a fixed function of (seed, code, q) only."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{code}:{q}".encode()).digest()[:4], "little")


def lr_grid(lr_min: float, lr_max: float, steps_per_octave: int) -> list[float]:
    """Geometric grid 2^(log2 lr_min + i / steps_per_octave) up to lr_max (2^-8..2^2 quarter-octave: 41 LRs)."""
    if not (lr_min > 0 and lr_max > 0):
        raise ValueError(f"learning rates must be positive, got lr_min={lr_min}, lr_max={lr_max}")
    if lr_min >= lr_max:
        raise ValueError(f"--lr_min ({lr_min}) must be below --lr_max ({lr_max})")
    if steps_per_octave < 1:
        raise ValueError(f"steps_per_octave must be >= 1, got {steps_per_octave}")
    n = int(math.floor(steps_per_octave * math.log2(lr_max / lr_min) + 1e-9))
    lo = math.log2(lr_min)
    return [2.0 ** (lo + i / steps_per_octave) for i in range(n + 1)]


def random_topologies(
    m: int | None = None, per_bin: int = 4, topology_seed: int = 0, linear_only: bool = False
) -> list[str]:
    """DESIGN.md §5.2 selection: walk random_order(59049, topology_seed) over the N5 codes, skip codes without a path,
    bin by floor(2 log2 mult_off3) (bins -6..0), keep the first ``per_bin`` per bin in walk order, list them in bin
    order (ascending), truncate to ``m``. ``linear_only`` keeps codes with digits 0/2 only."""
    codes = all_codes("mlp", 5)
    bins: dict[int, list[str]] = {b: [] for b in range(-6, 1)}
    for i in random_order(len(codes), topology_seed):
        c = codes[int(i)]
        if linear_only and "1" in c:
            continue
        try:
            mult = lr_multiplier(c)
        except NoPathError:
            continue
        b = math.floor(2 * math.log2(mult) + 1e-12)
        if b in bins and len(bins[b]) < per_bin:
            bins[b].append(c)
            if all(len(v) >= per_bin for v in bins.values()):
                break
    out = [c for b in sorted(bins) for c in bins[b]]
    return out[:m] if m else out


def select_lr(lrs, mean_loss, final_loss, criterion: str = "mean_loss", num_classes: int = 10):
    """Found LR of one item: (lr or NaN, index or -1, at_edge 'low'|'high'|'-').

    mean_loss: argmin of the epoch-mean minibatch loss; final_loss: argmin of the last-10% mean;
    max_stable: the largest LR whose final loss is below ln(classes). Ties pick the smaller LR.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    lrs = list(lrs)
    if criterion == "max_stable":
        ok = [i for i, v in enumerate(final_loss) if math.isfinite(v) and v < math.log(num_classes)]
        idx = ok[-1] if ok else -1
    else:
        vals = mean_loss if criterion == "mean_loss" else final_loss
        finite = [(v, i) for i, v in enumerate(vals) if math.isfinite(v)]
        idx = min(finite)[1] if finite else -1  # min over (value, index): ties pick the smaller LR
    if idx < 0:
        return math.nan, -1, "-"
    edge = "low" if idx == 0 else ("high" if idx == len(lrs) - 1 else "-")
    return lrs[idx], idx, edge


def read_partial(folder: Path) -> dict[str, dict]:
    """Completed item rows from partial/rank*.jsonl (malformed or truncated lines are ignored)."""
    rows: dict[str, dict] = {}
    for f in sorted(Path(folder).glob("rank*.jsonl")):
        for line in f.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "key" in row:
                rows[row["key"]] = row
    return rows


def _geo_mean(vals):
    v = [x for x in vals if math.isfinite(x) and x > 0]
    return (math.exp(sum(math.log(x) for x in v) / len(v)), float(np.std(np.log2(v)))) if v else (math.nan, math.nan)


def found_table(
    rows,
    codes,
    qs,
    seeds,
    family,
    lrs,
    *,
    criterion="mean_loss",
    num_classes=10,
    depth_offset="auto",
    all_skip="count",
    kernel_base=3,
    base=None,
):
    """One dict per (code, q): path statistics, multipliers, per-seed and mean found LRs, prediction, status."""
    fam = "cnn" if family == "cnn" else "mlp"
    out = []
    for code in codes:
        dag = parse_code(code, fam)
        for q in qs:
            kq = q if fam == "cnn" else None
            m3, m1 = path_moments(dag, 3), path_moments(dag, 1)
            rec = {"code": code, "q": q, "n_paths": m3.n_paths, "S_off3": m3.S, "S_off1": m1.S}
            try:
                kw = {"q": kq, "kernel_base": kernel_base, "all_skip": all_skip}
                rec["mult_off3"] = lr_multiplier(dag, fam, depth_offset=3, **kw)
                rec["mult_off1"] = lr_multiplier(dag, fam, depth_offset=1, **kw)
                rec["mult"] = lr_multiplier(dag, fam, depth_offset=depth_offset, **kw)
            except NoPathError:
                rec.update(mult_off3=math.nan, mult_off1=math.nan, mult=math.nan)
            found, edges, statuses = [], [], []
            for s in seeds:
                row = rows.get(Item(code, q, s).key)
                if row is None:
                    found.append(math.nan)
                    statuses.append("missing")
                    continue
                lr, _, edge = select_lr(lrs, row["mean_loss"], row["final_loss"], criterion, num_classes)
                found.append(lr)
                edges.append(edge)
                statuses.append("ok" if math.isfinite(lr) else "all_diverged")
                rec[f"found_lr_s{s}"] = lr
            for s, f in zip(seeds, found):
                rec[f"found_lr_s{s}"] = f
            rec["found_lr"], rec["log2_sd"] = _geo_mean(found)
            rec["at_edge"] = next((e for e in ("low", "high") if e in edges), "-")
            rec["status"] = "ok" if all(st == "ok" for st in statuses) else next(st for st in statuses if st != "ok")
            out.append(rec)
    if base is not None:
        base_rows = [r for r in out if r["code"] == base]
        pick = next((r for r in base_rows if r["q"] == kernel_base), base_rows[0] if base_rows else None)
        lr_base = pick["found_lr"] if pick else math.nan
        for r in out:
            r["predicted_lr"] = lr_base * r["mult"]
            r["predicted_lr_off1"] = lr_base * r["mult_off1"]
    return out


def _pearson(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def correlations(table, exclude=()) -> dict:
    """Pearson r (raw) of predicted vs found for offsets 3 and 1, Pearson of logs, Spearman, log-log slopes."""
    from scipy.stats import spearmanr

    rows = [r for r in table if r["code"] not in exclude and math.isfinite(r["found_lr"])]
    rows = [r for r in rows if math.isfinite(r.get("predicted_lr", math.nan))]
    found = [r["found_lr"] for r in rows]
    pred3 = [r["predicted_lr"] for r in rows]
    pred1 = [r["predicted_lr_off1"] for r in rows]
    out = {"n_archs": len(rows)}
    out["pearson_off3"] = _pearson(pred3, found)
    out["pearson_off1"] = _pearson(pred1, found)
    if len(rows) >= 3:
        lf = np.log(found)
        out["pearson_log"] = _pearson(np.log(pred3), lf)
        out["spearman"] = float(spearmanr(pred3, found).statistic) if np.std(pred3) > 0 else math.nan
        s_vals = np.log([r["S_off3"] for r in rows])
        out["slope_vs_S"] = float(np.polyfit(s_vals, lf, 1)[0]) if np.std(s_vals) > 0 else math.nan
        lp = np.log(pred3)
        out["slope_vs_pred"] = float(np.polyfit(lp, lf, 1)[0]) if np.std(lp) > 0 else math.nan
    return out


def chain_codes(ks, n_nodes=None) -> list[str]:
    """Depth chains for ks on n_nodes (default max(ks) + 1) nodes."""
    n = n_nodes or max(ks) + 1
    return [depth_chain(k, n) for k in ks]


def family_base(codes, family="mlp") -> str:
    """The base code (k = 0 chain) on the node count of ``codes``."""
    n = parse_code(codes[0], "cnn" if family == "cnn" else "mlp").n_nodes
    return base_code(n)
