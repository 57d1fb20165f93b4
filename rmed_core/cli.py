"""The ``rmed`` command (also ``python -m rmed_core``).

    rmed sweep SPEC [--workers N | --scheduler tcp://HOST:PORT] [--store DIR] [--dry-run]
                    [--recompute-corrupt]
    rmed bundle NAME SPEC [SPEC ...] [--store DIR]     (export finished runs: rmed_core.runs.bundle)
    rmed train [--task T] [--opt O [O ...]] [--scale S] [--seed N] [--lr X] [--steps N]
               [--probe-every N] [--tune]                (one run, or a learning-rate tuning)

Exit status: 0 when every grid point is in the store, 1 when a point failed, 2 for a bad
specification or usage, 130 when interrupted (run the same command again to finish).

A stored run whose files no longer match the SHA-256 hashes of its ``COMPLETE`` record (edited,
truncated, an empty or garbled record) is *corrupt*: the sweep reports it as failed, naming the
damaged file, and exits 1. ``--recompute-corrupt`` deletes such runs and computes them again.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rmed", description="R_med reproduction: experiments from the command line.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sweep", help="run a grid of training runs or notebook executions on a Dask cluster",
                       description="Run every grid point of SPEC (a .yaml/.toml file, see book/sweeps.md) that the "
                                   "result store does not hold yet, in parallel. Resumable: run it again after an "
                                   "interruption and only what is missing is computed.")
    s.add_argument("spec", help="the sweep specification (.yaml, .yml or .toml)")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, metavar="N",
                       help="worker processes of the local cluster (default: one per core)")
    where.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                       help="use the running Dask cluster at this address instead of a local one")
    s.add_argument("--store", default=None, metavar="DIR",
                   help="the result store (default: $RMED_RESULTS, else <repository>/results)")
    s.add_argument("--retries", type=int, default=3, metavar="N",
                   help="resubmissions of a point whose worker died (local cluster; default 3)")
    s.add_argument("--dry-run", action="store_true", help="list what would run and what is stored; start nothing")
    s.add_argument("--recompute-corrupt", action="store_true",
                   help="delete and compute again the stored runs whose files fail the content check of their "
                        "COMPLETE record (default: report them as failed, exit status 1)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--skip-bundle", default=None, metavar="NAME",
                   help="skip the points results bundle NAME already holds (a study committed in parts; "
                        "`rmed bundle NAME ... --partial` keeps them)")
    b = sub.add_parser("bundle", help="export a finished sweep's tables as a results bundle (bundles/NAME)",
                       description="Write bundles/NAME/{runs,loss,rmed,probe,eig}.csv and provenance.json from every "
                                   "run point of the SPECs, which must all be finished in the store.")
    b.add_argument("name", help="the bundle's name (a folder under bundles/)")
    b.add_argument("specs", nargs="+", help="the sweep specifications whose runs it holds")
    b.add_argument("--store", default=None, metavar="DIR",
                   help="the result store (default: $RMED_RESULTS, else <repository>/results)")
    b.add_argument("--partial", action="store_true",
                   help="export the finished points only; the missing ones are listed in provenance.json")
    t = sub.add_parser("train", help="train (and probe) one run per optimizer into the store, or tune the rate",
                       description="One run per optimizer (rmed_core.runs.trainer.train), stored; with --tune, the "
                                   "learning-rate tuning on the task's grid (rmed_core.runs.tuning.tune_lr).")
    t.add_argument("--task", default="ptb_lm")
    t.add_argument("--opt", default=["adam"], nargs="+", help="one or more optimizer names (default: adam)")
    t.add_argument("--scale", default="ci")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--lr", type=float, default=None)
    t.add_argument("--steps", type=int, default=None)
    t.add_argument("--probe-every", type=int, default=None)
    t.add_argument("--tune", action="store_true", help="tune the learning rate on the task's grid instead")
    return p


def _train(args: argparse.Namespace) -> int:
    from .runs.config import TrainConfig
    from .runs.trainer import train
    from .runs.tuning import tune_lr

    try:
        configs = [TrainConfig(task=args.task, opt=opt, scale=args.scale, seed=args.seed, lr=args.lr,
                               steps=args.steps, probe_every=args.probe_every) for opt in args.opt]
    except ValueError as e:
        print(f"rmed train: {e}", file=sys.stderr)
        return 2
    for c in configs:
        if args.tune:
            best, table = tune_lr(c.task, c.opt, c.scale, seed=c.seed, steps=c.steps, progress=True)
            print(table.to_string(index=False), f"\nbest lr for {c.opt}: {best:g}", flush=True)
            continue
        r = train(c)
        print(f"{c.task}/{c.scale} {c.opt}: {r.status}, final loss {r.loss['loss'].iloc[-1]:.4f}, wall "
              f"{r.provenance['wall_time_s']} s (probes {r.provenance['probe_time_s']} s), from store: "
              f"{r.from_store}, {r.dir}", flush=True)
        if len(r.rmed):
            print(r.rmed.pivot_table(index="layer", columns="step", values="r_med").round(1).to_string(), flush=True)
    return 0


def _bundle(args: argparse.Namespace) -> int:
    from .runs.bundle import export_bundle
    from .runs.sweep_spec import SpecError

    command = "rmed bundle " + " ".join([args.name, *args.specs] + (["--store", args.store] if args.store else [])
                                        + (["--partial"] if args.partial else []))
    try:
        out = export_bundle(args.name, args.specs, store=args.store, command=command, partial=args.partial)
    except (SpecError, ValueError) as e:
        print(f"rmed bundle: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    import pandas as pd

    from .runs.store import ResultStore
    from .runs.sweep import plan, run_sweep
    from .runs.sweep_spec import SpecError, load_spec

    if args.workers is not None and args.workers < 1:
        print("rmed sweep: --workers must be at least 1", file=sys.stderr)
        return 2
    try:
        sweep = load_spec(args.spec)
    except SpecError as e:
        print(f"rmed sweep: {e}", file=sys.stderr)
        return 2
    store = ResultStore(args.store)
    held = None
    if args.skip_bundle is not None:
        from .runs.bundle import bundle_configs, bundle_names

        if args.skip_bundle not in bundle_names():
            print(f"rmed sweep: --skip-bundle {args.skip_bundle!r}: no such bundle (have: "
                  f"{', '.join(bundle_names()) or 'none'})", file=sys.stderr)
            return 2
        held = bundle_configs(args.skip_bundle)
    if args.dry_run:
        table = plan(sweep, store)
        n, bad = int(table["stored"].sum()), int(table["corrupt"].sum())
        corrupt = "corrupt (would recompute)" if args.recompute_corrupt else "corrupt (fails; --recompute-corrupt)"
        table["stored"] = [corrupt if c else ("stored (skip)" if s else "would run")
                           for s, c in zip(table["stored"], table["corrupt"])]
        with pd.option_context("display.max_rows", None, "display.width", 200):
            print(table.drop(columns="corrupt").to_string(index=False))
        print(f"\n{sweep.name}: {len(table)} points, {n} in the store {store.root}, {bad} corrupt, "
              f"{len(table) - n - bad} to run")
        return 0
    report = run_sweep(sweep, store, workers=args.workers, scheduler=args.scheduler, retries=args.retries,
                       progress=not args.no_progress, recompute_corrupt=args.recompute_corrupt, held=held)
    print(report.summary())
    if report.counts["interrupted"]:
        print(f"interrupted: {report.counts['interrupted']} points left; run the same command again to finish them",
              file=sys.stderr)
        return 130
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rmed`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "bundle":
        return _bundle(args)
    if args.command == "train":
        return _train(args)
    raise AssertionError(args.command)  # argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
