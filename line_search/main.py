"""Train one configuration from the seed's config file (spec 4.1): `python line_search/main.py`.

Reads ./config.json if present, else the bundled line_search/config.json (INI with [DEFAULT], or JSON), applies
--set KEY=VALUE overrides, trains with the chosen optimizer and writes the run dir results/line_search/main/<name>/
(config.json, the input config copy, metrics.csv, epochs.csv, summary.json, SysOut.txt, checkpoint.pt, plots).
Under torchrun each rank trains on its shard with DDP; rank 0 writes.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

import torch

from common.cli import ArgumentParser, UsageError, nonneg_int, positive_int, run_main
from common.distributed import init_distributed, is_primary, torchrun_env
from common.runs import Run, open_run
from common.runtime import resolve_device, set_threads
from line_search.harness.builders import build_model
from line_search.harness.config import apply_overrides, build_optimizer, read_config, resolve, run_name
from line_search.harness.data import load_task
from line_search.harness.trainer import fit

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
    g.add_argument("--seed", type=int, default=None, help="overrides the config's seed")
    g.add_argument("--data_root", metavar="DIR", default="data", help="dataset files")
    r = p.add_argument_group("run")
    r.add_argument("--device", default="auto", help="auto|cpu|cuda")
    r.add_argument("--out", metavar="DIR", default=None, help="run dir (default results/line_search/main/<name>)")
    r.add_argument("--resume", action="store_true", help="continue from <run dir>/checkpoint.pt")
    r.add_argument("--ckpt_every", type=nonneg_int, default=0, metavar="N", help="checkpoint every N steps (0: epoch)")
    r.add_argument("--threads", type=positive_int, default=None, metavar="N", help="torch CPU threads")
    r.add_argument("--compile", action="store_true", help="torch.compile the model")
    r.add_argument("--no_progress", action="store_true", help="hide tqdm bars")
    r.add_argument("--no_plots", action="store_true", help="skip loss.png, step_size.png, forwards.png")
    lg = p.add_argument_group("logging")
    lg.add_argument("--tensorboard", action="store_true", help="also log to TensorBoard")
    lg.add_argument("--wandb", action="store_true", help="also log to Weights & Biases (needs `pip install wandb`)")
    lg.add_argument("--wandb_project", default="line_search", help="wandb project")
    return p


class _Tee:
    """Copy writes to a second stream (the seed's SysOut.txt)."""

    def __init__(self, stream, handle):
        self.stream, self.handle = stream, handle

    def write(self, text):
        self.handle.write(text)
        return self.stream.write(text)

    def flush(self):
        self.handle.flush()
        self.stream.flush()

    def __getattr__(self, name):
        return getattr(self.stream, name)


def load_run_config(args) -> tuple[dict, Path, str]:
    path = (
        Path(args.config_file)
        if args.config_file
        else (Path("config.json") if Path("config.json").is_file() else BUNDLED)
    )
    raw, text = read_config(path)
    raw = apply_overrides(raw, args.set)
    if args.seed is not None:
        raw["seed"] = args.seed
    return resolve(raw), path, text


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    if args.train_type == "mlm":
        raise UsageError("mlm pre-training is not supported")
    cfg, cfg_path, cfg_text = load_run_config(args)
    wandb = None
    if args.wandb:
        try:
            import wandb
        except ImportError:
            raise UsageError("--wandb needs the wandb package: pip install wandb") from None
    if args.threads:
        set_threads(args.threads)
    device = resolve_device(args.device)
    env = torchrun_env()
    if env.distributed:
        init_distributed(device)
        if device.type == "cuda":
            device = torch.device("cuda", env.local_rank)
    tokenizer = None
    if cfg["model"] == "bert" and cfg["model_path"]:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(cfg["model_path"])
    task = load_task(cfg["dataset"], args.data_root, cfg["n_train"], cfg["n_test"], cfg["max_len"], tokenizer)
    if (task.kind == "nlp") != (cfg["type"] == "nlp"):
        raise UsageError(f"config type {cfg['type']!r} does not match dataset {cfg['dataset']!r}")
    torch.manual_seed(cfg["seed"])
    model = build_model(cfg["model"], task, cfg["num_hidden_dims"], cfg["model_path"], cfg["max_len"])
    if cfg["checkpoint"]:
        model.load_state_dict(torch.load(cfg["checkpoint"], map_location="cpu"))
    model.to(device)
    steps_per_epoch = -(-len(task.train) // (cfg["batch_size"] * env.world_size))
    opt, sched = build_optimizer(cfg, model, steps_per_epoch * cfg["epochs"], seed=cfg["seed"])
    net = model
    if env.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if args.compile:
        net = torch.compile(net)

    if args.out:
        run = Run(Path(args.out), primary=is_primary(), tensorboard=args.tensorboard)
        if is_primary():
            run.path.mkdir(parents=True, exist_ok=True)
    else:
        run = open_run("line_search", "main", None, name=run_name(cfg), tensorboard=args.tensorboard)
    if is_primary():
        run.write_json(
            "config.json", {**cfg, "config_file": str(cfg_path), "device": str(device), "world": env.world_size}
        )
        (run.path / f"input_{cfg_path.name}").write_text(cfg_text)
    wb = wandb.init(project=args.wandb_project, config=cfg) if (wandb and is_primary()) else None
    started = time.time()
    sysout = open(run.path / "SysOut.txt", "a") if is_primary() else None
    with contextlib.redirect_stdout(_Tee(sys.stdout, sysout)) if sysout else contextlib.nullcontext():
        res = fit(cfg, net, opt, sched, task.train, task.test, task.kind, device, run, resume=args.resume,
                  ckpt_every=args.ckpt_every, show_progress=not args.no_progress, wandb_run=wb,
                  plots=not args.no_plots)  # fmt: skip
        last = next((e for e in reversed(res.epochs) if "val_acc" in e), {})
        summary = {
            "status": res.status,
            "final_train_loss": last.get("full_train_loss"),
            "val_acc": last.get("val_acc"),
            "val_loss": last.get("val_loss"),
            "forwards_per_step": res.forwards / max(res.steps, 1),
            "forwards_per_step_after_200": res.late_forwards / res.late_steps if res.late_steps else None,
            "search_fraction": res.searches / max(res.steps, 1),
            "n_fail": res.n_fail,
            "steps": res.steps,
            "time_per_step": res.step_time / max(res.steps, 1),
            "wall_s": round(time.time() - started, 3),
            "optim": cfg["optim"],
            "dataset": cfg["dataset"],
            "seed": cfg["seed"],
        }
        if res.message:
            summary["message"] = res.message
            print(f"diverged: {res.message}")
        run.finish(summary)
    if sysout:
        sysout.close()
    if wb is not None:
        wb.finish()
    return json.loads(json.dumps(summary))


if __name__ == "__main__":
    run_main(main)
