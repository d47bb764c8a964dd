"""What every sgd_genfunc script shares (spec 4): flags, problem building, the config grid, the run directory,
per-config resume files, metrics.csv, loss.png and summary rows. Scripts stay thin: parse, build, run, write.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from common.checkpoint import load_checkpoint, save_checkpoint
from common.cli import (
    ArgumentParser,
    MissingInputError,
    UsageError,
    add_run_args,
    expand_grid,
    nonneg_int,
    positive_int,
)
from common.runs import Run, open_run
from common.runtime import resolve_device, seed_everything, set_threads

PAPER = "sgd_genfunc"
NET_DATASETS = ("digits", "mnist5k", "mnist", "cifar10", "bike_sharing", "sgemm_product", "diabetes", "olivetti_faces")
THEORY_DATASETS = ("synthetic", "digits", "mnist5k", "mnist", "cifar10", "bike_sharing", "sgemm_product", "diabetes")


def make_parser(description: str) -> ArgumentParser:
    return ArgumentParser(description=description)


def add_common_args(parser: ArgumentParser, n_steps: int = 10000) -> None:
    """Flags of spec 4 shared by all training scripts (grid, sizes, run dir, resume)."""
    g = parser.add_argument_group("grid (every combination with --aggr_type prod, paired with zip)")
    g.add_argument("--lr", type=float, nargs="+", default=[1.0], metavar="ALPHA", help="step sizes alpha (E2 units)")
    g.add_argument("--momentum", type=float, nargs="+", default=[0.0], metavar="BETA", help="momenta beta")
    g.add_argument("--batch_size", type=int, nargs="+", default=[10], metavar="B", help="batch sizes b")
    g.add_argument("--aggr_type", choices=("prod", "zip"), default="prod", help="grid expansion")
    s = parser.add_argument_group("sizes")
    s.add_argument("--n_steps", type=nonneg_int, default=n_steps, metavar="T", help="SGD steps")
    s.add_argument("--N", type=int, default=1000, metavar="N", help="train-set size")
    s.add_argument("--replacement", action="store_true", help="draw batch indices with replacement (gamma = 1/b)")
    add_run_args(parser)
    parser.set_defaults(seed=42)
    r = parser.add_argument_group("run directory")
    r.add_argument(
        "--save_dir", default=None, metavar="DIR", help="run dir (default results/sgd_genfunc/<script>/<name>)"
    )
    r.add_argument("--workers", type=nonneg_int, default=0, metavar="K", help="torch threads (0: common default)")
    r.add_argument("--resume", action="store_true", help="skip configs already stored in the run dir")


def add_data_args(
    parser: ArgumentParser, datasets=THEORY_DATASETS, default: str = "synthetic", synthetic: bool = True
) -> None:
    """Data flags: dataset, data root, kernel model; synthetic power-law flags when `synthetic`."""
    d = parser.add_argument_group("data")
    d.add_argument("--dataset", default=default, metavar="NAME", help=f"one of {', '.join(datasets)}")
    d.add_argument("--data_root", "--data-root", dest="data_root", default="./data", metavar="DIR", help="data folder")
    d.add_argument("--hidden_dim", type=positive_int, default=1000, metavar="H", help="hidden width of the net")
    if synthetic:
        d.add_argument("--ntk_model", choices=("infinite", "mlp"), default="infinite", help="kernel (real data)")
        d.add_argument("--from_saved", action="store_true", help="read the kernel from --data_path")
        d.add_argument(
            "--data_path", default=None, metavar="F", help="torch file with NTK_train_train, target_train_train"
        )
        d.add_argument("--nu", type=float, default=1.0, metavar="NU", help="spectral exponent (synthetic)")
        d.add_argument("--kappa", type=float, default=1.0, metavar="KAPPA", help="target exponent (synthetic)")
        d.add_argument("--lambda_min", type=float, default=0.0, metavar="L", help="spectrum floor (synthetic)")
        d.add_argument("--kappa_clamp", type=nonneg_int, default=0, metavar="K", help="flat c_k for k <= K")
    parser.set_defaults(_datasets=datasets)


def add_schedule_args(parser: ArgumentParser) -> None:
    s = parser.add_argument_group("schedule")
    s.add_argument("--sched", choices=("constant", "jacobi"), default="constant", help="constant or Jacobi alpha/beta")
    s.add_argument("--a", type=float, default=1.0, metavar="A", help="Jacobi parameter a")
    s.add_argument("--b", type=float, default=1.0, metavar="B", help="Jacobi parameter b")


def add_tracking_args(parser: ArgumentParser) -> None:
    t = parser.add_argument_group("tracking")
    t.add_argument("--track_diag_err", action="store_true", help="store per-mode errors c_k")
    t.add_argument("--track_freq", type=positive_int, default=100, metavar="K", help="tracking period (steps)")


def setup(args) -> torch.device:
    """Validate the shared flags, set threads and seeds; returns the device."""
    if args.N < 2:
        raise UsageError(f"--N must be >= 2, got {args.N}")
    for lr in args.lr:
        if lr < 0 or not math.isfinite(lr):
            raise UsageError(f"--lr must be >= 0, got {lr}")
    for b in args.batch_size:
        if b < 1 or (b > args.N and not args.replacement):
            raise UsageError(f"--batch_size must lie in [1, N={args.N}], got {b}")
    dataset = getattr(args, "dataset", None)
    if dataset is not None and dataset not in args._datasets:
        raise UsageError(f"unknown dataset {dataset!r}; choose one of {', '.join(args._datasets)}")
    if getattr(args, "nu", 1.0) <= 0:
        raise UsageError(f"--nu must be > 0, got {args.nu}")
    if getattr(args, "kappa", 1.0) <= 0:
        raise UsageError(f"--kappa must be > 0, got {args.kappa}")
    set_threads(args.workers or None)
    seed_everything(args.seed)
    return resolve_device(args.device)


def configs(args) -> list[dict]:
    """The (b, alpha, beta) grid of --batch_size, --lr, --momentum with --aggr_type (common.cli.expand_grid)."""
    grid = expand_grid({"b": args.batch_size, "alpha": args.lr, "beta": args.momentum}, args.aggr_type)
    return [{"b": int(c["b"]), "alpha": float(c["alpha"]), "beta": float(c["beta"])} for c in grid]


def config_key(cfg: dict, args=None) -> tuple:
    """The reference's tuple key: (b, lr, beta), or (b, lr, a, b) under the Jacobi schedule."""
    if args is not None and getattr(args, "sched", "constant") == "jacobi":
        return (cfg["b"], cfg["alpha"], args.a, args.b)
    return (cfg["b"], cfg["alpha"], cfg["beta"])


def build_problem(args, device=None):
    """KernelProblem from the data flags: synthetic (E13), a saved kernel, or a real dataset."""
    from sgd_genfunc.problems import KernelProblem, real_problem, spectral_data, synthetic_problem

    if getattr(args, "from_saved", False):
        if not args.data_path or not Path(args.data_path).is_file():
            raise MissingInputError(f"--from_saved needs an existing --data_path, got {args.data_path!r}")
        saved = torch.load(args.data_path, map_location="cpu", weights_only=False)
        K, y = torch.as_tensor(saved["NTK_train_train"]).double(), torch.as_tensor(saved["target_train_train"])
        lam, U, c, lm = spectral_data(K, -y.double().reshape(-1))
        prob = KernelProblem(K / lm, -y.double().reshape(-1), lam, U, c, lm, None, y, None)
    elif args.dataset == "synthetic":
        basis = getattr(args, "basis", "orthogonal")
        prob = synthetic_problem(args.N, args.nu, args.kappa, args.lambda_min, args.kappa_clamp, basis, args.seed)
    else:
        model = getattr(args, "ntk_model", "mlp")
        prob = real_problem(args.dataset, args.N, args.data_root, args.seed, args.hidden_dim, model)
    if device is not None:
        prob = prob._replace(**{k: getattr(prob, k).to(device) for k in ("K_tilde", "d0", "lam", "U", "c")})
    return prob


def open_script_run(script: str, args) -> Run:
    """The run dir: --save_dir if given, else results/sgd_genfunc/<script>/<name> (common.runs)."""
    config = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    if args.save_dir:
        path = Path(args.save_dir)
        path.mkdir(parents=True, exist_ok=True)
        run = Run(path)
        run.write_json("config.json", config)
        return run
    return open_run(PAPER, script, config, name=args.name, root=args.out)


class ConfigStore:
    """Finished configs stored atomically (common.checkpoint) under <run dir>/configs/, for --resume (spec 9)."""

    def __init__(self, run: Run, resume: bool):
        self.dir = Path(run.path) / "configs"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.resume = resume

    def _path(self, key: tuple) -> Path:
        return self.dir / ("cfg_" + "_".join(str(k) for k in key).replace("/", "-") + ".pt")

    def get(self, key: tuple):
        p = self._path(key)
        if self.resume and p.exists():
            return load_checkpoint(p)["value"]
        return None

    def put(self, key: tuple, value) -> None:
        save_checkpoint(self._path(key), {"key": list(key), "value": value})


def save_pth(run: Run, name: str, obj) -> Path:
    """Write one of the reference's .pth files atomically, with exactly the reference's keys (common.checkpoint adds
    a version key, so this writes a temporary file and renames it itself)."""
    path = Path(run.path) / name
    tmp = path.with_name(f".{name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def log_steps(n_steps: int) -> np.ndarray:
    """All steps if n_steps <= 2000, else 400 log-spaced steps (spec 4)."""
    if n_steps <= 2000:
        return np.arange(n_steps + 1)
    return np.unique(np.concatenate([[0], np.geomspace(1, n_steps, 400).round().astype(int)]))


def write_metrics(run: Run, rows: list[tuple[tuple, str, int, torch.Tensor]], key_names: list[str], n_steps: int):
    """metrics.csv in long form: config keys, regime, run, step, loss (spec 4)."""
    steps = log_steps(n_steps)
    with open(Path(run.path) / "metrics.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*key_names, "regime", "run", "step", "loss"])
        for key, regime, r, curve in rows:
            vals = curve.detach().cpu().double().numpy()
            for s in steps[steps < len(vals)]:
                w.writerow([*key, regime, r, int(s), repr(float(vals[s]))])


def plot_losses(run: Run, curves: dict, title: str, name: str = "loss.png", max_panels: int = 12) -> None:
    """log-log L/L_0 per config (one panel each, first `max_panels` configs); curves: {key: {label: curve}}."""
    from common.plotting import new_figure, use_style

    use_style()
    keys = list(curves)[:max_panels]
    ncols = max(1, len(keys))
    fig, axes = new_figure(title, "step t", "L_t / L_0", ncols=ncols)
    axes = np.atleast_1d(axes)
    for ax, key in zip(axes, keys):
        for label, curve in curves[key].items():
            c = torch.as_tensor(curve).double()
            c = c.mean(0) if c.ndim == 2 else c
            t = np.arange(1, len(c))
            ax.loglog(t, (c[1:] / c[0]).numpy(), label=label)
        ax.set_title(str(key), fontsize=8)
        ax.legend(fontsize=6)
    run.save_figure(fig, name)


def finite(x: float):
    return x if math.isfinite(x) else str(x)


def sd_summary(key, curve: torch.Tensor, diverged_at: int, prob=None, cfg=None, gamma=None, tau=None) -> dict:
    """One summary.json row: final loss, diverged step, alpha_c and U~(1) (when the spectrum is known)."""
    from sgd_genfunc.theory import critical_alpha, u_tilde_at_1

    row = {"key": list(key), "final_loss": finite(float(curve[-1])), "diverged_at": int(diverged_at)}
    if prob is not None and cfg is not None and gamma is not None and tau is not None:
        row["alpha_c"] = finite(float(critical_alpha(prob.lam, cfg["beta"], gamma, tau)))
        row["U1"] = finite(u_tilde_at_1(prob.lam, cfg["alpha"], cfg["beta"], gamma, tau))
    return row


def first_divergence(curve: torch.Tensor) -> int:
    bad = ~torch.isfinite(torch.as_tensor(curve))
    return int(bad.nonzero()[0, 0]) if bool(bad.any()) else -1


def write_json(path: Path, obj) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, default=str) + "\n")


def wall(t0: float) -> float:
    return round(time.time() - t0, 3)
