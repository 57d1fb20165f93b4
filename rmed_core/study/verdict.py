"""The verdict rules: when this project calls a claim about R_med ratios reproduced, and how often
that rule errs, measured by simulation.

**The unit.** For parameter tensor :math:`k` and seed :math:`s`,

.. math::  y_{ks} = \\log\\left(R^{\\mathrm{SGD}}_{\\mathrm{med},ks} / R^{\\mathrm{Adam}}_{\\mathrm{med},ks}\\right),

where the two runs of seed :math:`s` share their initialisation and data order. An R_med that is
undefined or infinite under either optimizer gives no unit: it is left out and counted.

**The rule for a claim** "the ratio exceeds 1" over a set :math:`K` of tensors (all tensors of a
model, or one kind of tensor), fixed before any result is read:

* per seed, :math:`m_s = \\frac{1}{|K_s|}\\sum_{k \\in K_s} y_{ks}` over the tensors :math:`K_s`
  defined in that seed (the tensors of one seed are correlated, so the seed is the unit of
  replication);
* the effect is the geometric-mean ratio :math:`\\exp(\\bar m)`, :math:`\\bar m = \\frac1S \\sum_s m_s`,
  with a 95% t-interval :math:`\\exp(\\bar m \\pm t_{0.975, S-1}\\, \\mathrm{sd}(m)/\\sqrt S)`;
* the test is the exact one-sided sign-flip permutation test over seeds: under "no effect" each
  :math:`m_s` is symmetric about 0, so all :math:`2^S` sign patterns :math:`\\epsilon` are equally
  likely and :math:`p = 2^{-S}\\,\\#\\{\\epsilon : \\sum_s \\epsilon_s m_s \\ge \\sum_s m_s\\}`
  (Good, *Permutation, Parametric and Bootstrap Tests of Hypotheses*, 3rd ed., Springer 2005,
  §3.1, the one-sample test);
* verdict: ``reproduced`` when :math:`p \\le 0.05` for "ratio > 1", ``opposite`` when the same test
  for "ratio < 1" gives :math:`p \\le 0.05`, ``not shown`` otherwise. The smallest attainable
  :math:`p` is :math:`2^{-S}`; with fewer than :func:`min_seeds` (5 at 0.05) seeds the rule cannot
  reject, and the verdict says so: ``not testable: 4 seeds < 5``.

**The control** (a CNN, where no gap is expected) is an equivalence statement by two one-sided
tests (Schuirmann 1987): see :func:`equivalence` and :func:`control_statement`.

**The rule's error rates** come from :mod:`rmed_core.study.error_rates`; the units
:math:`y_{ks}` from :func:`rmed_core.study.units.log_ratios`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from ..kinds import KINDS, tensor_kind

__all__ = ["ALPHA", "DEFAULT_MARGIN", "Claim", "Equivalence", "min_seeds", "sign_flip_p", "claim", "claims_by_kind",
           "equivalence", "equivalence_by_kind", "control_statement", "verdict", "rank_trend", "check_count",
           "check_level", "sign_flip_rows"]

#: The level of every test of this module.
ALPHA = 0.05


#: The equivalence margin for the control: a ratio within [1/1.5, 1.5] counts as "no gap". This is
#: the project's choice (the paper states none); pass another ``margin`` to :func:`equivalence`.
DEFAULT_MARGIN = 1.5


#: The most seeds for which the sign-flip test enumerates its 2^S patterns.
MAX_EXACT_SEEDS = 20


NOT_TESTABLE = "not testable"


def check_count(name: str, value: Any, least: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"{name}={value!r}: expected an integer >= {least}")
    return int(value)


def check_level(name: str, value: Any) -> float:
    if not (isinstance(value, (int, float)) and 0 < value < 1):
        raise ValueError(f"{name}={value!r}: expected a number strictly between 0 and 1")
    return float(value)


def min_seeds(alpha: float = ALPHA) -> int:
    """The fewest seeds with which the exact sign-flip test can reach ``p <= alpha``: the smallest
    :math:`S` with :math:`2^{-S} \\le \\alpha` (5 at 0.05, where :math:`2^{-5} = 0.031`).

    >>> min_seeds(0.05), min_seeds(0.01)
    (5, 7)
    """
    return max(1, math.ceil(math.log2(1 / check_level("alpha", alpha)) - 1e-12))


def _seed_means(data: pd.DataFrame | Sequence[float]) -> tuple[np.ndarray, int, int]:
    """``(m_s over seeds, number of units left out, number of tensors)`` from units or seed means."""
    if not isinstance(data, pd.DataFrame):
        m = np.asarray(data, dtype=float).ravel()
        if not np.all(np.isfinite(m)):
            raise ValueError(f"data={data!r}: per-seed mean log-ratios must be finite")
        return m, 0, 0
    missing = {"seed", "y"} - set(data.columns)
    if missing:
        raise ValueError(f"data: the table lacks columns {sorted(missing)}")
    for col in ("step", "task"):
        if col in data and data[col].nunique() > 1:
            raise ValueError(f"data: {data[col].nunique()} values of {col!r}; a claim is about one {col}: select it")
    if "layer" in data and data.duplicated(["seed", "layer"]).any():
        raise ValueError("data: several rows per (seed, layer); one unit per tensor and seed")
    finite = np.isfinite(data.y.to_numpy(dtype=float))
    kept = data[finite]
    m = kept.groupby("seed").y.mean().to_numpy(dtype=float)
    n_tensors = int(kept.layer.nunique()) if "layer" in kept else 0
    return m, int((~finite).sum()), n_tensors


@lru_cache(maxsize=8)
def _sign_patterns(n: int) -> np.ndarray:
    """All :math:`2^n` sign vectors, ``(2**n, n)`` of ±1 (the first one all +1)."""
    bits = (np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1
    return (1 - 2 * bits).astype(float)


def sign_flip_rows(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-sided exact sign-flip p-values (greater, less) of each row of ``m`` ``(R, S)``."""
    n = m.shape[1]
    if n > MAX_EXACT_SEEDS:
        raise ValueError(f"{n} seeds: the exact test enumerates 2^S patterns, at most S = {MAX_EXACT_SEEDS}")
    signs = _sign_patterns(n)
    obs = m.sum(axis=1)
    tol = 1e-12 * np.abs(m).sum(axis=1)  # patterns that tie with the observed sum count as >= and <=
    p_g, p_l = np.empty(len(m)), np.empty(len(m))
    chunk = max(1, 2 ** 22 // len(signs))
    for i in range(0, len(m), chunk):
        flipped = m[i:i + chunk] @ signs.T
        o, t = obs[i:i + chunk, None], tol[i:i + chunk, None]
        p_g[i:i + chunk] = (flipped >= o - t).mean(axis=1)
        p_l[i:i + chunk] = (flipped <= o + t).mean(axis=1)
    return p_g, p_l


def sign_flip_p(m: Sequence[float], alternative: str = "greater") -> float:
    """The exact one-sided sign-flip permutation p-value of per-seed values ``m`` (Good 2005, §3.1):
    the fraction of the :math:`2^S` sign patterns :math:`\\epsilon` with
    :math:`\\sum_s \\epsilon_s m_s \\ge \\sum_s m_s` (``"greater"``) or :math:`\\le` (``"less"``).

    >>> sign_flip_p([1.0, 2.0, 3.0, -0.5, 4.0])  # the identity and flipping -0.5: 2 of 32
    0.0625
    """
    if alternative not in ("greater", "less"):
        raise ValueError(f"alternative={alternative!r}: use 'greater' or 'less'")
    arr = np.asarray(m, dtype=float).ravel()
    if arr.size < 1 or not np.all(np.isfinite(arr)):
        raise ValueError(f"m={m!r}: expected at least one finite value")
    p_g, p_l = sign_flip_rows(arr[None, :])
    return float(p_g[0] if alternative == "greater" else p_l[0])


def _decide(p_greater: float, p_less: float, n_seeds: int, alpha: float) -> str:
    if n_seeds < min_seeds(alpha):
        return f"{NOT_TESTABLE}: {n_seeds} seeds < {min_seeds(alpha)}"
    return "reproduced" if p_greater <= alpha else "opposite" if p_less <= alpha else "not shown"


def _t_interval(m: np.ndarray, level: float) -> tuple[float, float]:
    """The t-interval of the mean of ``m`` in log space (NaN with fewer than two values)."""
    if len(m) < 2:
        return math.nan, math.nan
    from scipy.stats import t

    half = float(t.ppf((1 + level) / 2, len(m) - 1)) * float(np.std(m, ddof=1)) / math.sqrt(len(m))
    return float(m.mean()) - half, float(m.mean()) + half


@dataclass(frozen=True)
class Claim:
    """The verdict on "the ratio exceeds 1" over a set of tensors, and what it rests on."""

    verdict: str  #: ``reproduced``, ``opposite``, ``not shown`` or ``not testable: S seeds < 5``
    ratio: float  #: geometric-mean ratio :math:`\\exp(\\bar m)`
    lower: float  #: 95% t-interval of the geometric-mean ratio (NaN with one seed)
    upper: float
    p_greater: float  #: sign-flip p for "ratio > 1"
    p_less: float  #: sign-flip p for "ratio < 1"
    n_seeds: int
    n_tensors: int  #: distinct tensors with at least one unit (0 when only seed means were given)
    n_dropped: int  #: units left out: R_med undefined or infinite under either optimizer
    seed_means: tuple[float, ...]  #: :math:`m_s`, one per seed

    def __str__(self) -> str:
        return (f"{self.verdict}: geometric-mean ratio {self.ratio:.2f} (95% t-interval [{self.lower:.2f}, "
                f"{self.upper:.2f}]; sign-flip p = {self.p_greater:.3f} for > 1, {self.p_less:.3f} for < 1; "
                f"{self.n_seeds} seeds, {self.n_tensors} tensors, {self.n_dropped} undefined units left out)")


def claim(data: pd.DataFrame | Sequence[float], *, alpha: float = ALPHA) -> Claim:
    """The rule of this module for "the ratio exceeds 1".

    Args:
        data: units (columns ``seed, y`` and optionally ``layer``, one step of one task: a
            selection of :func:`log_ratios`) or the per-seed means :math:`m_s` themselves.
        alpha: the level of the sign-flip test (default 0.05).

    >>> c = claim([0.3, 0.5, 0.1, 0.4, 0.2])
    >>> c.verdict, round(c.ratio, 3), c.p_greater
    ('reproduced', 1.35, 0.03125)
    >>> claim([0.3, 0.5, 0.1, 0.4]).verdict
    'not testable: 4 seeds < 5'
    """
    alpha = check_level("alpha", alpha)
    m, dropped, n_tensors = _seed_means(data)
    if m.size == 0:
        return Claim(f"{NOT_TESTABLE}: 0 seeds < {min_seeds(alpha)}", math.nan, math.nan, math.nan, math.nan,
                     math.nan, 0, n_tensors, dropped, ())
    p_g, p_l = (float(p[0]) for p in sign_flip_rows(m[None, :]))
    lo, hi = _t_interval(m, 0.95)
    return Claim(_decide(p_g, p_l, m.size, alpha), math.exp(m.mean()), math.exp(lo), math.exp(hi), p_g, p_l,
                 int(m.size), n_tensors, dropped, tuple(float(v) for v in m))


def _kind_groups(units: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """``("all", units)``, then ``(kind, its units)`` for each kind of tensor present (from the
    ``kind`` column, or derived from ``layer``)."""
    if "kind" not in units:
        if "layer" not in units:
            raise ValueError("units: the table lacks columns ['kind'] (or ['layer'] to derive it)")
        units = units.assign(kind=units.layer.map(lambda n: tensor_kind(str(n))))
    return [("all", units)] + [(k, units[units.kind == k]) for k in KINDS if (units.kind == k).any()]


def claims_by_kind(units: pd.DataFrame, *, alpha: float = ALPHA) -> pd.DataFrame:
    """:func:`claim` over all tensors (row ``all``), then over each kind of tensor present.

    The row ``all`` is the claim; the rows by kind describe where the effect lies, each tested at
    ``alpha`` on its own (no correction for the several kinds).

    Returns:
        Columns ``tensors, kind, n_tensors, n_seeds, ratio, lower, upper, p, verdict, n_dropped``
        (``p`` for "ratio > 1").
    """
    groups = _kind_groups(units)
    rows = []
    for label, sub in groups:
        c = claim(sub, alpha=alpha)
        rows.append(dict(tensors=label, n_tensors=c.n_tensors, n_seeds=c.n_seeds, ratio=c.ratio, lower=c.lower,
                         upper=c.upper, p=c.p_greater, verdict=c.verdict, n_dropped=c.n_dropped))
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Equivalence:
    """Whether the geometric-mean ratio lies within ``[1/margin, margin]`` (TOST)."""

    verdict: str  #: ``equivalent``, ``not equivalent`` or ``not testable: S seeds < 2``
    ratio: float
    lower: float  #: 90% t-interval of the geometric-mean ratio
    upper: float
    p: float  #: TOST p-value: the larger of the two one-sided t-test p-values
    margin: float
    n_seeds: int
    n_tensors: int
    n_dropped: int

    def __str__(self) -> str:
        return (f"{self.verdict} within [{1 / self.margin:.2f}, {self.margin:.2f}]: geometric-mean ratio "
                f"{self.ratio:.2f} (90% t-interval [{self.lower:.2f}, {self.upper:.2f}]; TOST p = {self.p:.3f}; "
                f"{self.n_seeds} seeds)")


def equivalence(data: pd.DataFrame | Sequence[float], *, margin: float = DEFAULT_MARGIN,
                alpha: float = ALPHA) -> Equivalence:
    """Two one-sided tests (Schuirmann, *J. Pharmacokinet. Biopharm.* 15:657, 1987) that the
    geometric-mean ratio lies within ``[1/margin, margin]``, on the per-seed means :math:`m_s` of
    :func:`claim`: with :math:`\\delta = \\log(\\mathrm{margin})` and
    :math:`se = \\mathrm{sd}(m)/\\sqrt S`, ``equivalent`` when both
    :math:`t_1 = (\\bar m + \\delta)/se` and :math:`t_2 = (\\delta - \\bar m)/se` exceed
    :math:`t_{1-\\alpha, S-1}` — the same as the :math:`1 - 2\\alpha` (90%) t-interval lying inside
    :math:`[-\\delta, \\delta]`. The default margin, 1.5, is this project's choice.

    >>> equivalence([0.05, -0.02, 0.01, 0.03, -0.04]).verdict
    'equivalent'
    """
    alpha = check_level("alpha", alpha)
    if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin > 1):
        raise ValueError(f"margin={margin!r}: expected a number > 1 (the ratio's bounds are 1/margin and margin)")
    m, dropped, n_tensors = _seed_means(data)
    ratio = math.exp(m.mean()) if m.size else math.nan
    if m.size < 2:
        return Equivalence(f"{NOT_TESTABLE}: {m.size} seeds < 2", ratio, math.nan, math.nan, math.nan, float(margin),
                           int(m.size), n_tensors, dropped)
    from scipy.stats import t

    delta, mean, se = math.log(margin), float(m.mean()), float(np.std(m, ddof=1)) / math.sqrt(m.size)
    if se == 0:
        p = 0.0 if abs(mean) < delta else 1.0
    else:
        p = float(max(t.sf((mean + delta) / se, m.size - 1), t.sf((delta - mean) / se, m.size - 1)))
    lo, hi = _t_interval(m, 1 - 2 * alpha)
    return Equivalence("equivalent" if p <= alpha else "not equivalent", ratio, math.exp(lo), math.exp(hi), p,
                       float(margin), int(m.size), n_tensors, dropped)


def equivalence_by_kind(units: pd.DataFrame, *, margin: float = DEFAULT_MARGIN, alpha: float = ALPHA) -> pd.DataFrame:
    """:func:`equivalence` over all tensors (row ``all``), then over each kind of tensor present,
    as :func:`claims_by_kind` does for the claim; each row tested at ``alpha`` on its own.

    Returns:
        Columns ``tensors, n_tensors, n_seeds, ratio, lower, upper, p, verdict, n_dropped, margin``
        (``lower, upper``: the 90% t-interval; ``p``: the TOST p-value).
    """
    groups = _kind_groups(units)
    rows = []
    for label, sub in groups:
        e = equivalence(sub, margin=margin, alpha=alpha)
        rows.append(dict(tensors=label, n_tensors=e.n_tensors, n_seeds=e.n_seeds, ratio=e.ratio, lower=e.lower,
                         upper=e.upper, p=e.p, verdict=e.verdict, n_dropped=e.n_dropped, margin=e.margin))
    return pd.DataFrame(rows)


def control_statement(language_model: Claim, cnn: Equivalence) -> str:
    """What the CNN shows. It may be called a control only when the language model's gap is
    ``reproduced``; then the control holds when the CNN's ratio is ``equivalent`` to 1. Otherwise
    the text says what the CNN shows on its own."""
    span = f"[{1 / cnn.margin:.2f}, {cnn.margin:.2f}]"
    cnn_ci = f"{cnn.ratio:.2f}, 90% interval [{cnn.lower:.2f}, {cnn.upper:.2f}]"
    if language_model.verdict == "reproduced":
        lm = (f"the language model's gap is reproduced (ratio {language_model.ratio:.2f}, "
              f"p = {language_model.p_greater:.3f})")
        if cnn.verdict == "equivalent":
            return f"The control holds: {lm}, and the CNN's ratio ({cnn_ci}) lies within {span}."
        return f"The control fails: {lm}, but the CNN's ratio ({cnn_ci}) is not shown to lie within {span}."
    own = (f"its ratio is equivalent to 1 within {span}" if cnn.verdict == "equivalent" else
           f"its ratio is not shown to lie within {span}" if cnn.verdict == "not equivalent" else
           f"its equivalence is {cnn.verdict}")
    return (f"No control: the language model's gap is {language_model.verdict} (ratio {language_model.ratio:.2f}), "
            f"so the CNN is not a control; on its own, {own} ({cnn_ci}).")


def verdict(log_ratio_by_seed: Sequence[float]) -> str:
    """The verdict on "the ratio exceeds 1" from one log-ratio (or mean log-ratio over tensors) per
    seed: the rule of :func:`claim` (exact one-sided sign-flip test over seeds at
    0.05): ``reproduced``, ``opposite``, ``not shown``, or ``not testable: S seeds < 5``."""
    return claim(log_ratio_by_seed).verdict


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
