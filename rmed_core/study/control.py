"""The control's rule: the CNN on an image task where neither optimizer interpolates, read so that a
dead unit can neither make nor hide a gap. Fixed before the control's study runs were read.

**The rate** (:func:`pick_control_rate`). Each optimizer's rate is tuned by the final-loss rule
(:func:`rmed_core.study.premise.tuning_table`), among the rates at which no tensor has a majority of
dead entries at the last iteration (``n_zero / n_used > 1/2``: a ReLU unit inactive on every probe
image has an exactly zero gradient and Hessian diagonal; with a majority of them the median is
zero and R_med is a statement about dead units, not about curvature).

**The statistic.** Per tensor, R_med over its *active* entries,
:math:`R_{\\mathrm{act}} = \\max_i |h_i| / \\operatorname{median}_{i : h_i \\ne 0} |h_i|`, with the
fraction of dead entries reported beside it (:func:`dead_fractions`); a tensor whose entries are
all zero in some run is counted (``n_left_out`` of :func:`rmed_core.study.run_test.run_means`),
never dropped silently.

**The verdict** (:func:`control_verdict`), on the run-level means :math:`M_r` of
:math:`\\log R_{\\mathrm{act}}` (:mod:`rmed_core.study.run_test`), SGD-M's runs against Adam's:

* ``inconclusive`` with the reason, first, when the control is degenerate: either optimizer's
  final training loss (mean over runs) is below :data:`INTERPOLATES` (it interpolates: the
  Hessian at a near-zero loss says little about the trajectory), or some tensor has a majority of
  dead entries in some run (:data:`DEAD_MAJORITY`);
* ``gap: SGD-M larger`` / ``gap: SGD-M smaller`` when the two-sided exact permutation test gives
  :math:`p \\le \\alpha`;
* ``no gap`` when the 90% Welch interval of the ratio lies within :math:`[1/m, m]` (two one-sided
  tests at 0.05; margin :math:`m` = :data:`rmed_core.study.verdict.DEFAULT_MARGIN`);
* ``inconclusive`` otherwise, with the interval that reaches past the margin.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .premise import tuning_table
from .run_test import check_table, _welch, permutation_p, run_means
from .verdict import ALPHA, DEFAULT_MARGIN

__all__ = ["INTERPOLATES", "DEAD_MAJORITY", "active_rmed", "dead_fractions", "pick_control_rate", "ControlVerdict",
           "control_verdict"]

#: A final training loss below this means the optimizer interpolates its training set.
INTERPOLATES = 1e-3

#: The fraction of dead entries of a tensor above which its median is zero.
DEAD_MAJORITY = 0.5


def active_rmed(rmed: pd.DataFrame) -> pd.DataFrame:
    """``rmed`` with ``r_med_active`` :math:`= h_{\\max} / h_{\\mathrm{med,active}}` and
    ``dead_fraction`` :math:`= n_\\mathrm{zero} / n_\\mathrm{used}` (NaN where the table has no count:
    a sampled tensor, or a run stored before the count existed)."""
    check_table("rmed", rmed, ["h_max", "n_used"])
    df = rmed.copy()
    for col in ("n_zero", "h_median_active"):
        if col not in df:
            df[col] = math.nan
    act = df.h_median_active.astype(float)
    df["r_med_active"] = np.where(act > 0, df.h_max.astype(float) / act.where(act > 0), math.nan)
    df["dead_fraction"] = df.n_zero.astype(float) / df.n_used.astype(float)
    return df


def dead_fractions(rmed: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer, step and tensor: the mean, smallest and largest fraction of dead entries over
    runs, and in how many runs the tensor has a majority of them (``runs_dead_majority``)."""
    df = active_rmed(rmed)
    g = df.groupby(["opt", "step", "layer"], sort=False).dead_fraction
    out = g.agg(["mean", "min", "max"]).reset_index()
    out["runs_dead_majority"] = g.apply(lambda s: int((s > DEAD_MAJORITY).sum())).to_numpy()
    return out


def pick_control_rate(loss: pd.DataFrame, rmed: pd.DataFrame) -> pd.DataFrame:
    """The control's tuning table: :func:`rmed_core.study.premise.tuning_table` with each rate's
    largest dead fraction over tensors at its last probe (``max_dead_fraction``), ``allowed`` (no
    tensor with a majority dead) and ``chosen`` (the lowest final loss among the allowed rates of
    an optimizer; ``best`` is the winner without that condition)."""
    check_table("loss", loss, ["task", "opt", "lr", "seed", "step", "loss"])
    table = tuning_table(loss)
    df = active_rmed(rmed)
    last = df[df.step == df.groupby(["opt", "lr"]).step.transform("max")]
    dead = last.groupby(["opt", "lr"]).dead_fraction.max().rename("max_dead_fraction").reset_index()
    table = table.merge(dead, on=["opt", "lr"], how="left")
    table["allowed"] = np.isfinite(table.final_loss) & ~(table.max_dead_fraction > DEAD_MAJORITY)
    table["chosen"] = False
    for _, g in table[table.allowed].groupby("opt"):
        table.loc[g.final_loss.idxmin(), "chosen"] = True
    return table


@dataclass(frozen=True)
class ControlVerdict:
    """The control's verdict and the numbers behind it."""

    verdict: str  #: ``no gap``, ``gap: SGD-M larger``, ``gap: SGD-M smaller`` or ``inconclusive: <reason>``
    ratio: float  #: ratio of geometric means of :math:`R_{\mathrm{act}}`, SGD-M / Adam
    lower90: float  #: 90% Welch interval (the equivalence test's)
    upper90: float
    p_two_sided: float
    n_sgdm: int
    n_adam: int
    final_loss_sgdm: float
    final_loss_adam: float
    max_dead_fraction: float  #: the largest dead fraction of any tensor in any run at the step
    n_left_out: int  #: tensors not finite in every run (all entries dead somewhere)
    statistic: str  #: what was averaged: R_med over the active entries, or R_med where no count was stored

    def __str__(self) -> str:
        return (f"{self.verdict}: ratio {self.ratio:.2f} (90% interval [{self.lower90:.2f}, {self.upper90:.2f}], "
                f"two-sided p = {self.p_two_sided:.4f}; {self.n_sgdm} SGD-M and {self.n_adam} Adam runs)")


def control_verdict(rmed: pd.DataFrame, final_losses: pd.DataFrame, step: int, *, margin: float = DEFAULT_MARGIN,
                    alpha: float = ALPHA) -> ControlVerdict:
    """The control's verdict at ``step`` (the rule of this module).

    Args:
        rmed: the control's R_med table (columns ``opt, seed, step, layer, h_max, h_median_active,
            n_zero, n_used``).
        final_losses: one row per run, columns ``opt, final_loss``
            (:func:`rmed_core.study.premise.final_loss`).
        step: the probe step read.
    """
    if not (isinstance(margin, (int, float)) and margin > 1):
        raise ValueError(f"margin={margin!r}: expected a number > 1")
    check_table("final_losses", final_losses, ["opt", "final_loss"])
    at = active_rmed(rmed[rmed.step == step])
    if at.empty:
        raise ValueError(f"step={step!r}: no probe at that step (have {sorted(rmed.step.unique())})")
    counted = bool(at.h_median_active.notna().any())
    m = run_means(at.assign(r_med=at.r_med_active) if counted else at)
    a, b = m[m.opt == "sgdm"].m.to_numpy(float), m[m.opt == "adam"].m.to_numpy(float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    fl = final_losses.groupby("opt").final_loss.mean()
    loss_s, loss_a = float(fl.get("sgdm", math.nan)), float(fl.get("adam", math.nan))
    dead = float(at.dead_fraction.max()) if at.dead_fraction.notna().any() else math.nan
    left_out = int(m.n_left_out.max()) if len(m) else 0
    statistic = "R_med over the active entries" if counted else "R_med (this table has no count of dead entries)"
    reasons = []
    for opt, v in (("SGD-M", loss_s), ("Adam", loss_a)):
        if v < INTERPOLATES:
            reasons.append(f"{opt} interpolates (final training loss {v:.2g} < {INTERPOLATES:g})")
    if dead > DEAD_MAJORITY:
        reasons.append(f"a tensor has {dead:.0%} dead entries in some run (> {DEAD_MAJORITY:.0%})")
    why = at.undefined.astype("string") if "undefined" in at else pd.Series("", index=at.index, dtype="string")
    n_zero_median = int(why.fillna("").str.startswith("median is zero").sum())
    if n_zero_median:
        reasons.append(f"{n_zero_median} tensor-runs have a zero median (a majority of dead entries)")
    if a.size < 2 or b.size < 2:
        reasons.append(f"{a.size} SGD-M and {b.size} Adam runs with a value (at least 2 each)")
        return ControlVerdict("inconclusive: " + "; ".join(reasons), math.nan, math.nan, math.nan, math.nan,
                              int(a.size), int(b.size), loss_s, loss_a, dead, left_out, statistic)
    p_g, p_l = permutation_p(a, b)
    p = min(1.0, 2 * min(p_g, p_l))
    lo, hi = _welch(a, b, level=0.90)
    ratio, lo, hi = math.exp(a.mean() - b.mean()), math.exp(lo), math.exp(hi)
    if reasons:
        verdict = "inconclusive: " + "; ".join(reasons)
    elif p <= alpha:
        verdict = "gap: SGD-M larger" if ratio > 1 else "gap: SGD-M smaller"
    elif 1 / margin < lo and hi < margin:
        verdict = "no gap"
    else:
        verdict = f"inconclusive: the 90% interval [{lo:.2f}, {hi:.2f}] reaches past the margin [{1 / margin:.2f}, {margin:.2f}]"
    return ControlVerdict(verdict, ratio, lo, hi, p, int(a.size), int(b.size), loss_s, loss_a, dead, left_out, statistic)
