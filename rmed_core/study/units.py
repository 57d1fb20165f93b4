"""The units of the study's comparisons, from stored R_med tables: the per-tensor log-ratios
:math:`y_{ks} = \\log(R^{num}_{med,ks} / R^{den}_{med,ks})` of two optimizers paired by seed, their
table per layer and step, and R_med per tensor over seeds with its two parts (maximum and median).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..kinds import tensor_kind, tensor_role

__all__ = ["log_ratios", "ratio_table", "units_from", "rmed_by_tensor", "rmed_parts", "gap_decomposition"]


def log_ratios(rmed: pd.DataFrame, *, num: str = "sgdm", den: str = "adam", steps: Sequence[int] | None = None,
               by: Sequence[str] = ("task", "layer_index", "layer")) -> pd.DataFrame:
    """The units :math:`y_{ks} = \\log(R_{med}(num) / R_{med}(den))`, one row per tensor, step and
    seed probed under both optimizers (the two runs of a seed share initialisation and data order).

    Args:
        rmed: columns ``opt, seed, step, r_med, layer`` and those of ``by`` (as
            :func:`rmed_core.load_results` ``("rmed")`` returns), one run per optimizer and seed.
        steps: the steps to keep (default: every step probed under both).

    Returns:
        Columns ``*by, step, seed, kind, role, ratio, y``. A unit whose R_med is undefined or
        infinite under either optimizer keeps its row with a non-finite ``y``: :func:`claim` leaves
        it out and counts it.
    """
    keys = list(dict.fromkeys([*by, "layer", "step", "seed"]))
    missing = {"opt", "r_med", *keys} - set(rmed.columns)
    if missing:
        raise ValueError(f"rmed: the table lacks columns {sorted(missing)}")
    sides = []
    for opt in (num, den):
        side = rmed[rmed.opt == opt]
        if side.duplicated(keys).any():
            raise ValueError(f"rmed: several rows per {tuple(keys)} under opt={opt!r} (several learning rates or "
                             "scales?); filter the table to one run per optimizer and seed")
        sides.append(side.set_index(keys)["r_med"].astype(float))
    paired = pd.concat(sides, axis=1, keys=["a", "b"], join="inner").reset_index()
    if steps is not None:
        paired = paired[paired.step.isin(list(steps))]
    if paired.empty:
        raise ValueError(f"rmed: no (layer, step, seed) probed under both {num!r} and {den!r}"
                         + (f" at steps {list(steps)}" if steps is not None else ""))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = paired.a / paired.b
        y = np.log(ratio.where(ratio > 0))
    out = paired[keys].assign(kind=paired.layer.map(lambda n: tensor_kind(str(n))),
                              role=paired.layer.map(lambda n: tensor_role(str(n))), ratio=ratio, y=y)
    return out.sort_values(keys, kind="stable").reset_index(drop=True)


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
        (``kind`` from :func:`rmed_core.kinds.tensor_kind`; ``by_seed``: ``{seed: log-ratio}``).
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


def units_from(ratios: pd.DataFrame) -> pd.DataFrame:
    """Units (``layer, step, seed, y``) from :func:`ratio_table` output or from units themselves."""
    if {"seed", "y"} <= set(ratios.columns):
        return ratios
    if "by_seed" not in ratios:
        raise ValueError("ratios: the table lacks columns ['by_seed'] (ratio_table's output) or ['seed', 'y'] "
                         "(log_ratios's output)")
    rows = [{"layer": r.layer, "step": r.step, "seed": s, "y": y, **({"task": r.task} if "task" in ratios else {})}
            for r in ratios.itertuples() for s, y in r.by_seed.items()]
    return pd.DataFrame(rows, columns=["layer", "step", "seed", "y", *(["task"] if "task" in ratios else [])])


def rmed_by_tensor(rmed: pd.DataFrame, *, steps: Sequence[int] | None = None,
                   by: Sequence[str] = ("task", "opt", "step", "layer_index", "layer")) -> pd.DataFrame:
    """R_med of each tensor over seeds: its median, minimum and maximum over the seeds where it is
    defined, how many those are (``n_seeds``) and in how many it is undefined (``n_undefined``),
    with the tensor's ``kind`` (:func:`rmed_core.kinds.tensor_kind`).

    Args:
        rmed: a table as :func:`rmed_core.load_results` ``("rmed")`` returns it (one run per
            optimizer and seed).
        steps: the probe steps to keep (default: all).
    """
    missing = {"seed", "r_med", *by} - set(rmed.columns)
    if missing:
        raise ValueError(f"rmed: the table lacks columns {sorted(missing)}")
    df = rmed if steps is None else rmed[rmed.step.isin(list(steps))]
    if df.empty:
        raise ValueError(f"rmed: no row at steps {list(steps or [])}")
    r = df.r_med.astype(float)
    df = df.assign(r_med=r.where(np.isfinite(r)))
    out = (df.groupby(list(by), sort=True)
           .agg(median=("r_med", "median"), min=("r_med", "min"), max=("r_med", "max"), n_seeds=("r_med", "count"),
                n_runs=("seed", "nunique"))
           .reset_index())
    out["n_undefined"] = out.pop("n_runs") - out.n_seeds
    out.insert(len(by), "kind", out.layer.map(lambda n: tensor_kind(str(n))))
    return out


def rmed_parts(rmed: pd.DataFrame, *, steps: Sequence[int] | None = None) -> pd.DataFrame:
    """The two parts of R_med = max|h| / median|h| of each tensor, per optimizer and step: the
    geometric mean over seeds of ``h_max``, of ``h_median`` and of ``r_med`` (tensors where R_med is
    undefined left out), so that ``r_med = h_max / h_median`` holds for the means too and a ratio of
    two optimizers' R_med splits exactly into the ratio of their maxima over that of their medians.
    Columns: ``opt, step, layer, h_max, h_median, r_med, n_seeds``."""
    missing = {"opt", "step", "layer", "seed", "h_max", "h_median", "r_med"} - set(rmed.columns)
    if missing:
        raise ValueError(f"rmed: the table lacks columns {sorted(missing)}")
    df = rmed if steps is None else rmed[rmed.step.isin(list(steps))]
    df = df[np.isfinite(df.r_med.astype(float))]
    if df.empty:
        raise ValueError(f"rmed: no defined R_med at steps {list(steps or [])}")
    logs = df.assign(h_max=np.log(df.h_max.astype(float)), h_median=np.log(df.h_median.astype(float)),
                     r_med=np.log(df.r_med.astype(float)))
    out = (logs.groupby(["opt", "step", "layer"], sort=False)
           .agg(h_max=("h_max", "mean"), h_median=("h_median", "mean"), r_med=("r_med", "mean"),
                n_seeds=("seed", "nunique"))
           .reset_index())
    return out.assign(**{c: np.exp(out[c]) for c in ("h_max", "h_median", "r_med")})


def gap_decomposition(parts: pd.DataFrame, *, num: str = "sgdm", den: str = "adam") -> pd.DataFrame:
    """Where each tensor's gap between two optimizers lies: since :math:`R = h_{max}/h_{med}`,

    .. math:: \\log\\frac{R^{num}}{R^{den}} = \\log\\frac{h^{num}_{max}}{h^{den}_{max}}
              - \\log\\frac{h^{num}_{med}}{h^{den}_{med}},

    and the median's share of the gap is the second term over the left side. One standard for both
    parts and for every model: the gap is *in the median* when that share exceeds 1/2, *in the
    maximum* otherwise.

    Args:
        parts: :func:`rmed_parts` of one step (geometric means over seeds, so the identity holds).

    Returns:
        Indexed by ``layer``: ``r_med_ratio, max_ratio, median_ratio, median_share, gap_in`` and the
        parts of both optimizers (``h_max (sgdm)``, ...), sorted by ``r_med_ratio``, largest first.

    >>> p = pd.DataFrame({"opt": ["sgdm", "adam"], "step": 1, "layer": "w", "h_max": [2.0, 2.0],
    ...                   "h_median": [0.1, 0.4], "r_med": [20.0, 5.0], "n_seeds": 3})
    >>> d = gap_decomposition(p).loc["w"]
    >>> float(d.r_med_ratio), float(d.median_share), d.gap_in
    (4.0, 1.0, 'median')
    """
    if parts.step.nunique() > 1:
        raise ValueError(f"parts: {parts.step.nunique()} steps; select one")
    wide = parts.pivot(index="layer", columns="opt", values=["h_max", "h_median", "r_med"])
    for o in (num, den):
        if ("r_med", o) not in wide.columns:
            raise ValueError(f"parts: no rows of opt={o!r}")
    wide = wide.dropna(subset=[("r_med", num), ("r_med", den)])
    out = pd.DataFrame(index=wide.index)
    out["r_med_ratio"] = wide["r_med", num] / wide["r_med", den]
    out["max_ratio"] = wide["h_max", num] / wide["h_max", den]
    out["median_ratio"] = wide["h_median", num] / wide["h_median", den]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["median_share"] = -np.log(out.median_ratio) / np.log(out.r_med_ratio)
    out["gap_in"] = np.where(out.median_share > 0.5, "median", "maximum")
    for v in ("h_max", "h_median", "r_med"):
        for o in (num, den):
            out[f"{v} ({o})"] = wide[v, o]
    return out.sort_values("r_med_ratio", ascending=False)
