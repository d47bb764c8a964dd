"""Train one configuration from the seed's config file (DESIGN.md §4.1): `python line_search/main.py`.

Reads ./config.json if present, else the bundled line_search/config.json (INI with [DEFAULT], or JSON), applies
--set KEY=VALUE overrides, trains with the chosen optimizer and writes the run folder <out>/line_search/main/<name>/
(config.json, the input config copy, metrics.csv, epochs.csv, summary.json, SysOut.txt, checkpoint.pt, plots).
Under torchrun each rank trains on its shard with DDP; rank 0 writes.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from common.cli import ArgumentParser, UsageError, add_run_args, announce_resume, nonneg_int, positive_int, run_main
from common.distributed import init_distributed, is_primary, torchrun_env
from common.runs import open_run
from common.runtime import resolve_device, set_threads
from line_search.harness.config import apply_overrides, read_config, resolve, run_name
from line_search.harness.experiment import train_config
from line_search.harness.trainer import RunOptions

BUNDLED = Path(__file__).with_name("config.json")


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="main.py", description=__doc__.split("\n")[0])
    g = p.add_argument_group("config")
    g.add_argument(
        "--config_file",
        metavar="PATH",
        default=None,
        help="INI or JSON config (default: ./config.json if present, else line_search/config.json)",
    )
    g.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], help="override a config key")
    g.add_argument("--train_type", choices=("cls", "mlm"), default="cls", help="classification (mlm: unsupported)")
    g.add_argument("--data_root", metavar="DIR", default="data", help="dataset files")
    add_run_args(p)
    for action in p._actions:  # the seed's meaning: --seed overrides the config's seed only when typed
        if action.dest == "seed":
            action.help = "overrides the config's seed (default: the config's)"
        if action.dest == "name":
            action.help = (
                "run folder name (default: basename of the config's `directory`; `default`: <dataset>_<optim>_s<seed>)"
            )
    r = p.add_argument_group("training")
    r.add_argument("--resume", action="store_true", help="continue from <run folder>/checkpoint.pt")
    r.add_argument("--ckpt_every", type=nonneg_int, default=0, metavar="N", help="checkpoint every N steps (0: epoch)")
    r.add_argument("--threads", type=positive_int, default=None, metavar="N", help="torch CPU threads")
    r.add_argument("--compile", action="store_true", help="torch.compile the model")
    r.add_argument("--no_plots", action="store_true", help="skip loss.png, step_size.png, forwards.png")
    lg = p.add_argument_group("logging")
    lg.add_argument("--wandb", action="store_true", help="also log to Weights & Biases (needs `pip install wandb`)")
    lg.add_argument("--wandb_project", default="line_search", help="wandb project")
    return p


class _StdoutHandler(logging.StreamHandler):
    """A handler that writes to whatever sys.stdout is at the time of the record (tests swap it)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:
        pass


def console_logging() -> None:
    """Show the ``line_search`` logger's INFO lines (epoch summaries) on stdout, once per process."""
    logger = logging.getLogger("line_search")
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)


class sysout_log:
    """Copy the ``line_search`` log lines of one run into its SysOut.txt (the seed's log file)."""

    def __init__(self, path: Path | None) -> None:
        self.handler = logging.FileHandler(path) if path is not None else None

    def __enter__(self):
        if self.handler is not None:
            self.handler.setFormatter(logging.Formatter("%(message)s"))
            logging.getLogger("line_search").addHandler(self.handler)
        return self

    def __exit__(self, *exc) -> None:
        if self.handler is not None:
            logging.getLogger("line_search").removeHandler(self.handler)
            self.handler.close()


def load_run_config(args, explicit: set[str]) -> tuple[dict, Path, str]:
    path = (
        Path(args.config_file)
        if args.config_file
        else (Path("config.json") if Path("config.json").is_file() else BUNDLED)
    )
    raw, text = read_config(path)
    raw = apply_overrides(raw, args.set)
    if "seed" in explicit:
        raw["seed"] = args.seed
    return resolve(raw), path, text


def main(argv=None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.train_type == "mlm":
        raise UsageError("mlm pre-training is not supported")
    cfg, cfg_path, cfg_text = load_run_config(args, parser.explicit)
    wandb = None
    if args.wandb:
        try:
            import wandb
        except ImportError:
            raise UsageError("--wandb needs the wandb package: pip install wandb") from None
    if args.threads:
        set_threads(args.threads)
    console_logging()
    device = resolve_device(args.device)
    env = torchrun_env()
    if env.distributed:
        init_distributed(device)
        if device.type == "cuda":
            import torch

            device = torch.device("cuda", env.local_rank)
    name = args.name or run_name(cfg)
    record = {**cfg, "config_file": str(cfg_path), "device": str(device), "world": env.world_size}
    run = open_run("line_search", "main", record, name=name, root=args.out, tensorboard=args.tensorboard)
    if is_primary():
        (run.path / f"input_{cfg_path.name}").write_text(cfg_text)
    wb = wandb.init(project=args.wandb_project, config=cfg) if (wandb and is_primary()) else None
    opts = RunOptions(device=device, data_root=args.data_root, resume=args.resume, ckpt_every=args.ckpt_every,
                      show_progress=not args.no_progress, plots=not args.no_plots, compile=args.compile,
                      wandb_run=wb, on_resume=announce_resume)  # fmt: skip
    with sysout_log(run.path / "SysOut.txt" if is_primary() else None):
        summary = train_config(cfg, run, opts)
    if summary.get("message"):
        print(f"diverged: {summary['message']}")
    if wb is not None:
        wb.finish()
    run.finish(summary)
    return json.loads(json.dumps(summary))


if __name__ == "__main__":
    run_main(main)
