"""Figures of the reproductions R1-R6 (common.plotting style; Agg). Each function takes a `Reproduction` and a path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from common.plotting import new_figure, save_figure, use_style


def _curve(x) -> np.ndarray:
    return torch.as_tensor(x).double().cpu().numpy()


def plot_r1(rep, path: Path) -> Path:
    use_style()
    keys = [k for k in rep.data if k.startswith("curves_b")]
    fig, axes = new_figure("R1: four regimes on digits (N = 1000)", "step t", "train loss L_t", ncols=len(keys))
    for ax, k in zip(np.atleast_1d(axes), keys):
        for label, c in rep.data[k].items():
            c = _curve(c)
            t = rep.data["nn_steps"].numpy() if label.startswith("NN") else np.arange(len(c))
            ax.loglog(t[1:], c[1:], label=label)
        fit = rep.data["fit"]
        t = np.arange(10, len(_curve(rep.data[k]["SD tau=+1"])))
        from sgd_genfunc.theory import signal_asymptote

        zeta = fit["kappa"] / fit["nu"]
        ax.loglog(t, signal_asymptote(t, fit["K"], zeta, 1.2), "k:", label=f"signal asymptote t^-{zeta:.2f}")
        ax.set_title(
            f"b = {k[8:]}; nu = {fit['nu']:.2f}+-{fit['nu_std']:.2f}, kappa = {fit['kappa']:.2f}"
            f"+-{fit['kappa_std']:.2f}",
            fontsize=8,
        )
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_r2(rep, path: Path) -> Path:
    use_style()
    from sgd_genfunc.problems import power_law_spectrum
    from sgd_genfunc.theory import asymptote_minus1, asymptote_plus1, batch_noise_factor, critical_alpha

    lam = power_law_spectrum(1000, 1.5)
    betas = np.linspace(-0.99, 0.99, 100)
    fig, ax = new_figure("R2: critical alpha (N = 1000, nu = 1.5, tau = 1)", "momentum beta", "alpha_c(beta)")
    for b in (1, 10, 100):
        g = batch_noise_factor(1000, b)
        ax.plot(betas, critical_alpha(lam, betas, g, 1.0), label=f"b = {b}")
        ax.plot(betas[betas > 0.5], asymptote_plus1(betas[betas > 0.5], g, lam), ":", lw=1)
    ax.plot(betas, asymptote_minus1(betas), "k--", lw=1, label="2(1+beta)/lambda_max")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_r3(rep, path: Path) -> Path:
    use_style()
    from sgd_genfunc.theory import loss_exponent

    fig, axes = new_figure("R3: loss exponents (nu = 1.5)", "step t", "L_t", ncols=2)
    curves = rep.data["curves"]
    for kappa, c in zip(rep.data["kappas"], curves):
        c = _curve(c)
        axes[0].loglog(np.arange(1, len(c)), c[1:], label=f"kappa = {kappa}")
    axes[0].legend(fontsize=7)
    ks = np.linspace(0.2, 4.5, 100)
    axes[1].plot(ks, [loss_exponent(1.5, k) for k in ks], "k-", label="min(kappa/nu, 2-1/nu)")
    axes[1].plot(rep.data["kappas"], [-s for s in rep.data["slopes"]], "o", label="fitted")
    axes[1].axvline(2.0, ls=":", c="gray")
    axes[1].set_xlabel("kappa")
    axes[1].set_ylabel("loss exponent xi")
    axes[1].legend(fontsize=7)
    return save_figure(fig, path)


def plot_r4(rep, path: Path) -> Path:
    use_style()
    fig, ax = new_figure("R4: L_T(beta) at alpha_opt (b = 1)", "momentum beta", "L_T / L_T(beta=0)")
    for (nu, kappa), d in rep.data["pairs"].items():
        L0 = d["losses"][np.argmin(np.abs(d["betas"]))]
        ax.plot(
            d["betas"], d["losses"] / L0, "o-", ms=3, label=f"nu={nu}, kappa={kappa}: beta_opt={d['beta_opt']:+.2f}"
        )
    ax.set_ylim(0.95, 1.1)
    ax.axvline(0, c="gray", ls=":")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_r5(rep, path: Path) -> Path:
    use_style()
    fig, axes = new_figure("R5: budget independence (N = 1000)", "t * b", "L / L_0", ncols=2)
    for b, (Lp, Lf) in rep.data["curves"].items():
        for ax, L in zip(axes, (Lp, Lf)):
            L = _curve(L)
            t = np.arange(1, len(L)) * b
            ax.loglog(t, L[1:] / L[0], label=f"b = {b}")
    axes[0].set_title("alpha = 0.02 b", fontsize=9)
    axes[1].set_title("alpha = 0.3", fontsize=9)
    axes[0].legend(fontsize=7)
    return save_figure(fig, path)


def plot_r6(rep, path: Path) -> Path:
    use_style()
    from sgd_genfunc.problems import power_law_spectrum
    from sgd_genfunc.theory import asymptote_minus1, asymptote_plus1, batch_noise_factor

    maps = rep.data["maps"]
    fig, axes = new_figure("R6: log10 L_T/L_0 over (beta, alpha)", "momentum beta", "step alpha", ncols=len(maps))
    alphas, betas = rep.data["alphas"], rep.data["betas"]
    lam = rep.data.get("lam", power_law_spectrum(1000, 1.5))
    for ax, (b, m) in zip(np.atleast_1d(axes), maps.items()):
        r = np.where(np.isfinite(m["ratio"]), m["ratio"], 1e30)
        im = ax.pcolormesh(
            betas, alphas, np.log10(np.clip(r, 1e-30, 1e30)), shading="nearest", cmap="viridis", vmin=-6, vmax=6
        )
        ax.plot(betas, m["alpha_c"], "w-", label="U~(1) = 1")
        ax.plot(betas, asymptote_minus1(betas), "r--", lw=1, label="beta -> -1")
        pos = betas > 0
        ax.plot(
            betas[pos],
            asymptote_plus1(betas[pos], batch_noise_factor(len(lam), b), lam),
            "m--",
            lw=1,
            label="beta -> 1",
        )
        ax.plot(*m["best"][::-1], "r*", ms=10, label="minimum")
        ax.set_ylim(0, alphas.max())
        ax.set_title(f"b = {b}", fontsize=9)
        ax.legend(fontsize=6)
        fig.colorbar(im, ax=ax)
    return save_figure(fig, path)


PLOTS = {"R1": plot_r1, "R2": plot_r2, "R3": plot_r3, "R4": plot_r4, "R5": plot_r5, "R6": plot_r6}


def plot(rep, out_dir: Path) -> Path:
    """Save the figure of reproduction `rep` as <out_dir>/<rid>.png."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return PLOTS[rep.rid](rep, out_dir / f"{rep.rid}.png")
