"""Run AutoWU on a synthetic loss curve (DESIGN.md §4.3) and print switch step, eta_sw, peak and test time.

python autowu/simulate.py --curve bowl --noise 0.05 --reference
"""

from __future__ import annotations

import time
import warnings

from autowu.harness import open_autowu_run, write_rows_csv
from autowu.plots import plot_trace
from autowu.synthetic import BOWL_MIN_LR, CURVES, CurveRun
from common.cli import ArgumentParser, UsageError, add_run_args, nonneg_float, positive_int, run_main
from common.runs import progress

CHOICES = ("bowl", "flat", "decreasing", "nan", "jump")


def build_parser():
    p = ArgumentParser(description=__doc__.split("\n")[0])
    g = p.add_argument_group("curve")
    extra = ", ".join(sorted(set(CURVES) - set(CHOICES)))
    g.add_argument("--curve", default="bowl", metavar="NAME", help=f"one of {', '.join(CHOICES)} (also {extra})")
    g.add_argument("--noise", type=nonneg_float, default=0.05, metavar="SIGMA", help="noise sd sigma of the loss")
    g.add_argument("--steps-per-epoch", type=positive_int, default=50, metavar="S", help="steps per epoch")
    g.add_argument("--epochs", type=positive_int, default=60, metavar="E", help="epochs")
    g.add_argument("--reference", action="store_true", help="also run the reference procedure (autowu.reference)")
    g.add_argument("--gp-fit", default="lbfgs", choices=("lbfgs", "adam"), help="GP fit of our test")
    g.add_argument("--save-dir", default=None, metavar="DIR", help="run directory (overrides --out/--name)")
    add_run_args(p, dash=True, devices=("cpu",), tensorboard=False)  # a scalar curve: nothing to put on a GPU
    return p


def _run_one(args, label, **kw):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = CurveRun(args.curve, args.noise, args.seed, args.steps_per_epoch, args.epochs, **kw)
        bar = progress(total=run.total_steps, desc=label, disable=args.no_progress)
        try:
            run.run_until(callback=lambda _: bar.update(1))
        except FloatingPointError as exc:
            print(f"{label}: {exc}")
        finally:
            bar.close()
    res = run.result(time.perf_counter() - t0)
    per_test = res.test_seconds / max(len(res.test_log), 1)
    print(
        f"{label}: switch step {res.switch_step}, eta_sw {res.switch_lr:.5g}, peak {res.peak_lr:.5g}, reason "
        f"{res.reason}, tests {len(res.test_log)}, {per_test * 1e3:.1f} ms/test, total {res.seconds:.1f} s"
    )
    return res


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.curve not in CURVES:
        raise UsageError(f"--curve must be one of {', '.join(sorted(CURVES))}; got {args.curve!r}")
    run_dir = open_autowu_run("simulate", args, name=args.name, root=args.out, save_dir=args.save_dir)
    ours = _run_one(args, "ours", gp_fit=args.gp_fit)
    summary = {
        "curve": args.curve,
        "noise": args.noise,
        "seed": args.seed,
        "switch_step": ours.switch_step,
        "switch_lr": ours.switch_lr,
        "peak_lr": ours.peak_lr,
        "reason": ours.reason,
        "tests": len(ours.test_log),
        "test_seconds": ours.test_seconds,
        "seconds": ours.seconds,
        "true_min_lr": BOWL_MIN_LR,
    }
    rows = {"lr": ours.lrs, "loss": ours.losses}
    if args.reference:
        from autowu.reference import ReferenceGPTest

        ref = _run_one(args, "reference", test_factory=ReferenceGPTest)
        summary.update(
            ref_switch_step=ref.switch_step,
            ref_switch_lr=ref.switch_lr,
            ref_peak_lr=ref.peak_lr,
            ref_reason=ref.reason,
            ref_test_seconds=ref.test_seconds,
            test_time_ratio=ref.test_seconds / max(ours.test_seconds, 1e-9),
        )
        rows["ref_lr"] = ref.lrs
    if run_dir.primary:
        trace = [{"step": i + 1, **{k: v[i] for k, v in rows.items()}} for i in range(len(ours.lrs))]
        write_rows_csv(run_dir.path / "trace.csv", trace)
        write_rows_csv(run_dir.path / "tests.csv", ours.test_log)
        run_dir.save_figure(
            plot_trace(ours.lrs, ours.losses, ours.switch_step, f"AutoWU on '{args.curve}'"), "trace.png"
        )
    run_dir.finish(summary)
    return 0


if __name__ == "__main__":
    run_main(main)
