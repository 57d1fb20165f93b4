"""Grids of training runs for the figure notebooks: run (or load from the store) every
combination, and return the tidy tables the figures are drawn from.

Every notebook calls :func:`run_grid` with the same defaults, so a run that two chapters show is
trained once and read from the result store afterwards.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
from tqdm.auto import tqdm

from .bundle import find_run
from .store import ResultStore
from .trainer import RunResult, TrainConfig, train
from .validation import SCALES, check_choice

__all__ = ["Grid", "learning_rates", "run_grid", "seeds_for"]

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
    bundle holds (:func:`rmed_core.bundle.find_run`: the same configuration) is read from it, not
    trained; its provenance names the bundle.

    Args:
        lr: learning rate per optimizer; others take the task's tuned value.
        **overrides: further :class:`~rmed_core.trainer.TrainConfig` fields (``steps``,
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
