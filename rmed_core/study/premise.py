"""The premise: Adam trains the language model faster than SGD with momentum, read from the
training losses -- the final loss (by the rule of :func:`rmed_core.runs.tuning.final_loss_of`),
the tuning table, and the iterations each optimizer needs to reach matched loss levels.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..runs.tuning import final_loss_of
from .verdict import claim

__all__ = ["final_loss", "tuning_table", "final_loss_claim", "smoothed_loss", "matched_loss_levels",
           "iterations_to_loss", "matched_loss_table", "premise_verdict"]

_RUN = ("task", "opt", "lr", "seed")


def _check_loss(loss: pd.DataFrame, by: Sequence[str]) -> None:
    missing = {"step", "loss", *by} - set(loss.columns)
    if missing:
        raise ValueError(f"loss: the table lacks columns {sorted(missing)}")


def final_loss(loss: pd.DataFrame, *, by: Sequence[str] = _RUN) -> pd.DataFrame:
    """Each run's final training loss by the rule of :func:`rmed_core.runs.tuning.tune_lr`: the mean
    mini-batch loss over the last 10% of its iterations, ``inf`` for a run that diverged (a
    ``status`` of ``diverged``, a row marked ``diverged``, or a non-finite loss).

    >>> t = pd.DataFrame({"task": "t", "opt": "adam", "lr": 0.1, "seed": 0, "step": range(20),
    ...                   "loss": [5.0] * 18 + [2.0, 4.0]})
    >>> float(final_loss(t).final_loss.iloc[0])  # the last 2 of 20 iterations
    3.0

    Returns:
        Columns ``*by, final_loss, diverged, iterations``.
    """
    _check_loss(loss, by)
    rows = []
    for key, g in loss.sort_values("step", kind="stable").groupby(list(by), sort=True):
        values = g.loss.to_numpy(dtype=float)
        diverged = bool(not np.isfinite(values).all()
                        or ("diverged" in g and g.diverged.astype(bool).any())
                        or ("status" in g and (g.status == "diverged").any()))
        rows.append({**dict(zip(by, key)), "final_loss": final_loss_of(values, diverged=diverged),
                     "diverged": diverged, "iterations": int(len(values))})
    return pd.DataFrame(rows, columns=[*by, "final_loss", "diverged", "iterations"])


def tuning_table(loss: pd.DataFrame) -> pd.DataFrame:
    """The learning-rate tuning of each optimizer, one row per ``(task, opt, lr)``: the final loss
    (:func:`final_loss`; mean over seeds where a rate was run with several), whether it diverged,
    ``best`` (the lowest final loss of that optimizer: :func:`rmed_core.runs.tuning.tune_lr`'s winner;
    none when every rate diverged) and ``at_edge`` (the winner is the smallest or the largest rate
    tried, so the grid may not bracket the optimum)."""
    f = final_loss(loss)
    t = (f.groupby(["task", "opt", "lr"], sort=True)
         .agg(final_loss=("final_loss", "mean"), diverged=("diverged", "any"), seeds=("seed", "nunique"),
              iterations=("iterations", "max"))
         .reset_index())
    t["best"] = False
    t["at_edge"] = False
    for _, g in t.groupby(["task", "opt"]):
        if not np.isfinite(g.final_loss).any():
            continue
        i = g.final_loss.idxmin()
        t.loc[i, "best"] = True
        t.loc[i, "at_edge"] = len(g) > 1 and t.loc[i, "lr"] in (g.lr.min(), g.lr.max())
    return t


def final_loss_claim(loss: pd.DataFrame, *, num: str = "sgdm", den: str = "adam"):
    """Whether ``den`` ends with the lower training loss than ``num``: the rule of
    :func:`rmed_core.study.verdict.claim` on the per-seed log-ratio of final losses
    :math:`\\log(L_\\mathrm{num} / L_\\mathrm{den})` (:func:`final_loss`; the two runs of a seed
    share initialisation and data order). ``reproduced`` means ``den`` is ahead; a seed in which
    either run diverged is left out and counted (``n_dropped``)."""
    f = final_loss(loss)
    if f.task.nunique() > 1:
        raise ValueError(f"loss: {f.task.nunique()} tasks; compare one task at a time")
    wide = f.pivot_table(index="seed", columns="opt", values="final_loss", aggfunc="first")
    for o in (num, den):
        if o not in wide:
            raise ValueError(f"loss: no run of opt={o!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(wide[num] / wide[den])
    return claim(pd.DataFrame({"seed": wide.index, "y": y.to_numpy()}))


def smoothed_loss(loss: pd.DataFrame, window: int, *, by: Sequence[str] = _RUN) -> pd.DataFrame:
    """``loss`` with a column ``smooth``: each run's running mean of the mini-batch loss over the
    last ``window`` iterations (fewer at the start)."""
    _check_loss(loss, by)
    if not (isinstance(window, (int, np.integer)) and window >= 1):
        raise ValueError(f"window={window!r}: expected an integer >= 1")
    df = loss.sort_values([*by, "step"], kind="stable")
    smooth = df.groupby(list(by), sort=False).loss.transform(lambda s: s.rolling(int(window), min_periods=1).mean())
    return df.assign(smooth=smooth)


def matched_loss_levels(loss: pd.DataFrame, *, window: int, fractions: Sequence[float] = (0.5, 0.2, 0.05, 0.0),
                        by: Sequence[str] = _RUN) -> list[float]:
    """Training-loss levels that every run reaches (runs that diverged are left out): with
    ``floor`` the largest over runs of each run's lowest smoothed loss (:func:`smoothed_loss`: the
    level the slowest run ends at) and ``ceiling`` the smallest over runs of its first one, the
    level ``floor + f (ceiling - floor)`` for each fraction ``f``.

    >>> t = pd.DataFrame({"task": "t", "opt": ["a"] * 3 + ["b"] * 3, "lr": 1.0, "seed": 0,
    ...                   "step": [0, 1, 2] * 2, "loss": [5.0, 3.0, 1.0, 5.0, 4.0, 3.0]})
    >>> matched_loss_levels(t, window=1, fractions=(0.5, 0.0))
    [4.0, 3.0]
    """
    s = smoothed_loss(loss, window, by=by)
    finite = s.groupby(list(by)).smooth.transform(lambda v: bool(np.isfinite(v).all())).astype(bool)
    s = s[finite]
    if s.empty:
        raise ValueError("loss: every run diverged")
    runs = s.groupby(list(by)).smooth
    floor, ceiling = float(runs.min().max()), float(runs.first().min())
    return [floor + float(f) * (ceiling - floor) for f in fractions]


def iterations_to_loss(loss: pd.DataFrame, levels: Sequence[float], *, window: int,
                       by: Sequence[str] = _RUN) -> pd.DataFrame:
    """The first iteration at which each run's smoothed training loss (:func:`smoothed_loss`) is
    at or below each level (NaN when it never is). Columns ``*by, level, step``."""
    s = smoothed_loss(loss, window, by=by)
    rows = []
    for key, g in s.groupby(list(by), sort=True):
        for level in levels:
            hit = g.step[g.smooth.to_numpy(dtype=float) <= level]
            rows.append({**dict(zip(by, key)), "level": float(level),
                         "step": float(hit.iloc[0]) if len(hit) else np.nan})
    return pd.DataFrame(rows, columns=[*by, "level", "step"])


def matched_loss_table(loss: pd.DataFrame, *, window: int, num: str = "sgdm", den: str = "adam",
                       fractions: Sequence[float] = (0.5, 0.2, 0.05, 0.0)) -> pd.DataFrame:
    """The optimizers compared at matched training loss: for each level of
    :func:`matched_loss_levels`, the median over seeds of the iterations each optimizer takes to
    reach it (:func:`iterations_to_loss`), and the rule of :func:`rmed_core.study.verdict.claim` on the
    per-seed log-ratio :math:`\\log(\\mathrm{iterations}_\\mathrm{num} / \\mathrm{iterations}_\\mathrm{den})`
    (``ratio`` above 1: ``num`` needs more iterations, ``den`` is faster).

    Returns:
        Columns ``level, fraction, <num> iterations, <den> iterations, ratio, lower, upper, p,
        verdict, n_seeds``.
    """
    levels = matched_loss_levels(loss, window=window, fractions=fractions)
    hits = iterations_to_loss(loss, levels, window=window)
    if hits.task.nunique() > 1:
        raise ValueError(f"loss: {hits.task.nunique()} tasks; compare one task at a time")
    rows = []
    for f, level in zip(fractions, levels):
        wide = hits[hits.level == level].pivot_table(index="seed", columns="opt", values="step", aggfunc="first")
        for o in (num, den):
            if o not in wide:
                raise ValueError(f"loss: no run of opt={o!r}")
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.log(wide[num].clip(lower=1) / wide[den].clip(lower=1))
        c = claim(pd.DataFrame({"seed": wide.index, "y": y.to_numpy()}))
        rows.append({"level": level, "fraction": float(f), f"{num} iterations": float(wide[num].median()),
                     f"{den} iterations": float(wide[den].median()), "ratio": c.ratio, "lower": c.lower,
                     "upper": c.upper, "p": c.p_greater, "verdict": c.verdict, "n_seeds": c.n_seeds})
    return pd.DataFrame(rows)


def premise_verdict(final: str, matched: str) -> str:
    """The verdict on "Adam is faster than SGD-M" from two verdicts of the rule of
    :func:`rmed_core.study.verdict.claim`: ``final`` on the ratio of final training losses
    (:func:`final_loss_claim`) and ``matched`` on the ratio of iterations to the lowest level every
    run reaches (:func:`matched_loss_table`, ``fraction`` 0). ``reproduced`` only when both are:
    a final loss lower by a hair, reached no sooner, is not an advantage in speed. ``opposite`` when
    SGD-M ends lower; ``not testable: ...`` when either is; ``not shown`` otherwise.

    >>> premise_verdict("reproduced", "reproduced"), premise_verdict("reproduced", "not shown")
    ('reproduced', 'not shown')
    """
    if final == matched == "reproduced":
        return "reproduced"
    if final == "opposite":
        return "opposite"
    for v in (final, matched):
        if v.startswith("not testable"):
            return v
    return "not shown"
