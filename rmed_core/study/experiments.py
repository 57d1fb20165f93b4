"""Grids of training runs for the figure notebooks: run (or load from the store or a results
bundle) every combination, and return the tidy tables the figures are drawn from.

Every notebook calls :func:`run_grid` with the same defaults, so a run that two chapters show is
trained once and read from the result store afterwards. A chapter at a scale whose study is kept
as a results bundle (``bundles/<scale>/``, made by ``rmed bundle <scale> SPEC...``) asks
:func:`study_grid` for the runs, which reads the bundle's learning rates, seeds and probe schedule
(:func:`bundled_runs`) so that :func:`run_grid` finds every run in the bundle and trains nothing;
:func:`tuning_runs` returns the learning-rate tuning behind the comparison the same way.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..runs.bundle import find_run
from ..runs.store import ResultStore
from ..runs.bundle import bundle_names
from ..runs.results import load_results
from ..tasks import LR_GRID, get_task
from ..runs.config import RunResult, TrainConfig
from ..runs.trainer import train
from ..validation import SCALES, check_choice

__all__ = ["Grid", "BundledRuns", "Tuning", "learning_rates", "run_grid", "seeds_for", "bundled_runs", "study_grid",
           "tuning_runs", "describe_grid", "setup_sentence"]

#: How many seeds each scale uses for comparisons over seeds (the paper reports mean (std) over runs).
SEEDS_PER_SCALE = {"ci": 2, "book": 3, "study": 5, "study-10k": 5, "paper": 5}


def seeds_for(scale: str, first: int = 0) -> list[int]:
    """The seeds a comparison uses at ``scale``: ``first, first + 1, ...``."""
    return list(range(first, first + SEEDS_PER_SCALE[check_choice("scale", scale, SCALES)]))


def learning_rates(lr: float | str | None, opts: Sequence[str]) -> dict[str, float] | None:
    """A notebook's ``lr`` parameter as :func:`run_grid`'s ``lr`` mapping.

    ``None`` (every optimizer takes the task's tuned value), a number (that learning rate for every
    optimizer in ``opts``), or a string ``"sgdm:0.1,adam:0.01"`` (per optimizer, ``=`` works as well
    as ``:``; the ones not named take their tuned value).

    >>> learning_rates(0.01, ["sgdm", "adam"])
    {'sgdm': 0.01, 'adam': 0.01}
    >>> learning_rates("adam=1e-3", ["sgdm", "adam"])
    {'adam': 0.001}
    """
    if lr is None or lr == "":
        return None
    if isinstance(lr, bool):
        raise ValueError(f"lr={lr!r}: expected a number, 'opt:value,...' or None")
    if isinstance(lr, (int, float)):
        return {o: float(lr) for o in opts}
    out: dict[str, float] = {}
    for item in str(lr).split(","):
        name, sep, value = item.replace(":", "=").partition("=")
        try:
            if not sep:
                return {o: float(item) for o in opts}
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"lr={lr!r}: expected a number, 'opt:value,...' (e.g. 'sgdm:0.1,adam:0.01') "
                             f"or None") from None
    unknown = sorted(set(out) - set(opts))
    if unknown:
        raise ValueError(f"lr={lr!r} names {unknown}, which this notebook does not train; it trains {list(opts)}")
    return out


@dataclass
class Grid:
    """The runs of a grid and their tables, each row labelled ``task, opt, lr, seed``."""

    results: list[RunResult]
    loss: pd.DataFrame
    rmed: pd.DataFrame
    eig: pd.DataFrame
    provenance: list[dict] = field(default_factory=list)

    @property
    def diverged(self) -> list[RunResult]:
        """The runs whose loss became non-finite."""
        return [r for r in self.results if r.diverged]


def run_grid(tasks: Sequence[str], opts: Sequence[str], seeds: Sequence[int], *, scale: str,
             lr: dict[str, float] | None = None, store: ResultStore | None = None, progress: bool = True,
             **overrides) -> Grid:
    """Train (or load) every ``task × opt × seed`` at ``scale``. A run that a committed results
    bundle holds (:func:`rmed_core.runs.bundle.find_run`: the same configuration) is read from it, not
    trained; its provenance names the bundle.

    Args:
        lr: learning rate per optimizer; others take the task's tuned value.
        **overrides: further :class:`~rmed_core.runs.config.TrainConfig` fields (``steps``,
            ``device``, ``probe_top_eig``...), the same for every run.
    """
    configs = [TrainConfig(task=t, opt=o, seed=s, scale=scale, lr=(lr or {}).get(o), **overrides)
               for t, o, s in itertools.product(tasks, opts, seeds)]  # validates before any work
    results = [find_run(c) or train(c, store, progress=False)
               for c in tqdm(configs, disable=not progress, desc="runs")]
    tables = {"loss": [], "rmed": [], "eig": []}
    for r in results:
        ids = dict(task=r.config.task, opt=r.config.opt, lr=r.config.lr, seed=r.config.seed, status=r.status)
        for name in tables:
            df = getattr(r, name)
            if len(df):
                tables[name].append(df.assign(**ids))
    frames = {k: pd.concat(v, ignore_index=True) if v else pd.DataFrame() for k, v in tables.items()}
    if len(frames["rmed"]) and "index" in frames["rmed"]:
        frames["rmed"] = frames["rmed"].rename(columns={"index": "layer_index"})
    return Grid(results, frames["loss"], frames["rmed"], frames["eig"], [r.provenance for r in results])


# -- the study a results bundle holds -------------------------------------------------------------
#: The run fields a grid sets itself; every other field of a bundled run's configuration is passed on.
_GRID_KEYS = ("task", "opt", "lr", "seed", "scale")


@dataclass(frozen=True)
class BundledRuns:
    """The probed runs of one task that a results bundle holds, as :func:`run_grid` asks for them."""

    bundle: str
    task: str
    lr: dict[str, float]  #: the learning rate of each optimizer held
    seeds: list[int]  #: the seeds held under every one of those optimizers
    config: dict[str, Any]  #: the other :class:`~rmed_core.runs.config.TrainConfig` fields (steps, probe schedule...)


def bundled_runs(task: str, scale: str, opts: Sequence[str]) -> BundledRuns | None:
    """The study of ``task`` that the results bundle named ``scale`` holds: its *probed* runs (the
    tuning sweeps do not probe) under ``opts``, for each optimizer at the learning rate it holds
    with the most seeds. ``None`` when there is no such bundle under :data:`rmed_core.runs.bundle.BUNDLES`
    (``$RMED_BUNDLES``) or it holds no probed run of ``task`` under any of ``opts``."""
    if scale not in bundle_names():
        return None
    runs = load_results("runs", bundle=scale, task=task, opt=list(opts))
    runs = runs[runs.probe_steps.fillna("").astype(str).str.strip() != ""]
    if runs.empty:
        return None
    lr = {o: float(g.groupby("lr").seed.nunique().idxmax()) for o, g in runs.groupby("opt")}
    chosen = runs[[math.isclose(r.lr, lr[r.opt], rel_tol=1e-12) for r in runs.itertuples()]]
    seeds = sorted(set.intersection(*(set(g.seed) for _, g in chosen.groupby("opt"))))
    if not seeds:
        return None
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - set(_GRID_KEYS)
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(chosen.config.iloc[0]).items()
              if k in fields}
    return BundledRuns(scale, task, lr, [int(s) for s in seeds], config)


def _rate_or_hint(task: str, opt: str, scale: str) -> None:
    """Raise the task's "no tuned learning rate" error, with how a results bundle would answer."""
    try:
        get_task(task).default_lr(opt, scale)
    except ValueError as e:
        raise ValueError(f"{e}; or build the results bundle {scale!r} that holds these runs (`rmed sweep SPEC`, then "
                         f"`rmed bundle {scale} SPEC...`), which the chapters read") from None


def study_grid(task: str, opts: Sequence[str], *, scale: str, lr: float | str | None = None, seed: int = 0,
               steps: int | None = None, progress: bool = True) -> Grid:
    """The runs a chapter compares on ``task``.

    When the results bundle named ``scale`` holds a study of ``task`` (:func:`bundled_runs`), its
    runs: the bundle's learning rates, seeds (as many as it holds, from ``seed``) and probe
    schedule, which :func:`run_grid` reads from the bundle. ``lr`` (a notebook's parameter, see
    :func:`learning_rates`) or ``steps`` ask for other runs, trained with the study's other
    settings. Without a bundle: the scale's tuned learning rates (or ``lr``) and
    :func:`seeds_for` ``(scale, seed)``, trained or read from the store.
    """
    rates = learning_rates(lr, opts) or {}
    held = bundled_runs(task, scale, opts)
    extra = {"steps": steps} if steps else {}
    if held is None:
        for o in opts:
            if o not in rates:
                _rate_or_hint(task, o, scale)
        return run_grid([task], opts, seeds_for(scale, seed), scale=scale, lr=rates or None, progress=progress,
                        **extra)
    for o in opts:
        if o not in rates and o not in held.lr:
            _rate_or_hint(task, o, scale)
    seeds = held.seeds if seed == held.seeds[0] else list(range(seed, seed + len(held.seeds)))
    return run_grid([task], opts, seeds, scale=scale, lr={**held.lr, **rates}, progress=progress,
                    **{**held.config, **extra})


# -- the learning-rate tuning behind a comparison ------------------------------------------------
@dataclass
class Tuning:
    """The tuning runs of a comparison: their training loss (columns ``task, opt, lr, seed, status,
    step, loss, diverged``), one provenance record per run, and where they come from."""

    loss: pd.DataFrame
    provenance: list[dict]
    source: str


def _neighbours(rate: float) -> list[float]:
    """``rate`` and the rates of :data:`rmed_core.tasks.LR_GRID` on either side of it."""
    grid = np.log(np.asarray(LR_GRID))
    i = int(np.argmin(np.abs(grid - math.log(rate))))
    return sorted({*(LR_GRID[j] for j in (i - 1, i + 1) if 0 <= j < len(LR_GRID)), float(rate)})


def tuning_runs(task: str, opts: Sequence[str], *, scale: str, around: dict[str, float], seed: int = 0,
                steps: int | None = None, progress: bool = True) -> Tuning:
    """The learning-rate tuning behind a comparison of ``opts`` on ``task``.

    From the results bundle named ``scale`` when it holds runs of a tuning sweep (a specification
    whose name ends in ``tuning``) of ``task`` and ``steps`` asks for nothing else. Otherwise
    trained (or read from the store): each optimizer at ``around[opt]`` and at the rates of
    :data:`rmed_core.tasks.LR_GRID` on either side, seed ``seed``, no probes.
    """
    if not steps and scale in bundle_names():
        runs = load_results("runs", bundle=scale, task=task, opt=list(opts))
        runs = runs[runs.sweep.astype(str).str.endswith("tuning")]
        if len(runs):
            loss = load_results("loss", bundle=scale, run=list(runs.run))
            loss = loss.merge(runs[["run", "status"]], on="run", how="left")
            keep = ("sweep", "device", "threads", "wall_time_s", "code_version", "git_commit")
            prov = [{"bundle": scale, **{k: r[k] for k in keep if k in r and not pd.isna(r[k])}}
                    for _, r in runs.iterrows()]
            return Tuning(loss, prov, f"results bundle {scale!r} ({', '.join(sorted(set(runs.sweep)))})")
    frames, prov = [], []
    for o in opts:
        for rate in _neighbours(around[o]):
            g = run_grid([task], [o], [seed], scale=scale, lr={o: rate}, progress=progress, probe_every=0,
                         **({"steps": steps} if steps else {}))
            frames.append(g.loss)
            prov += g.provenance
    return Tuning(pd.concat(frames, ignore_index=True), prov, "trained (or read from the result store)")


# -- what was run ---------------------------------------------------------------------------------
def _span(values: Sequence[int]) -> str:
    v = sorted(set(int(x) for x in values))
    return f"{v[0]}–{v[-1]}" if v == list(range(v[0], v[-1] + 1)) and len(v) > 2 else ", ".join(map(str, v))


def describe_grid(grid: Grid) -> pd.DataFrame:
    """What a grid ran, one row per task and optimizer: learning rate, seeds, iterations, batch
    size, the model and data sizes of the task at that scale, the fixed Hessian batch (and its
    tokens for a language model), the probe steps, the R_med method, and where the runs come from."""
    rows = []
    for (task, opt), rs in itertools.groupby(sorted(grid.results, key=lambda r: (r.config.task, r.config.opt)),
                                             key=lambda r: (r.config.task, r.config.opt)):
        rs = list(rs)
        c = rs[0].config
        t, spec = get_task(task), get_task(task).spec(c.scale)
        seq_len = spec.data.get("seq_len")
        vocab = getattr(t.data(c.scale), "vocab_size", None) if "seq_len" in spec.data else None
        model = ((f"d_model {spec.model['d_model']}, {spec.model['n_layers']} block{'s' * (spec.model['n_layers'] > 1)}, "
                  f"{spec.model['n_heads']} heads")
                 if "d_model" in spec.model else f"width {spec.model.get('width')}")
        sources = sorted({r.provenance.get("bundle") and f"bundle {r.provenance['bundle']}" or
                          ("result store" if r.from_store else "trained") for r in rs})
        rows.append({"task": task, "opt": opt, "lr": c.lr, "seeds": _span([r.config.seed for r in rs]),
                     "iterations": c.steps, "batch size": c.batch_size, "model": model,
                     "data": (f"{spec.data['level'] + '-level, ' if 'level' in spec.data else ''}vocabulary "
                              f"{vocab:,}, T = {seq_len}" if vocab else "images"),
                     "Hessian batch": f"{c.hessian_batch}" + (f" sequences ({c.hessian_batch * seq_len} tokens)"
                                                              if seq_len else " images"),
                     "probes at": ", ".join(map(str, c.probe_steps)) or "none", "R_med": c.probe_method,
                     "diverged": sum(r.diverged for r in rs), "from": ", ".join(sources)})
    return pd.DataFrame(rows)


def setup_sentence(grid: Grid, task: str) -> str:
    """One sentence saying what was run on ``task`` (from :func:`describe_grid`), for the prose."""
    d = describe_grid(grid)
    d = d[d.task == task]
    if d.empty:
        raise ValueError(f"task={task!r}: the grid has no run of it")
    first = d.iloc[0]
    rates = ", ".join(f"{r.opt} at learning rate {r.lr:g}" for r in d.itertuples())
    what = re.sub(r" \((the|this) [^)]*\)", "", get_task(task).description)
    data = "" if first["data"] == "images" else f"; {first['data']}"
    return (f"{what}{data}; {first['model']}; batch "
            f"{first['batch size']}, {first['iterations']:,} iterations; {rates}; seeds {first['seeds']}; R_med "
            f"({first['R_med']}) of every parameter tensor on a fixed batch of {first['Hessian batch']} at iterations "
            f"{first['probes at']}")
