"""From stored trajectories to the paper's comparisons: ratios between optimizers, the published
table, and verdicts.

The one table of numbers from the paper that is public (Jiang et al. 2023, reprinted by Ahn et al.
2023 as "full Transformers, from Jiang et al."): :math:`R^{SGD}_{med} / R^{Adam}_{med}`, mean (std)
over runs, for three layers of a Transformer; "layer #" is an index into the model's parameter
tensors; task and model size are not given.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

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
    """The ratio ``R_med(num) / R_med(den)`` per layer and step, paired by seed, with its mean,
    standard deviation (ddof=1) and the number of seeds in which it exceeds 1. Non-finite ratios
    (an R_med that is undefined or infinite under either optimizer) are left out.

    Args:
        rmed: a table with columns ``opt, seed, step, r_med`` and those of ``by`` (as
            :func:`rmed_core.load_results` ``("rmed")`` returns).
        steps: the steps to keep (default: all steps both optimizers were probed at).

    Returns:
        Columns ``*by, step, mean, std, n_seeds, n_above_1``.
    """
    missing = {"opt", "seed", "step", "r_med", *by} - set(rmed.columns)
    if missing:
        raise ValueError(f"ratio_table: the table lacks columns {sorted(missing)}")
    keys = [*by, "step", "seed"]
    a = rmed[rmed.opt == num].set_index(keys)["r_med"]
    b = rmed[rmed.opt == den].set_index(keys)["r_med"]
    ratio = (a / b).rename("ratio").reset_index()
    # an R_med that is undefined (all-zero diagonal) or infinite (median zero, e.g. dead ReLU
    # units) gives no ratio: such (layer, step, seed) are left out, and n_seeds says how many remain
    ratio = ratio[np.isfinite(ratio.ratio)]
    if steps is not None:
        ratio = ratio[ratio.step.isin(list(steps))]
    if ratio.empty:
        raise ValueError(f"ratio_table: no (layer, step, seed) probed under both {num!r} and {den!r}")
    return (ratio.groupby([*by, "step"]).ratio
            .agg(mean="mean", std="std", n_seeds="count", n_above_1=lambda r: int((r > 1).sum()))
            .reset_index())


def verdict(mean: float, n_above_1: int, n_seeds: int) -> str:
    """The verdict on "the ratio exceeds 1" for one row: ``reproduced`` when it does in every
    seed, ``partly`` when its mean does but not every seed's, ``not reproduced`` otherwise."""
    if not np.isfinite(mean):
        return "no data"
    if n_above_1 == n_seeds:
        return "reproduced"
    return "partly" if mean > 1 else "not reproduced"


def compare_with_published(ratios: pd.DataFrame, step_map: dict[int, int] | None = None) -> pd.DataFrame:
    """This project's ratios beside :data:`PUBLISHED_RATIOS`, row by row, with a verdict each.

    Args:
        ratios: output of :func:`ratio_table` (one task).
        step_map: the step of this project's runs that stands for each published iteration
            (default: the same number).
    """
    step_map = step_map or {s: s for s in PUBLISHED_RATIOS.step.unique()}
    rows = []
    for rec in PUBLISHED_RATIOS.itertuples():
        ours = ratios[(ratios.layer_index == rec.layer_index) & (ratios.step == step_map[rec.step])]
        mean, std, n, above = ((float(ours["mean"].iloc[0]), float(ours["std"].iloc[0]), int(ours.n_seeds.iloc[0]),
                                int(ours.n_above_1.iloc[0])) if len(ours) else (np.nan, np.nan, 0, 0))
        rows.append({"layer #": rec.layer_index, "layer (here)": ours.layer.iloc[0] if len(ours) else "",
                     "paper iteration": rec.step, "step (here)": step_map[rec.step],
                     "paper": f"{rec.paper_mean:.2f} ({rec.paper_std:.2f})",
                     "this project": f"{mean:.2f} ({std:.2f})" if n else "—",
                     "seeds with ratio > 1": f"{above}/{n}", "verdict": verdict(mean, above, n)})
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
