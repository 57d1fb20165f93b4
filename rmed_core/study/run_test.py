"""The run-level rule of the trajectory study (``sweeps/study-trajectory.yaml``): SGD-M's runs against
Adam's runs, unpaired, using the sizes of the effects. Fixed before any run of that study was read.

**The unit.** For run :math:`r` (one optimizer, one seed) at probe step :math:`t`, over the set
:math:`K_t` of tensors whose R_med is finite in *every* run at that step,

.. math::  M_r(t) = \\frac{1}{|K_t|} \\sum_{k \\in K_t} \\log R_{\\mathrm{med},k,r}(t).

The tensors left out of :math:`K_t` are counted (``n_left_out``), never dropped silently.

**Why unpaired.** The two runs of one seed share initialisation and data order, but in the five-seed
study the within-tensor correlation of :math:`\\log R_\\mathrm{med}` between a seed's two runs was
0.08 at iteration 750 and -0.05 at 1250: pairing buys nothing, and the sign-flip test over five
pairs cannot go below :math:`p = 1/32`. So the runs of the two optimizers are two independent samples.

**The test.** The exact two-sample permutation test of the difference of means
(Good, *Permutation, Parametric and Bootstrap Tests of Hypotheses*, 3rd ed., Springer 2005, §3.2):
with :math:`D = \\bar M_{\\mathrm{SGD}} - \\bar M_{\\mathrm{Adam}}`, the one-sided
:math:`p = \\#\\{\\text{relabellings with } D^* \\ge D\\} / \\binom{n_1 + n_2}{n_1}` (enumerated up to
:data:`MAX_EXACT` relabellings, else :data:`MC_DRAWS` seeded random ones plus the observed one).
Its smallest value with 10 runs a side is :math:`1/184756`; the verdict is ``not testable`` when
it cannot reach :math:`\\alpha`. The effect is :math:`\\exp(D)`, the ratio of the geometric means of
R_med, with a 95% Welch interval.

**Verdicts.** ``reproduced`` when :math:`p \\le 0.05` for "SGD-M larger" at the step the claim
names; ``opposite`` when the same test for "smaller" does; ``not shown`` otherwise. Several steps or
several kinds of tensor read at once are corrected by Holm's step-down method (Holm 1979) over
their two-sided p-values (:func:`holm`), and each row says ``larger``, ``smaller`` or ``no
difference shown``.

**Matched loss** (:func:`matched_loss_means`): each SGD-M probe is compared with Adam at the same
probe-batch loss. For each Adam run, :math:`M` is interpolated linearly in log-loss between the two
probes whose losses bracket the target (the first bracket along the trajectory); a target outside
an Adam run's probed losses gives no value for that run (counted, not extrapolated). The
interpolation error is measured by :func:`interpolation_error`: each interior probe predicted from
its neighbours two grid steps apart.

The error rates of the rule come from :func:`simulate_run_test`.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..kinds import KINDS, tensor_kind
from ..validation import check_choice
from .verdict import ALPHA, NOT_TESTABLE, check_count, check_level

__all__ = ["MAX_EXACT", "MC_DRAWS", "VALUES", "RunClaim", "run_means", "permutation_p", "run_claim", "holm",
           "run_claims_by", "matched_loss_means", "interpolation_error", "simulate_run_test", "claim_with_error_rates",
           "run_test_table", "check_table"]

#: The most relabellings the permutation test enumerates (C(20, 10) = 184,756 is below it).
MAX_EXACT = 250_000

#: Random relabellings drawn when there are more than :data:`MAX_EXACT`.
MC_DRAWS = 100_000


def check_table(name: str, df: pd.DataFrame, cols: Sequence[str]) -> None:
    """Refuse ``df`` unless it is a DataFrame with every column of ``cols``, naming the argument ``name``."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{name}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = set(cols) - set(df.columns)
    if missing:
        raise ValueError(f"{name}: the table lacks columns {sorted(missing)}")


#: The per-tensor values :func:`run_means` can average in log: R_med and its two parts (the
#: largest and the median absolute diagonal entry), so that :math:`\log R = \log h_{\max} - \log h_{\mathrm{med}}`.
VALUES = ("r_med", "h_max", "h_median")


def run_means(rmed: pd.DataFrame, *, kind: str | None = None, value: str = "r_med") -> pd.DataFrame:
    """:math:`M_r(t)` for every run and step of an R_med table (a bundle's ``rmed.csv``).

    Args:
        rmed: columns ``opt, seed, step, layer`` and ``value``.
        kind: only the tensors of this kind (:data:`rmed_core.kinds.KINDS`); default all.
        value: which per-tensor value is averaged in log (:data:`VALUES`): R_med (default), or one of
            its two parts for the decomposition of :func:`decomposition_table`.

    Returns:
        One row per ``opt, seed, step`` with ``m``, ``n_tensors`` (:math:`|K_t|`) and ``n_left_out``
        (tensors of that step not finite in every run).
    """
    check_choice("value", value, VALUES)
    check_table("rmed", rmed, ["opt", "seed", "step", "layer", value])
    df = rmed.copy()
    if kind is not None:
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r}: expected one of {', '.join(KINDS)}")
        df = df[df.layer.map(lambda n: tensor_kind(str(n))) == kind]
    v = df[value].astype(float)
    df["log_r"] = np.log(v.where(v > 0))
    rows = []
    for step, at in df.groupby("step"):
        wide = at.pivot_table(index=["opt", "seed"], columns="layer", values="log_r", aggfunc="first")
        common = wide.columns[np.isfinite(wide.to_numpy()).all(axis=0)]
        for (opt, seed), row in wide.iterrows():
            m = float(row[common].mean()) if len(common) else math.nan
            rows.append(dict(opt=opt, seed=seed, step=step, m=m, n_tensors=len(common),
                             n_left_out=int(wide.shape[1] - len(common))))
    return pd.DataFrame(rows, columns=["opt", "seed", "step", "m", "n_tensors", "n_left_out"])


def permutation_p(a: Sequence[float], b: Sequence[float], *, seed: int = 0) -> tuple[float, float]:
    """One-sided two-sample permutation p-values of :math:`\\bar a - \\bar b`: ``(p for "a larger",
    p for "a smaller")``; exact up to :data:`MAX_EXACT` relabellings.

    >>> permutation_p([3.0, 4.0, 5.0], [0.0, 1.0, 2.0])  # the observed split is the most extreme of 20
    (0.05, 1.0)
    """
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    if a.size < 1 or b.size < 1 or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("a, b: expected at least one finite value in each sample")
    pooled, n = np.concatenate([a, b]), a.size
    total = pooled.sum()
    obs = a.sum()
    if math.comb(pooled.size, n) <= MAX_EXACT:
        idx = np.array(list(itertools.combinations(range(pooled.size), n)))
        sums = pooled[idx].sum(axis=1)
    else:
        rng = np.random.default_rng(seed)
        draws = np.argsort(rng.random((MC_DRAWS, pooled.size)), axis=1)[:, :n]
        sums = np.concatenate([[obs], pooled[draws].sum(axis=1)])
    # the mean difference is monotone in the sum of a's labels: compare sums (ties count both ways)
    tol = 1e-12 * (np.abs(pooled).sum() + abs(total))
    return float(np.mean(sums >= obs - tol)), float(np.mean(sums <= obs + tol))


def _welch(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    if a.size < 2 or b.size < 2:
        return math.nan, math.nan
    from scipy.stats import t

    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        d = float(a.mean() - b.mean())
        return d, d
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    half = float(t.ppf((1 + level) / 2, df)) * se
    d = float(a.mean() - b.mean())
    return d - half, d + half


@dataclass(frozen=True)
class RunClaim:
    """The verdict on "SGD-M's R_med exceeds Adam's" from two samples of runs."""

    verdict: str  #: ``reproduced``, ``opposite``, ``not shown`` or ``not testable: ...``
    ratio: float  #: :math:`\\exp(\\bar M_{\\mathrm{SGD}} - \\bar M_{\\mathrm{Adam}})`
    lower: float  #: 95% Welch interval of the ratio
    upper: float
    p_greater: float
    p_less: float
    n_sgdm: int
    n_adam: int

    def __str__(self) -> str:
        return (f"{self.verdict}: ratio of geometric means {self.ratio:.2f} (95% Welch interval "
                f"[{self.lower:.2f}, {self.upper:.2f}]; permutation p = {self.p_greater:.4f} for > 1, "
                f"{self.p_less:.4f} for < 1; {self.n_sgdm} SGD-M and {self.n_adam} Adam runs)")


def run_claim(sgdm: Sequence[float], adam: Sequence[float], *, alpha: float = ALPHA) -> RunClaim:
    """The rule of this module at one step: the permutation test of :math:`M` over runs.

    >>> c = run_claim([0.3, 0.4, 0.35, 0.5, 0.45], [0.0, 0.1, 0.05, -0.05, 0.12])
    >>> c.verdict, round(c.p_greater, 4)
    ('reproduced', 0.004)
    >>> run_claim([0.3, 0.4], [0.0, 0.1]).verdict
    'not testable: the smallest p with 2 and 2 runs is 0.167 > 0.05'
    """
    alpha = check_level("alpha", alpha)
    a = np.asarray(sgdm, float).ravel()
    b = np.asarray(adam, float).ravel()
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return RunClaim(f"{NOT_TESTABLE}: {a.size} SGD-M and {b.size} Adam runs", math.nan, math.nan, math.nan,
                        math.nan, math.nan, int(a.size), int(b.size))
    p_g, p_l = permutation_p(a, b)
    lo, hi = _welch(a, b)
    floor = 1 / math.comb(a.size + b.size, a.size)
    if floor > alpha:
        verdict = f"{NOT_TESTABLE}: the smallest p with {a.size} and {b.size} runs is {floor:.3f} > {alpha:g}"
    else:
        verdict = "reproduced" if p_g <= alpha else "opposite" if p_l <= alpha else "not shown"
    return RunClaim(verdict, math.exp(a.mean() - b.mean()), math.exp(lo), math.exp(hi), p_g, p_l,
                    int(a.size), int(b.size))


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm, *Scand. J. Statist.* 6:65, 1979): sorted
    ascending, :math:`\\tilde p_{(i)} = \\max_{j \\le i} \\min(1, (m - j + 1) p_{(j)})`.

    >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    arr = np.asarray(p, float)
    if arr.ndim != 1 or not np.all((arr >= 0) & (arr <= 1)):
        raise ValueError(f"p={p!r}: expected p-values between 0 and 1")
    order = np.argsort(arr)
    adj = np.maximum.accumulate(np.minimum(1.0, (arr.size - np.arange(arr.size)) * arr[order]))
    out = np.empty_like(arr)
    out[order] = adj
    return out


def run_claims_by(means: pd.DataFrame, by: str, *, alpha: float = ALPHA) -> pd.DataFrame:
    """:func:`run_claim` for each value of column ``by`` (``step`` or ``kind``) of a table of
    :math:`M` (columns ``opt, m`` and ``by``), with Holm-adjusted two-sided p-values.

    Returns:
        Columns ``by, ratio, lower, upper, p_greater, p_less, p_holm, n_sgdm, n_adam, direction``
        (``larger``, ``smaller`` or ``no difference shown`` at ``alpha`` after Holm).
    """
    check_table("means", means, ["opt", "m", by])
    rows = []
    for value, sub in means.groupby(by, sort=True):
        c = run_claim(sub[sub.opt == "sgdm"].m, sub[sub.opt == "adam"].m, alpha=alpha)
        rows.append({by: value, "ratio": c.ratio, "lower": c.lower, "upper": c.upper, "p_greater": c.p_greater,
                     "p_less": c.p_less, "n_sgdm": c.n_sgdm, "n_adam": c.n_adam})
    out = pd.DataFrame(rows)
    if out.empty:
        return out.assign(p_holm=[], direction=[])
    out["p_holm"] = _holm_two_sided(out.p_greater, out.p_less)
    out["direction"] = np.where(out.p_holm > alpha, "no difference shown",
                                np.where(out.ratio > 1, "larger", "smaller"))
    return out


def _holm_two_sided(p_greater: pd.Series, p_less: pd.Series) -> np.ndarray:
    """Holm-adjusted two-sided p-values :math:`\\min(1, 2\\min(p_>, p_<))` (an undefined p counts as 1)."""
    return holm(np.minimum(1.0, 2 * np.minimum(p_greater.fillna(1), p_less.fillna(1))).to_numpy())


def _interpolate(loss: np.ndarray, m: np.ndarray, target: float) -> float:
    """``m`` at ``target`` loss, linear in log-loss between the first bracketing pair of probes."""
    ll, lt = np.log(loss), math.log(target)
    for i in range(len(ll) - 1):
        lo, hi = sorted((ll[i], ll[i + 1]))
        if lo <= lt <= hi:
            w = 0.0 if hi == lo else (lt - ll[i]) / (ll[i + 1] - ll[i])
            return float(m[i] + w * (m[i + 1] - m[i]))
    return math.nan


def matched_loss_means(means: pd.DataFrame, probes: pd.DataFrame) -> pd.DataFrame:
    """Adam's :math:`M` at the loss SGD-M reached, for each SGD-M step.

    Args:
        means: :func:`run_means` (columns ``opt, seed, step, m``).
        probes: the probe table (columns ``opt, seed, step, loss``: the probe-batch loss).

    Returns:
        Rows of both optimizers for each SGD-M step ``step``: SGD-M's own :math:`M` there, and each
        Adam run's :math:`M` interpolated at the median SGD-M probe loss of that step (``target_loss``)
        — the table :func:`run_claims_by` reads with ``by="step"``. Adam runs whose probed losses do
        not bracket the target are left out (``m`` NaN).
    """
    check_table("means", means, ["opt", "seed", "step", "m"])
    check_table("probes", probes, ["opt", "seed", "step", "loss"])
    df = means.merge(probes[["opt", "seed", "step", "loss"]], on=["opt", "seed", "step"], how="left")
    sgd, adam = df[df.opt == "sgdm"], df[df.opt == "adam"]
    rows = []
    for step, at in sgd.groupby("step"):
        target = float(at.loss.median())
        rows += [dict(opt="sgdm", seed=r.seed, step=step, m=r.m, target_loss=target) for r in at.itertuples()]
        for seed, run in adam.sort_values("step").groupby("seed"):
            rows.append(dict(opt="adam", seed=seed, step=step, target_loss=target,
                             m=_interpolate(run.loss.to_numpy(float), run.m.to_numpy(float), target)))
    return pd.DataFrame(rows, columns=["opt", "seed", "step", "m", "target_loss"])


def interpolation_error(means: pd.DataFrame, probes: pd.DataFrame, opt: str = "adam") -> pd.DataFrame:
    """How well :func:`matched_loss_means`' interpolation recovers a probed value: each interior
    probe of each run of ``opt`` predicted from the probes two grid steps apart (so the error
    overstates that of the full grid). Columns ``seed, step, m, predicted, error`` (in log R_med)."""
    check_table("means", means, ["opt", "seed", "step", "m"])
    df = means[means.opt == opt].merge(probes[["opt", "seed", "step", "loss"]], on=["opt", "seed", "step"])
    rows = []
    for seed, run in df.sort_values("step").groupby("seed"):
        loss, m, steps = run.loss.to_numpy(float), run.m.to_numpy(float), run.step.to_numpy()
        for i in range(1, len(run) - 1):
            pred = _interpolate(loss[[i - 1, i + 1]], m[[i - 1, i + 1]], loss[i])
            rows.append(dict(seed=seed, step=int(steps[i]), m=m[i], predicted=pred, error=pred - m[i]))
    return pd.DataFrame(rows, columns=["seed", "step", "m", "predicted", "error"])


def simulate_run_test(n_runs: int, log_effect: float, sd: float, *, sd_ratio: float = 1.0, n_sims: int = 2000,
                      alpha: float = ALPHA, rng_seed: int = 0) -> float:
    """The rate at which :func:`run_claim` says ``reproduced`` when :math:`M` of SGD-M's runs is
    :math:`N(\\mathrm{log\\_effect}, (\\mathrm{sd}\\cdot\\mathrm{sd\\_ratio})^2)` and Adam's :math:`N(0, \\mathrm{sd}^2)`,
    ``n_runs`` runs a side. ``log_effect=0`` gives the false-positive rate (with ``sd_ratio != 1``,
    under unequal spreads, where the permutation test is only approximately exact).

    The exact test enumerates :math:`\\binom{2n}{n}` relabellings per study, so the p-value is computed
    here from a fixed set of 2,000 random relabellings per study (its Monte Carlo error on a rate is
    below 0.005 at these sizes).
    """
    n_runs, n_sims, alpha = check_count("n_runs", n_runs, 2), check_count("n_sims", n_sims), check_level("alpha", alpha)
    for name, v in (("log_effect", log_effect), ("sd", sd), ("sd_ratio", sd_ratio)):
        if not (isinstance(v, (int, float)) and math.isfinite(v)) or (name != "log_effect" and v <= 0):
            raise ValueError(f"{name}={v!r}: expected a finite number{' > 0' if name != 'log_effect' else ''}")
    if 1 / math.comb(2 * n_runs, n_runs) > alpha:
        return 0.0  # the rule refuses to claim
    rng = np.random.default_rng(rng_seed)
    a = log_effect + sd * sd_ratio * rng.standard_normal((n_sims, n_runs))
    b = sd * rng.standard_normal((n_sims, n_runs))
    pooled = np.concatenate([a, b], axis=1)
    perms = np.argsort(rng.random((2000, 2 * n_runs)), axis=1)[:, :n_runs]
    labels = np.zeros((perms.shape[0], 2 * n_runs))
    np.put_along_axis(labels, perms, 1.0, axis=1)
    sums = pooled @ labels.T  # (n_sims, 2000): each relabelling's sum of the "SGD-M" side
    obs = a.sum(axis=1, keepdims=True)
    p = (1 + (sums >= obs).sum(axis=1)) / (1 + perms.shape[0])
    return float(np.mean(p <= alpha))


def claim_with_error_rates(means: pd.DataFrame, *, n_runs: int | None = None, alpha: float = ALPHA,
                           n_sims: int = 2000) -> dict:
    """The rule at one step (:func:`run_claim` on the ``m`` of :func:`run_means`) beside its
    simulated false-positive rate and its power at a ratio of 1.3 (:func:`simulate_run_test`) with
    ``n_runs`` runs a side (default: the fewer of the two samples' runs) and the largest between-run
    sd of ``m`` measured here; NaN rates with fewer than two runs or no spread.

    Returns:
        ``n_sgdm, n_adam, ratio, lower, upper, p, p_less, verdict, between_run_sd, fpr, power_1_3``.
    """
    c = run_claim(means[means.opt == "sgdm"].m, means[means.opt == "adam"].m, alpha=alpha)
    sd = float(means.groupby("opt").m.std().max()) if len(means) else math.nan
    n = min(c.n_sgdm, c.n_adam) if n_runs is None else n_runs
    ok = math.isfinite(sd) and sd > 0 and n >= 2
    return dict(n_sgdm=c.n_sgdm, n_adam=c.n_adam, ratio=c.ratio, lower=c.lower, upper=c.upper, p=c.p_greater,
                p_less=c.p_less, verdict=c.verdict, between_run_sd=sd,
                fpr=simulate_run_test(n, 0.0, sd, n_sims=n_sims, alpha=alpha) if ok else math.nan,
                power_1_3=simulate_run_test(n, math.log(1.3), sd, n_sims=n_sims, alpha=alpha) if ok else math.nan)


def run_test_table(rmed: pd.DataFrame, steps: dict[int, int], *, n_runs: int = 10, alpha: float = ALPHA,
                   n_sims: int = 2000) -> pd.DataFrame:
    """The run-level rule at each of ``steps`` (``{published iteration: probe step}``), over all
    tensors and by kind, beside its error rates.

    Each row: the claim (:func:`run_claim`), Holm-adjusted over the kinds of its step (row ``all``
    excluded: it is the claim itself; ``direction`` is the row's reading: the verdict for ``all``,
    ``larger under SGD-M``, ``smaller under SGD-M`` or ``no difference shown`` after Holm for a kind), and the rule's simulated false-positive rate and power at
    the effect :math:`\\log 1.3` (the five-seed study's size) with ``n_runs`` runs a side and the
    largest between-run sd of :math:`M` measured here (NaN when fewer than two runs a side).
    """
    rows = []
    for it, step in steps.items():
        at = rmed[rmed.step == step]
        for kind in ("all", *KINDS):
            if kind != "all" and not (at.layer.map(lambda n: tensor_kind(str(n))) == kind).any():
                continue
            m = run_means(at, kind=None if kind == "all" else kind)
            rows.append(dict(iteration=it, step=step, tensors=kind, n_tensors=int(m.n_tensors.max()) if len(m) else 0,
                             **claim_with_error_rates(m, n_runs=n_runs, alpha=alpha, n_sims=n_sims)))
    out = pd.DataFrame(rows)
    out["p_holm"] = math.nan
    for step, idx in out[out.tensors != "all"].groupby("step").groups.items():
        out.loc[idx, "p_holm"] = _holm_two_sided(out.loc[idx, "p"], out.loc[idx, "p_less"])
    out["direction"] = np.where(out.tensors == "all", out.verdict,
                                np.where(~(out.p_holm <= alpha), "no difference shown",
                                         np.where(out.ratio > 1, "larger under SGD-M", "smaller under SGD-M")))
    return out
