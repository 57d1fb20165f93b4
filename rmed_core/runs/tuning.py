"""The final-loss rule, once: how a run's training loss is scored, and the learning-rate tuning
that picks the rate with the lowest score.

The score of a run is its **final loss**: the mean mini-batch training loss over the last 10% of its
iterations (at least one), ``inf`` when the run diverged. :func:`final_loss_of` is the rule;
:func:`tune_lr` and :func:`rmed_core.study.premise.final_loss` apply it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..tasks import LR_GRID
from .config import TrainConfig
from .store import ResultStore
from .trainer import train

__all__ = ["final_loss_of", "tune_lr"]

def final_loss_of(losses: Sequence[float], *, diverged: bool = False) -> float:
    """The final loss of one run: the mean of the last ``max(1, n // 10)`` of its ``n`` mini-batch
    losses ``inf`` when the run diverged or a loss is not finite.

    >>> final_loss_of([5.0] * 18 + [2.0, 4.0])  # the last 2 of 20 iterations
    3.0
    >>> final_loss_of([1.0, float("nan")])
    inf
    """
    values = np.asarray(losses, dtype=float)
    if values.size == 0:
        raise ValueError("losses: a run with no iterations has no final loss")
    if diverged or not np.isfinite(values).all():
        return math.inf
    return float(values[-max(1, values.size // 10):].mean())


def tune_lr(task: str, opt: str, scale: str, *, grid: tuple[float, ...] = LR_GRID, seed: int = 0,
            steps: int | None = None, store: ResultStore | None = None, progress: bool = False
            ) -> tuple[float, pd.DataFrame]:
    """Pick ``opt``'s learning rate for ``task`` at ``scale`` from ``grid`` by the final training
    loss: the mean mini-batch loss over the last 10% of steps (seed ``seed``, no probes). A
    diverged run scores ``inf``. Returns ``(best_lr, table)`` with one row per learning rate."""
    rows = []
    for lr in grid:
        r = train(TrainConfig(task=task, opt=opt, lr=lr, seed=seed, scale=scale, steps=steps, probe_every=0),
                  store, progress=progress)
        final = final_loss_of(r.loss["loss"].to_numpy(), diverged=r.diverged)
        rows.append(dict(task=task, opt=opt, scale=scale, lr=lr, final_loss=final, diverged=r.diverged,
                         wall_time_s=r.provenance.get("wall_time_s")))
    table = pd.DataFrame(rows)
    return float(table.loc[table["final_loss"].idxmin(), "lr"]), table
