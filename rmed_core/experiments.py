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

from .store import ResultStore
from .trainer import RunResult, TrainConfig, train
from .validation import SCALES, check_choice

__all__ = ["Grid", "run_grid", "seeds_for"]

#: How many seeds each scale uses for comparisons over seeds (the paper reports mean (std) over runs).
SEEDS_PER_SCALE = {"ci": 2, "book": 3, "paper": 5}


def seeds_for(scale: str, first: int = 0) -> list[int]:
    """The seeds a comparison uses at ``scale``: ``first, first + 1, ...``."""
    return list(range(first, first + SEEDS_PER_SCALE[check_choice("scale", scale, SCALES)]))


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
    """Train (or load) every ``task × opt × seed`` at ``scale``.

    Args:
        lr: learning rate per optimizer; others take the task's tuned value.
        **overrides: further :class:`~rmed_core.trainer.TrainConfig` fields (``steps``,
            ``device``, ``probe_top_eig``...), the same for every run.
    """
    configs = [TrainConfig(task=t, opt=o, seed=s, scale=scale, lr=(lr or {}).get(o), **overrides)
               for t, o, s in itertools.product(tasks, opts, seeds)]  # validates before any work
    results = [train(c, store, progress=False) for c in tqdm(configs, disable=not progress, desc="runs")]
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
