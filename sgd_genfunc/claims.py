"""Preregistered small-scale reproductions R1-R6 of DESIGN.md §6 (rules fixed before any run; sizes per preset).

Each `r*` function runs one experiment, checks every rule of its DESIGN.md §6 paragraph and returns a `Reproduction`
(rules with expected and measured values, a verdict, and the curves for the figure). `reproduce.py`, `demo.py` and
the slow tests call these; presets: "ci" (the CI variant of each paragraph), "full" (make reproduce), "demo" (make
demo, smaller where the CI size does not fit the demo budget; the rules stay the same).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from sgd_genfunc.problems import fit_power_laws, power_law_coefficients, power_law_spectrum, real_problem
from sgd_genfunc.theory import (
    batch_noise_factor,
    classify_phase,
    critical_alpha,
    effective_lr,
    fit_slope,
    full_run,
    loss_exponent,
    negative_momentum_condition,
    noise_asymptote,
    optimal_alpha,
    optimal_beta,
    sd_run,
    signal_asymptote,
    u_tilde_at_1,
    v_tilde_at_1,
)
from sgd_genfunc.training import ResidualSGD, batch_streams, train_linearized, train_nn


@dataclass
class Rule:
    """One preregistered check: what DESIGN.md §6 expects, what we measured, and whether it holds."""

    name: str
    expected: str
    measured: str
    passed: bool


@dataclass
class Reproduction:
    rid: str
    claim: str
    paper_figure: str
    size: str
    rules: list[Rule] = field(default_factory=list)
    data: dict = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        ok = sum(r.passed for r in self.rules)
        return "yes" if ok == len(self.rules) else ("no" if ok == 0 else "partial")

    def check(self, name: str, expected: str, measured, passed: bool) -> None:
        self.rules.append(Rule(name, expected, str(measured), bool(passed)))

    def summary(self) -> dict:
        return {
            "id": self.rid,
            "claim": self.claim,
            "size": self.size,
            "verdict": self.verdict,
            "rules": [r.__dict__ for r in self.rules],
        }

    def our_figure(self) -> str:
        failed = [r.name for r in self.rules if not r.passed]
        head = "; ".join(f"{r.name}: {r.measured}" for r in self.rules[:3])
        tail = f" (failed: {', '.join(failed)})" if failed else ""
        return f"{self.size}: {head}{tail}"


PRESETS = {
    "R1": {
        "ci": dict(bs=(10,), T=1000, full_T=60),
        "full": dict(bs=(10, 100), T=2000, full_T=60),
        "demo": dict(bs=(10,), T=1000, full_T=0),
    },
    "R3": {
        "ci": dict(N=20_000, T=2000, fit=(100, 2000), tol=0.06, sig=(0.8, 1.1), noi=(0.95, 1.05)),
        "full": dict(N=100_000, T=10_000, fit=(300, 10_000), tol=0.03, sig=(0.85, 1.1), noi=(0.97, 1.03)),
        "demo": dict(N=20_000, T=2000, fit=(100, 2000), tol=0.06, sig=(0.8, 1.1), noi=(0.95, 1.05)),
    },
    "R4": {
        "ci": dict(N=3000, pairs=((1.5, 4), (2, 8), (2, 3), (1.5, 2.5))),
        "full": dict(N=10_000, pairs=((1.5, 4), (2, 8), (2, 3), (1.5, 2.5))),
        "demo": dict(N=1000, pairs=((1.5, 4), (2, 3))),
    },
    "R6": {"ci": dict(n=20), "full": dict(n=40), "demo": dict(n=12)},
}


def _fmt(x: float, p: int = 4) -> str:
    return f"{x:.{p}g}" if math.isfinite(x) else str(x)


# --- R1: four regimes on digits -----------------------------------------------------------------------------------


# The longest function of the package (~80 lines): one preregistered experiment, its four regimes and the seven rules
# of DESIGN.md §6 R1 side by side, so a reader can check each rule against the curves it reads.
def r1_regimes(preset: str = "ci", seed: int = 42) -> Reproduction:
    """R1 (Figure A): net, linearized, full and SD +-1 on digits (N = 1000, H = 1000, alpha = 1.2, beta = 0)."""
    P = PRESETS["R1"][preset]
    T, full_T = P["T"], P["full_T"]
    rep = Reproduction(
        "R1",
        "four regimes agree on real data; SD tau=+1 closest to the batch average",
        "reference README figure (MNIST, b = 10, 100)",
        f"digits N=1000, H=1000, T={T}, b={P['bs']}" + ("" if full_T else ", full omitted"),
    )
    prob = real_problem("digits", 1000, "data", seed, 1000, "mlp")
    N = 1000
    scale = N / prob.lambda_max
    fit = fit_power_laws(prob.lam, prob.c)
    rep.data["fit"] = fit._asdict()
    rep.data["lr_scale"] = scale
    alpha, beta = 1.2, 0.0
    for b in P["bs"]:
        g = batch_noise_factor(N, b)
        sd_p = sd_run(prob.lam, prob.c, T, alpha, beta, g, 1.0).loss
        sd_m = sd_run(prob.lam, prob.c, T, alpha, beta, g, -1.0).loss
        curves = {"SD tau=+1": sd_p, "SD tau=-1": sd_m}
        if b == 100:
            dev = float(((sd_p - sd_m).abs() / sd_p).max())
            rep.check("b=100 |SD+1 - SD-1|/SD+1", "<= 0.03 all t", _fmt(dev, 3), dev <= 0.03)
        if b == 10:
            lin = train_linearized(ResidualSGD(alpha, beta), prob.d0, prob.K_tilde, T, b, 20, batch_streams(seed, 20))
            lin_mean = lin.loss.mean(0)
            se = lin.loss.std(0) / math.sqrt(20)
            curves["linearized (20 runs)"] = lin_mean
            nn_curves = []
            for rng in batch_streams(seed, 3):
                model = _copy(prob.model)
                opt = torch.optim.SGD(model.parameters(), lr=alpha * scale, momentum=beta)
                h = train_nn(model, opt, prob.X, prob.y, T, b, rng, log_frequency=20)
                nn_curves.append(h["train/loss"])
            nn_mean = torch.stack(nn_curves).mean(0)
            nn_t = torch.arange(0, T + 1, 20)
            rep.data["nn_steps"] = nn_t
            curves["NN (3 runs)"] = nn_mean
            for t in (60, 300, 1000):
                if t > T:
                    continue
                d = abs(float(nn_mean[t // 20]) - float(lin_mean[t])) / float(lin_mean[t])
                rep.check(f"|NN-lin|/lin t={t}", "<= 0.15", _fmt(d, 3), d <= 0.15)
            if full_T:
                full = full_run(prob.lam, prob.U, torch.outer(prob.d0, prob.d0), full_T, alpha, beta, g).loss
                curves["full"] = full
                tol = torch.maximum(4 * se[: full_T + 1], 0.02 * full)
                ok = bool(((lin_mean[: full_T + 1] - full).abs() <= tol).all())
                worst = float(((lin_mean[: full_T + 1] - full).abs() / tol).max())
                rep.check("|lin-full| t<=60", "<= max(4 SE, 0.02 full)", f"max ratio {worst:.2f}", ok)
                e_p = abs(float(sd_p[full_T] - full[full_T])) / float(full[full_T])
                e_m = abs(float(sd_m[full_T] - full[full_T])) / float(full[full_T])
                rep.check(
                    "|SD+1-full|/full t=60",
                    "<= 0.03 and < SD-1's",
                    f"{e_p:.4f} vs {e_m:.4f}",
                    e_p <= 0.03 and e_p < e_m,
                )
            t_last = min(1000, T)
            d = abs(float(sd_p[t_last] - lin_mean[t_last])) / float(lin_mean[t_last])
            rep.check(f"|SD+1-lin|/lin t={t_last}", "<= 0.10", _fmt(d, 3), d <= 0.10)
            rep.data["losses_at"] = {
                t: {
                    k: float(v[t // 20] if k.startswith("NN") else v[t])
                    for k, v in curves.items()
                    if (t // 20 if k.startswith("NN") else t) < len(v)
                }
                for t in (60, 300, 1000)
                if t <= T
            }
        rep.data[f"curves_b{b}"] = curves
    rep.check("fit nu", "[1.15, 1.6] (pilot 1.37)", f"{fit.nu:.2f} +- {fit.nu_std:.2f}", 1.15 <= fit.nu <= 1.6)
    rep.check(
        "fit kappa", "[0.4, 1.2] (pilot 0.79)", f"{fit.kappa:.2f} +- {fit.kappa_std:.2f}", 0.4 <= fit.kappa <= 1.2
    )
    rep.check("phase", "signal", classify_phase(fit.nu, fit.kappa), classify_phase(fit.nu, fit.kappa) == "signal")
    return rep


def _copy(model):
    import copy

    return copy.deepcopy(model)


# --- R2: critical alpha ---------------------------------------------------------------------------------------------


def r2_critical(T: int = 20_000) -> Reproduction:
    """R2: alpha_c = 2/Tr K~ (b = 1, beta = 0, tau = 1) and the general boundary U~(1) = 1 (N = 1000, nu = 1.5)."""
    rep = Reproduction(
        "R2",
        "stability boundary U~(1) = 1; alpha_c = 2/Tr K~ at b = 1",
        "closed form (E8)",
        f"SD N=1000, nu=1.5, kappa=1, T={T}",
    )
    N = 1000
    lam = power_law_spectrum(N, 1.5)
    c = power_law_coefficients(N, 1.0)
    a_c = critical_alpha(lam, 0.0, 1.0, 1.0)
    rep.check("alpha_c b=1", "0.784577 = 2/Tr K~", f"{a_c:.6f}", abs(a_c - 2 / float(lam.sum())) < 1e-9 * a_c)
    general = [(10, 0.0, 1.9592), (10, 0.5, 2.4779), (10, 0.9, 0.8610), (100, 0.9, 3.5619)]
    rows = [(1, 0.0, a_c)]
    for b, beta, expect in general:
        v = critical_alpha(lam, beta, batch_noise_factor(N, b), 1.0)
        rep.check(f"alpha_c b={b} beta={beta}", f"{expect}", f"{v:.4f}", abs(v - expect) / expect < 1e-4)
        rows.append((b, beta, v))
    al, bt, gm = [], [], []
    for b, beta, v in rows:
        for f in (0.97, 1.03):
            al.append(f * v)
            bt.append(beta)
            gm.append(batch_noise_factor(N, b))
    res = sd_run(lam, c, T, torch.tensor(al), torch.tensor(bt), torch.tensor(gm), 1.0)
    ratio = (res.loss[:, -1] / res.loss[:, 0]).tolist()
    rep.check(
        "b=1 L_T/L_0 at 0.97/1.03 alpha_c",
        "< 1 and > 10 (pilot 0.0107, 61.7)",
        f"{_fmt(ratio[0])}, {_fmt(ratio[1])}",
        ratio[0] < 1 and ratio[1] > 10,
    )
    ok = all(
        ratio[2 * i] < 1 and (not math.isfinite(ratio[2 * i + 1]) or ratio[2 * i + 1] > 1) for i in range(1, len(rows))
    )
    rep.check("general: converge at 0.97, diverge at 1.03", "all 4 configs", f"{ratio[2::2]} / {ratio[3::2]}", ok)
    g10 = batch_noise_factor(N, 10)
    from sgd_genfunc.theory import asymptote_plus1

    asym, exact = float(asymptote_plus1(0.99, g10, lam)), critical_alpha(lam, 0.99, g10, 1.0)
    rep.check(
        "beta=0.99 asymptote",
        "0.09397 vs 0.09322, within 1%",
        f"{asym:.5f} vs {exact:.5f}",
        abs(asym - exact) / exact < 0.01,
    )
    rep.data["ratios"] = ratio
    return rep


# --- R3: phase transition -------------------------------------------------------------------------------------------


def r3_phases(preset: str = "ci") -> Reproduction:
    """R3 (Figure B): loss exponents min(kappa/nu, 2 - 1/nu) for nu = 1.5, kappa in {0.5, 1, 2, 3, 4}."""
    P = PRESETS["R3"][preset]
    N, T = P["N"], P["T"]
    nu, kappas = 1.5, (0.5, 1.0, 2.0, 3.0, 4.0)
    alpha, beta, b = 1.0, 0.0, 10
    rep = Reproduction(
        "R3",
        "loss ~ t^-min(kappa/nu, 2-1/nu), kink at kappa = 2nu-1",
        "paper Figure B (phase diagram)",
        f"SD N={N}, T={T}, nu=1.5, (alpha, beta, b)=(1, 0, 10)",
    )
    lam = power_law_spectrum(N, nu)
    cs = torch.stack([power_law_coefficients(N, k) for k in kappas])
    g = batch_noise_factor(N, b)
    res = sd_run(lam, cs, T, alpha, beta, g, 1.0)
    t = np.arange(T + 1)
    slopes, ratios = [], []
    u1 = u_tilde_at_1(lam, alpha, beta, g, 1.0)
    a_eff = effective_lr(alpha, beta)
    for i, kappa in enumerate(kappas):
        L = res.loss[i].numpy()
        s = fit_slope(t, L, *P["fit"])
        pred = -loss_exponent(nu, kappa)
        slopes.append(s)
        rep.check(f"slope kappa={kappa}", f"{pred:.3f} +- {P['tol']}", f"{s:.3f}", abs(s - pred) <= P["tol"])
        if kappa < 2:
            Z = float((torch.arange(1, N + 1, dtype=torch.float64) ** -(kappa + 1)).sum())
            K = 1.0 / (kappa * Z) / (2 * N)
            pred_L = float(signal_asymptote(T, K, kappa / nu, a_eff, u1))
            lo, hi = P["sig"]
        elif kappa > 2:
            v1 = v_tilde_at_1(lam, cs[i], alpha, beta, g, 1.0)
            pred_L = float(noise_asymptote(T, nu, g, a_eff, v1, u1, N))
            lo, hi = P["noi"]
        else:
            ratios.append(float("nan"))
            continue
        r = L[-1] / pred_L
        ratios.append(r)
        rep.check(f"L_T/pred kappa={kappa}", f"[{lo}, {hi}]", f"{r:.3f}", lo <= r <= hi)
    rep.data.update(kappas=kappas, slopes=slopes, ratios=ratios, curves=res.loss)
    return rep


# --- R4: negative momentum ------------------------------------------------------------------------------------------


def r4_negative_momentum(preset: str = "ci") -> Reproduction:
    """R4: alpha_opt at beta = 0, then beta_opt on -0.6:0.6:0.05 (b = 1, tau = 1, N = T)."""
    P = PRESETS["R4"][preset]
    N = P["N"]
    rep = Reproduction(
        "R4",
        "negative optimal momentum in the noise-dominated phase",
        "paper Figure (beta_opt < 0)",
        f"SD N=T={N}, b=1, tau=1",
    )
    rules = {(1.5, 4): ((0.10, 0.13), (-0.25, -0.05)), (2, 8): ((0.22, 0.27), (-0.25, -0.05))}
    out = {}
    for nu, kappa in P["pairs"]:
        lam = power_law_spectrum(N, nu)
        c = power_law_coefficients(N, kappa)
        a = optimal_alpha(lam, c, N, 0.0, 1.0, 1.0)
        bo = optimal_beta(lam, c, N, a.value, None, 1.0, 1.0)
        L0 = float(bo.losses[np.argmin(np.abs(bo.grid))])
        cond = negative_momentum_condition(nu, kappa, N)
        out[(nu, kappa)] = dict(
            alpha_opt=a.value, beta_opt=bo.value, gain=L0 / bo.loss, E10=cond, betas=bo.grid, losses=bo.losses
        )
        tag = f"({nu}, {kappa})"
        if (nu, kappa) in rules and N == 3000:
            (alo, ahi), (blo, bhi) = rules[(nu, kappa)]
            rep.check(f"alpha_opt {tag}", f"[{alo}, {ahi}]", f"{a.value:.4f}", alo <= a.value <= ahi)
        if (nu, kappa) in rules:
            (blo, bhi) = rules[(nu, kappa)][1]
            rep.check(f"beta_opt {tag}", f"[{blo}, {bhi}]", f"{bo.value:+.2f}", blo <= bo.value + 1e-9 <= bhi + 2e-9)
        elif (nu, kappa) == (2, 3):
            rep.check(f"beta_opt {tag}", ">= 0", f"{bo.value:+.2f}", bo.value >= -1e-9)
        else:
            rep.check(f"beta_opt {tag}", "within one grid step of 0", f"{bo.value:+.2f}", abs(bo.value) <= 0.05 + 1e-9)
        if abs(bo.value) >= 0.1 - 1e-9:
            rep.check(f"sign(E10) {tag}", "= -sign(beta_opt)", f"E10 {cond:+.3g}", np.sign(cond) == -np.sign(bo.value))
    rep.data["pairs"] = out
    return rep


# --- R5: budget independence ----------------------------------------------------------------------------------------


def r5_budget() -> Reproduction:
    """R5 (Figure D): with alpha proportional to b the loss depends on t*b only (N = 1000, nu = 1.5, kappa = 1)."""
    rep = Reproduction(
        "R5",
        "budget independence: alpha ~ b makes L a function of t*b",
        "paper Figure D",
        "SD N=1000, nu=1.5, kappa=1, t*b=1600",
    )
    N = 1000
    lam = power_law_spectrum(N, 1.5)
    c = power_law_coefficients(N, 1.0)
    bs = (1, 2, 4, 8, 16)
    prop, fixed, curves = [], [], {}
    for b in bs:
        T = 1600 // b
        Lp = sd_run(lam, c, T, 0.02 * b, 0.0, batch_noise_factor(N, b), 1.0).loss
        Lf = sd_run(lam, c, T, 0.3, 0.0, batch_noise_factor(N, b), 1.0).loss
        prop.append(float(Lp[-1] / Lp[0]))
        fixed.append(float(Lf[-1] / Lf[0]))
        curves[b] = (Lp, Lf)
    r_prop, r_fixed = max(prop) / min(prop), max(fixed) / min(fixed)
    rep.check("alpha=0.02b max/min L/L0", "<= 1.01 (pilot 1.0007)", f"{r_prop:.4f}", r_prop <= 1.01)
    rep.check("alpha=0.3 max/min L/L0", ">= 2 (pilot 4.3)", f"{r_fixed:.2f}", r_fixed >= 2)
    rep.data.update(bs=bs, prop=prop, fixed=fixed, curves=curves)
    return rep


# --- R6: stability map ----------------------------------------------------------------------------------------------


def r6_stability_map(preset: str = "ci", T: int = 2000) -> Reproduction:
    """R6 (Figure C): SD L_T/L_0 over (alpha, beta), b in {1, 10}; cells away from alpha_c(beta) by 10% obey it."""
    n = PRESETS["R6"][preset]["n"]
    N = 1000
    rep = Reproduction(
        "R6",
        "stability map follows U~(1) = 1; minimum at beta < 0",
        "paper Figure C (heat maps)",
        f"SD N=1000, nu=1.5, kappa=3, {n}x{n}, T={T}",
    )
    lam = power_law_spectrum(N, 1.5)
    c = power_law_coefficients(N, 3.0)
    alphas = 4.0 * np.arange(1, n + 1) / n
    betas = -1 + (2 * np.arange(n) + 1) / n
    maps = {}
    for b in (1, 10):
        g = batch_noise_factor(N, b)
        A, B = np.meshgrid(alphas, betas, indexing="ij")
        res = sd_run(lam, c, T, torch.tensor(A.ravel()), torch.tensor(B.ravel()), g, 1.0)
        ratio = (res.loss[:, -1] / res.loss[:, 0]).numpy().reshape(n, n)
        a_c = critical_alpha(lam, betas, g, 1.0)
        below = A <= 0.9 * a_c[None, :]
        above = A >= 1.1 * a_c[None, :]
        bad_below = int((below & ~(ratio < 1)).sum())
        bad_above = int((above & ~(~np.isfinite(ratio) | (ratio > 1))).sum())
        rep.check(
            f"b={b} misclassified cells",
            "0 outside +-10% of alpha_c",
            f"{bad_below + bad_above}",
            bad_below + bad_above == 0,
        )
        finite = np.where(np.isfinite(ratio), ratio, np.inf)
        i, j = np.unravel_index(np.argmin(finite), finite.shape)
        rep.check(f"b={b} grid minimum beta", "< 0 (pilot -0.22 / -0.17)", f"{betas[j]:+.2f}", betas[j] < 0)
        maps[b] = dict(ratio=ratio, alpha_c=a_c, best=(alphas[i], betas[j]))
    rep.data.update(alphas=alphas, betas=betas, maps=maps)
    return rep


ALL = {
    "R1": r1_regimes,
    "R2": r2_critical,
    "R3": r3_phases,
    "R4": r4_negative_momentum,
    "R5": r5_budget,
    "R6": r6_stability_map,
}


def run(rid: str, preset: str = "ci", seed: int = 42) -> Reproduction:
    """Run reproduction `rid` at `preset` ("ci", "full" or "demo"). `seed` drives R1 (data subset, init, batch
    streams; the rules were fixed at 42); R2-R6 are deterministic."""
    fn = ALL[rid]
    if rid == "R1":
        return fn(preset, seed)
    if rid in ("R3", "R4", "R6"):
        return fn(preset)
    return fn()
