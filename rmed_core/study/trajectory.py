"""The trajectory study read by the run-level rule (:mod:`rmed_core.study.run_test`): R_med of each
kind of tensor along each optimizer's trajectory, the SGD-M / Adam ratio at every probe step, at
matched iteration and at matched training loss, and the ratio split into its two parts.

Everything here is computed from a bundle's tables at every read (``rmed.csv``, ``probe.csv``):

* :func:`kind_trajectories` -- per optimizer, kind and step, the geometric mean over runs of
  :math:`\\exp M_r(t)` with a 95% t-interval over runs (:math:`M_r(t)` as in :func:`run_means`).
* :func:`trajectory_claims` -- :func:`run_claims_by` at every step, once at matched iteration and
  once at matched loss (:func:`matched_loss_means`), each Holm-corrected over its steps; and the
  claim at the steps the published table names, Holm-corrected over those.
* :func:`decomposition_table` -- the same rule applied to :math:`\\log h_{\\max}` and
  :math:`\\log h_{\\mathrm{med}}` over the same tensors as R_med, so that the ratio of R_med is the
  ratio of maxima divided by the ratio of medians, each with its own verdict.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..kinds import KINDS, tensor_kind
from .run_test import VALUES, check_table, interpolation_error, matched_loss_means, run_claims_by, run_means
from .verdict import ALPHA, NOT_TESTABLE, _t_interval

__all__ = ["kind_trajectories", "trajectory_claims", "claims_at_steps", "decomposition_table", "interpolation_summary",
           "batch_effect"]


def _kinds_present(rmed: pd.DataFrame) -> list[str]:
    present = set(rmed.layer.map(lambda n: tensor_kind(str(n))))
    return [k for k in KINDS if k in present]


def _comparisons(rmed: pd.DataFrame, probes: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The tables of :math:`M` the two comparisons read: at matched iteration (:func:`run_means`,
    per step) and at matched loss (:func:`matched_loss_means` on Adam's whole probe grid)."""
    check_table("probes", probes, ["opt", "seed", "step", "loss"])
    means = run_means(rmed)
    return [("iteration", means), ("loss", matched_loss_means(means, probes))]


def kind_trajectories(rmed: pd.DataFrame) -> pd.DataFrame:
    """R_med along each optimizer's trajectory, over all tensors and by kind.

    Args:
        rmed: a bundle's ``rmed.csv`` (columns ``opt, seed, step, layer, r_med``).

    Returns:
        One row per ``opt, tensors, step`` (``tensors``: ``all`` or a kind): ``geo_mean``
        :math:`= \\exp(\\overline{M})` over runs, its 95% t-interval ``lower, upper`` (from the runs'
        :math:`M_r(t)`), ``n_runs`` and ``n_tensors`` (tensors finite in every run at that step).
    """
    check_table("rmed", rmed, ["opt", "seed", "step", "layer", "r_med"])
    rows = []
    for kind in ("all", *_kinds_present(rmed)):
        m = run_means(rmed, kind=None if kind == "all" else kind)
        for (opt, step), g in m.groupby(["opt", "step"]):
            x = g.m.to_numpy(float)
            x = x[np.isfinite(x)]
            mean = float(x.mean()) if x.size else math.nan
            lo, hi = _t_interval(x, 0.95)
            rows.append(dict(opt=opt, tensors=kind, step=int(step), geo_mean=math.exp(mean) if math.isfinite(mean)
                             else math.nan, lower=math.exp(lo) if math.isfinite(lo) else math.nan,
                             upper=math.exp(hi) if math.isfinite(hi) else math.nan,
                             n_runs=int(np.isfinite(g.m).sum()), n_tensors=int(g.n_tensors.max())))
    return pd.DataFrame(rows, columns=["opt", "tensors", "step", "geo_mean", "lower", "upper", "n_runs", "n_tensors"])


def trajectory_claims(rmed: pd.DataFrame, probes: pd.DataFrame, *, alpha: float = ALPHA) -> pd.DataFrame:
    """The SGD-M / Adam ratio at every probe step, at matched iteration and at matched loss.

    Args:
        rmed: a bundle's ``rmed.csv``.
        probes: a bundle's ``probe.csv`` (the probe-batch loss of each run at each probe step).

    Returns:
        :func:`run_claims_by` (``by="step"``) of both comparisons, stacked, with a column
        ``comparison`` (``"iteration"``: the two optimizers at the same step; ``"loss"``: SGD-M at
        that step against Adam at SGD-M's median probe loss there, ``target_loss``); ``p_holm`` and
        ``direction`` are corrected over the steps of one comparison.
    """
    out = []
    for comparison, table in _comparisons(rmed, probes):
        claims = run_claims_by(table, "step", alpha=alpha).assign(comparison=comparison)
        if comparison == "loss":
            claims = claims.merge(table.groupby("step").target_loss.first().reset_index(), on="step", how="left")
        out.append(claims)
    df = pd.concat(out, ignore_index=True)
    if "target_loss" not in df:
        df["target_loss"] = math.nan
    return df[["comparison", "step", "target_loss", "ratio", "lower", "upper", "p_greater", "p_less", "p_holm",
               "n_sgdm", "n_adam", "direction"]]


def claims_at_steps(rmed: pd.DataFrame, probes: pd.DataFrame, steps: Sequence[int], *,
                    alpha: float = ALPHA) -> pd.DataFrame:
    """The claim at the steps the published table names (``steps``), at matched iteration and at
    matched loss: :func:`trajectory_claims` restricted to those steps, Holm-corrected over them
    within each comparison, with ``verdict`` by the rule of :func:`rmed_core.study.run_test.run_claim`
    read through the correction: ``reproduced`` when SGD-M's is larger after Holm, ``opposite`` when
    smaller, ``not shown`` otherwise."""
    steps = sorted({int(s) for s in steps})
    have = set(rmed.step.unique())
    if not steps or not set(steps) <= have:
        raise ValueError(f"steps={steps!r}: expected probe steps of the table (have {sorted(have)})")
    out = []
    for comparison, table in _comparisons(rmed, probes):  # Adam interpolated on its whole grid, then the steps read
        c = run_claims_by(table[table.step.isin(steps)], "step", alpha=alpha).assign(comparison=comparison)
        c["verdict"] = np.where(c.direction == "larger", "reproduced",
                                np.where(c.direction == "smaller", "opposite", "not shown"))
        for i, r in c.iterrows():  # the rule's floor: with too few runs no p can reach alpha
            floor = 1 / math.comb(int(r.n_sgdm) + int(r.n_adam), int(r.n_sgdm)) if r.n_sgdm and r.n_adam else 1.0
            if floor > alpha:
                c.loc[i, "verdict"] = (f"{NOT_TESTABLE}: the smallest p with {int(r.n_sgdm)} and {int(r.n_adam)} runs "
                                       f"is {floor:.3g} > {alpha:g}")
        out.append(c)
    return pd.concat(out, ignore_index=True)[["comparison", "step", "ratio", "lower", "upper", "p_greater",
                                              "p_holm", "n_sgdm", "n_adam", "verdict"]]


def decomposition_table(rmed: pd.DataFrame, steps: Sequence[int] | None = None, *,
                        alpha: float = ALPHA) -> pd.DataFrame:
    """R_med's ratio split into the ratio of maxima and the ratio of medians, each read by the same rule.

    Only rows where R_med, :math:`h_{\\max}` and :math:`h_{\\mathrm{med}}` are all finite and positive
    are used, so the three share their tensors and
    :math:`\\text{ratio}(R_\\mathrm{med}) = \\text{ratio}(h_{\\max}) / \\text{ratio}(h_{\\mathrm{med}})` holds
    exactly. A ratio of medians below 1 with a ratio of maxima near 1 says the gap in R_med is a
    gap in the median (the bulk of the diagonal is smaller under SGD-M), not in the largest entry.

    Returns:
        One row per ``part`` (``r_med``, ``h_max``, ``h_median``) and ``step``: the columns of
        :func:`run_claims_by` (Holm over the steps of one part).
    """
    check_table("rmed", rmed, ["opt", "seed", "step", "layer", *VALUES])
    df = rmed if steps is None else rmed[rmed.step.isin(list(steps))]
    vals = df[list(VALUES)].astype(float)
    df = df[(np.isfinite(vals) & (vals > 0)).all(axis=1)]
    out = [run_claims_by(run_means(df, value=part), "step", alpha=alpha).assign(part=part) for part in VALUES]
    table = pd.concat(out, ignore_index=True)
    return table[["part", "step", "ratio", "lower", "upper", "p_greater", "p_less", "p_holm", "n_sgdm", "n_adam",
                  "direction"]]


def interpolation_summary(rmed: pd.DataFrame, probes: pd.DataFrame) -> dict[str, float]:
    """The matched-loss interpolation's error on Adam's runs (:func:`interpolation_error`): the
    median and largest absolute error of the interpolated :math:`M` in log R_med (over interior
    probes predicted from neighbours two grid steps apart), and as a factor on R_med."""
    err = interpolation_error(run_means(rmed), probes).error.astype(float).abs()
    err = err[np.isfinite(err)]
    if err.empty:
        return dict(n=0, median_log=math.nan, max_log=math.nan, median_factor=math.nan, max_factor=math.nan)
    return dict(n=int(err.size), median_log=float(err.median()), max_log=float(err.max()),
                median_factor=math.exp(float(err.median())), max_factor=math.exp(float(err.max())))


def batch_effect(small: pd.DataFrame, large: pd.DataFrame) -> pd.DataFrame:
    """How the Hessian batch moves R_med and the SGD-M / Adam ratio: the same runs (same optimizer,
    seed and step) probed on a small and on a large batch.

    Args:
        small, large: R_med tables (columns ``opt, seed, step, layer, r_med``) of the same runs at
            one step, probed on the two batches.

    Returns:
        One row per ``tensors`` (``all`` and each kind): the geometric mean over tensors (finite in
        both tables, under both optimizers) of R_med at each batch size per optimizer
        (``adam_small``, ``adam_large``, ``sgdm_small``, ``sgdm_large``), the SGD-M / Adam ratio at
        each (``ratio_small``, ``ratio_large``) and ``n_tensors``. With one seed a side there is no
        test: this says whether the ratio moves, and by how much.
    """
    for name, df in (("small", small), ("large", large)):
        check_table(name, df, ["opt", "seed", "step", "layer", "r_med"])
    key = ["opt", "seed", "step", "layer"]
    both = small[key + ["r_med"]].merge(large[key + ["r_med"]], on=key, suffixes=("_small", "_large"))
    if both.empty:
        raise ValueError("small, large: no run, step and tensor in common")
    for col in ("r_med_small", "r_med_large"):
        v = both[col].astype(float)
        both[col] = np.log(v.where(v > 0))
    wide = both.pivot_table(index=["seed", "step", "layer"], columns="opt", values=["r_med_small", "r_med_large"])
    wide = wide[np.isfinite(wide.to_numpy()).all(axis=1)]
    wide.columns = [f"{value}|{opt}" for value, opt in wide.columns]
    wide = wide.reset_index()
    wide["kind"] = wide.layer.map(lambda n: tensor_kind(str(n)))
    rows = []
    for kind in ("all", *[k for k in KINDS if k in set(wide.kind)]):
        g = wide if kind == "all" else wide[wide.kind == kind]
        if g.empty:
            continue
        row = {"tensors": kind, "n_tensors": int(len(g))}
        for opt in ("adam", "sgdm"):
            for size in ("small", "large"):
                row[f"{opt}_{size}"] = math.exp(float(g[f"r_med_{size}|{opt}"].mean()))
        for size in ("small", "large"):
            row[f"ratio_{size}"] = row[f"sgdm_{size}"] / row[f"adam_{size}"]
        rows.append(row)
    return pd.DataFrame(rows)
