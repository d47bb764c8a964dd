"""What every sgd_genfunc script shares (DESIGN.md §4): flags, problem building, the config grid, the run directory,
per-config resume files, metrics.csv, loss.png and summary rows. Scripts stay thin: parse, build, run, write.
"""

from __future__ import annotations

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
    announce_resume,
    expand_grid,
    nonneg_int,
    positive_float,
    positive_int,
)
from common.runs import Run, open_run, progress
from common.runtime import resolve_device, seed_everything, set_threads

PAPER = "sgd_genfunc"
NET_DATASETS = ("digits", "mnist5k", "mnist", "cifar10", "bike_sharing", "sgemm_product", "diabetes", "olivetti_faces")
THEORY_DATASETS = ("synthetic", "digits", "mnist5k", "mnist", "cifar10", "bike_sharing", "sgemm_product", "diabetes")


def make_parser(description: str) -> ArgumentParser:
    return ArgumentParser(description=description)


def add_run_block(parser: ArgumentParser, devices: tuple[str, ...] | None = None) -> None:
    """The run flags of common.cli (seed 42 as in the seed, --device validated, no --tensorboard: these scripts write
    curves, not per-step event streams) and the seed's --save_dir (the run folder itself)."""
    add_run_args(parser, devices=devices, tensorboard=False)
    parser.set_defaults(seed=42)
    parser.add_argument(
        "--save_dir", default=None, metavar="DIR", help="run dir (default <out>/sgd_genfunc/<script>/<name>)"
    )


def add_common_args(parser: ArgumentParser, n_steps: int = 10000) -> None:
    """Flags of DESIGN.md §4 shared by all training scripts (grid, sizes, run dir, resume)."""
    g = parser.add_argument_group("grid (every combination with --aggr_type prod, paired with zip)")
    g.add_argument("--lr", type=float, nargs="+", default=[1.0], metavar="ALPHA", help="step sizes alpha (E2 units)")
    g.add_argument("--momentum", type=float, nargs="+", default=[0.0], metavar="BETA", help="momenta beta")
    g.add_argument("--batch_size", type=int, nargs="+", default=[10], metavar="B", help="batch sizes b")
    g.add_argument("--aggr_type", choices=("prod", "zip"), default="prod", help="grid expansion")
    s = parser.add_argument_group("sizes")
    s.add_argument("--n_steps", type=nonneg_int, default=n_steps, metavar="T", help="SGD steps")
    s.add_argument("--N", type=int, default=1000, metavar="N", help="train-set size")
    s.add_argument("--replacement", action="store_true", help="draw batch indices with replacement (gamma = 1/b)")
    add_run_block(parser)
    r = parser.add_argument_group("run directory")
    r.add_argument("--workers", type=nonneg_int, default=0, metavar="K", help="torch threads (0: common default)")
    r.add_argument("--resume", action="store_true", help="skip configs already stored in the run dir")


def add_lr_scale_arg(parser: ArgumentParser) -> None:
    """--lr_scale of the network scripts (train_nn, train_4_regimes*): torch lr = alpha * S."""
    parser.add_argument(
        "--lr_scale",
        type=positive_float,
        default=None,
        metavar="S",
        help="NN lr = alpha * S (default N / lambda_max of the initial empirical NTK)",
    )


def add_basis_arg(parser) -> None:
    """--basis of the synthetic kernel scripts (train_linearized, train_full)."""
    parser.add_argument(
        "--basis", choices=("orthogonal", "hadamard"), default="orthogonal", help="synthetic eigenvectors"
    )


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
    s.add_argument("--a", type=float, default=1.0, metavar="A", help="Jacobi parameter a (> -1)")
    s.add_argument("--b", type=float, default=1.0, metavar="B", help="Jacobi parameter b (> -1)")


def step_schedules(cfg: dict, args) -> tuple:
    """(alpha, beta) of one config: the constants, or the Jacobi schedules alpha_n, beta_n (--sched jacobi, whose
    base step is the config's alpha; its beta is ignored)."""
    if getattr(args, "sched", "constant") == "jacobi":
        from sgd_genfunc.schedules import JacobiScheduleA, JacobiScheduleB

        return JacobiScheduleA(cfg["alpha"], args.a, args.b), JacobiScheduleB(args.a, args.b)
    return cfg["alpha"], cfg["beta"]


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
    if not 0.0 <= getattr(args, "lambda_min", 0.0) < 1.0:
        raise UsageError(f"--lambda_min must lie in [0, 1), got {args.lambda_min}")
    if getattr(args, "sched", "constant") == "jacobi" and (args.a <= -1 or args.b <= -1):
        raise UsageError(f"--sched jacobi needs --a > -1 and --b > -1, got {args.a}, {args.b}")
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
        K, y = load_saved_kernel(args.data_path)
        lam, U, c, lm = spectral_data(K, -y)
        prob = KernelProblem(K / lm, -y, lam, U, c, lm, None, y, None)
    elif args.dataset == "synthetic":
        basis = getattr(args, "basis", "orthogonal")
        prob = synthetic_problem(args.N, args.nu, args.kappa, args.lambda_min, args.kappa_clamp, basis, args.seed)
    else:
        model = getattr(args, "ntk_model", "mlp")
        prob = real_problem(args.dataset, args.N, args.data_root, args.seed, args.hidden_dim, model)
    if device is not None:
        prob = prob._replace(**{k: getattr(prob, k).to(device) for k in ("K_tilde", "d0", "lam", "U", "c")})
    return prob


SAVED_KERNEL_KEYS = ("NTK_train_train", "target_train_train")


def load_saved_kernel(path) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, y) from a --data_path file: a torch file holding plain tensors under NTK_train_train, target_train_train.

    Loaded with ``weights_only=True``: a file that needs anything but tensors and plain containers (a pickled object
    that would run code) is refused with one line (exit 2), and nothing in it is executed.
    """
    import pickle

    if not path or not Path(path).is_file():
        raise MissingInputError(f"--from_saved needs an existing --data_path, got {path!r}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"--data_path {path}: not a plain tensor file, refused to load ({first})") from None
    if not isinstance(saved, dict) or any(not isinstance(saved.get(k), torch.Tensor) for k in SAVED_KERNEL_KEYS):
        raise UsageError(f"--data_path {path}: need a dict of tensors with keys {', '.join(SAVED_KERNEL_KEYS)}")
    K, y = saved["NTK_train_train"].double(), saved["target_train_train"].double().reshape(-1)
    if K.ndim != 2 or K.shape != (y.shape[0], y.shape[0]):
        raise UsageError(f"--data_path {path}: NTK_train_train {tuple(K.shape)} does not match {y.shape[0]} targets")
    return K, y


def open_script_run(script: str, args) -> Run:
    """The run dir: <out>/sgd_genfunc/<script>/<name> (common.runs.open_run), or the seed's --save_dir, which names
    the run folder itself (the seed's meaning, kept)."""
    config = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    if args.save_dir:
        path = Path(args.save_dir)
        if path.exists() and not path.is_dir():
            raise UsageError(f"--save_dir {path} exists and is not a folder")
        # open_run builds <root>/<paper>/<experiment>/<name>; empty paper and experiment parts give the folder as is
        return open_run("", "", config, name=path.name or None, root=path.parent)
    return open_run(PAPER, script, config, name=args.name, root=args.out)


def progress_bar(args, total: int, desc: str):
    """A tqdm bar (common.runs.progress) over `total` units, hidden by --no_progress."""
    return progress(total=total, desc=desc, disable=args.no_progress, leave=False)


class ConfigStore:
    """Finished configs stored atomically (common.checkpoint) under <run dir>/configs/, for --resume (DESIGN.md §9)."""

    def __init__(self, run: Run, resume: bool):
        self.dir = Path(run.path) / "configs"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.resume = resume
        done = sorted(self.dir.glob("cfg_*.pt")) if resume else []
        if done:
            announce_resume(self.dir, f"{len(done)} finished config(s)")

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
    """All steps if n_steps <= 2000, else 400 log-spaced steps (DESIGN.md §4)."""
    if n_steps <= 2000:
        return np.arange(n_steps + 1)
    return np.unique(np.concatenate([[0], np.geomspace(1, n_steps, 400).round().astype(int)]))


def write_metrics(run: Run, rows: list[tuple[tuple, str, int, torch.Tensor]], key_names: list[str], n_steps: int):
    """metrics.csv (and .jsonl) in long form through Run.log: config keys, regime, run, step, loss (DESIGN.md §4).

    The files are rewritten from the stored configs, so a resumed run holds each row once.
    """
    for name in ("metrics.csv", "metrics.jsonl"):
        (Path(run.path) / name).unlink(missing_ok=True)
    steps = log_steps(n_steps)
    for key, regime, r, curve in rows:
        vals = curve.detach().cpu().double().numpy()
        for s in steps[steps < len(vals)]:
            run.log(step=int(s), **dict(zip(key_names, key)), regime=regime, run=r, loss=float(vals[s]))


def log_table(run: Run, name: str, rows: list[dict]) -> Path:
    """Write `rows` as <name>.csv and <name>.jsonl through Run.log (the step column is the row index).

    Run.log appends to metrics.csv; the finished table is moved to its own name, so call it before any other
    Run.log of the script (the tables of tune_alpha_beta and phase_exponents).
    """
    for i, row in enumerate(rows):
        run.log(step=i, **row)
    target = Path(run.path) / f"{name}.csv"
    if run.primary:
        (Path(run.path) / "metrics.csv").replace(target)
        (Path(run.path) / "metrics.jsonl").replace(target.with_suffix(".jsonl"))
    return target


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


def wall(t0: float) -> float:
    return round(time.time() - t0, 3)
