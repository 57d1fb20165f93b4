"""From stored trajectories to the paper's comparisons: ratios between optimizers and the published
table. The verdicts themselves (the rule, its interval and its error rates) live in
:mod:`rmed_core.verdict`.

The one table of numbers from the paper that is public (Jiang et al. 2023, reprinted by Ahn et al.
2023 as "full Transformers, from Jiang et al."): :math:`R^{SGD}_{med} / R^{Adam}_{med}`, mean (std)
over runs, for three layers of a Transformer; "layer #" is an index into the model's parameter
tensors; task and model size are not given.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .verdict import claim, log_ratios

__all__ = ["PUBLISHED_RATIOS", "ratio_table", "compare_with_published", "verdict", "rank_trend"]

#: The published ratio table: layer index, iteration, mean and std of R^SGD_med / R^Adam_med.
PUBLISHED_RATIOS = pd.DataFrame(
    [(15, 750, 1.65, 0.65), (15, 1250, 2.01, 1.00),
     (17, 750, 1.91, 0.53), (17, 1250, 1.43, 0.63),
     (22, 750, 3.54, 1.21), (22, 1250, 2.28, 1.18)],
    columns=["layer_index", "step", "paper_mean", "paper_std"],
)


def ratio_table(rmed: pd.DataFrame, *, num: str = "sgdm", den: str = "adam", steps: Sequence[int] | None = None,
                by: Sequence[str] = ("task", "layer_index", "layer")) -> pd.DataFrame:
    """The ratio ``R_med(num) / R_med(den)`` per layer and step, paired by seed: its arithmetic
    mean and standard deviation (ddof=1) over seeds, its geometric mean, the number of seeds in
    which it exceeds 1, and the per-seed log-ratios that :func:`compare_with_published` tests.
    Non-finite ratios (an R_med that is undefined or infinite under either optimizer) are left out
    and counted in ``n_dropped``; a (layer, step) without any finite ratio has no row.

    Args:
        rmed: a table with columns ``opt, seed, step, r_med`` and those of ``by`` (as
            :func:`rmed_core.load_results` ``("rmed")`` returns).
        steps: the steps to keep (default: all steps both optimizers were probed at).

    Returns:
        Columns ``*by, step, kind, mean, std, geo_mean, n_seeds, n_above_1, n_dropped, by_seed``
        (``kind`` from :func:`rmed_core.verdict.tensor_kind`; ``by_seed``: ``{seed: log-ratio}``).
    """
    try:
        units = log_ratios(rmed, num=num, den=den, steps=steps, by=by)
    except ValueError as e:
        raise ValueError(f"ratio_table: {e}") from None
    keys = [*dict.fromkeys([*by, "layer"]), "step"]
    finite = units[np.isfinite(units.y)]
    dropped = units[~np.isfinite(units.y)].groupby(keys).size().rename("n_dropped")
    table = (finite.groupby(keys, sort=True)
             .agg(kind=("kind", "first"), mean=("ratio", "mean"), std=("ratio", "std"),
                  geo_mean=("y", lambda y: float(np.exp(y.mean()))), n_seeds=("ratio", "count"),
                  n_above_1=("ratio", lambda r: int((r > 1).sum()))))
    if table.empty:
        raise ValueError(f"ratio_table: no (layer, step, seed) with a finite ratio under {num!r} and {den!r}")
    table["n_dropped"] = dropped.reindex(table.index, fill_value=0).astype(int)
    by_seed = {k: dict(zip(g.seed.tolist(), g.y.tolist())) for k, g in finite.groupby(keys)}
    table["by_seed"] = [by_seed[k] for k in table.index]
    return table.reset_index()


def verdict(log_ratio_by_seed: Sequence[float]) -> str:
    """The verdict on "the ratio exceeds 1" from one log-ratio (or mean log-ratio over tensors) per
    seed: the rule of :func:`rmed_core.verdict.claim` (exact one-sided sign-flip test over seeds at
    0.05): ``reproduced``, ``opposite``, ``not shown``, or ``not testable: S seeds < 5``."""
    return claim(log_ratio_by_seed).verdict


def _units_from(ratios: pd.DataFrame) -> pd.DataFrame:
    """Units (``layer, step, seed, y``) from :func:`ratio_table` output or from units themselves."""
    if {"seed", "y"} <= set(ratios.columns):
        return ratios
    if "by_seed" not in ratios:
        raise ValueError("ratios: the table lacks columns ['by_seed'] (ratio_table's output) or ['seed', 'y'] "
                         "(rmed_core.verdict.log_ratios's output)")
    rows = [{"layer": r.layer, "step": r.step, "seed": s, "y": y, **({"task": r.task} if "task" in ratios else {})}
            for r in ratios.itertuples() for s, y in r.by_seed.items()]
    return pd.DataFrame(rows, columns=["layer", "step", "seed", "y", *(["task"] if "task" in ratios else [])])


def compare_with_published(ratios: pd.DataFrame, step_map: dict[int, int] | None = None) -> pd.DataFrame:
    """Each row of :data:`PUBLISHED_RATIOS` beside this project's claim at the same iteration.

    The published rows are three tensors of a model whose task and size are not given, so "layer #"
    cannot name a tensor here: each published row stands beside the claim over *all* of this
    project's tensors at the matching step (:func:`rmed_core.verdict.claim`: geometric-mean ratio,
    its 95% t-interval, the exact sign-flip p over seeds and the verdict);
    :func:`rmed_core.verdict.claims_by_kind` breaks that claim down by kind of tensor.

    Args:
        ratios: output of :func:`ratio_table` or of :func:`rmed_core.verdict.log_ratios` (one task).
        step_map: the step of this project's runs that stands for each published iteration
            (default: the same number).

    Returns:
        Columns ``layer #, paper iteration, paper, step (here), this project (all tensors), p, seeds,
        tensors, verdict``; ``paper`` and ``this project`` are ratios, mean (std) over runs and
        geometric mean [95% interval] over seeds.
    """
    units = _units_from(ratios)
    if "task" in units and units.task.nunique() > 1:
        raise ValueError(f"ratios: {units.task.nunique()} tasks; compare one task at a time")
    step_map = step_map or {s: s for s in PUBLISHED_RATIOS.step.unique()}
    claims = {}
    for here in set(step_map.values()):
        at = units[units.step == here]
        claims[here] = claim(at) if len(at) else None
    rows = []
    for rec in PUBLISHED_RATIOS.itertuples():
        c = claims[step_map[rec.step]]
        rows.append({"layer #": rec.layer_index, "paper iteration": rec.step,
                     "paper": f"{rec.paper_mean:.2f} ({rec.paper_std:.2f})", "step (here)": step_map[rec.step],
                     "this project (all tensors)": f"{c.ratio:.2f} [{c.lower:.2f}, {c.upper:.2f}]" if c else "—",
                     "p": c.p_greater if c else np.nan, "seeds": c.n_seeds if c else 0,
                     "tensors": c.n_tensors if c else 0, "verdict": c.verdict if c else "no data"})
    return pd.DataFrame(rows)


def rank_trend(x: Sequence[float], y: Sequence[float], *, confidence: float = 0.95, resamples: int = 2000,
               seed: int = 0) -> dict[str, float]:
    """Spearman's rank correlation of ``y`` with ``x`` and a percentile bootstrap interval
    (pairs resampled with replacement; ``resamples`` draws, seeded).

    Returns ``rho``, ``lower``, ``upper``, ``n`` and ``trend``: ``"increasing"`` when the interval
    lies above 0, ``"decreasing"`` when below, ``"none detected"`` otherwise.

    >>> r = rank_trend([1, 2, 3, 4, 5, 6], [1.0, 2.1, 2.9, 4.2, 5.0, 6.3])
    >>> r["rho"], r["trend"]
    (1.0, 'increasing')
    """
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    rho = float(spearmanr(x, y).statistic)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(resamples):
        i = rng.integers(0, len(x), len(x))
        if np.ptp(x[i]) > 0 and np.ptp(y[i]) > 0:
            boot.append(spearmanr(x[i], y[i]).statistic)
    lower, upper = (float(q) for q in np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2]))
    trend = "increasing" if lower > 0 else "decreasing" if upper < 0 else "none detected"
    return {"rho": rho, "lower": lower, "upper": upper, "n": int(len(x)), "trend": trend}
