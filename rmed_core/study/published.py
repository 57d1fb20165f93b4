"""The paper's numbers, as far as they are public, and this project's rows beside them.

The one table of numbers from the paper that is public (Jiang et al. 2023, reprinted by Ahn et al.
2023 as "full Transformers, from Jiang et al."): :math:`R^{SGD}_{med} / R^{Adam}_{med}`, mean (std)
over runs, for three layers of a Transformer; "layer #" is an index into the model's parameter
tensors; task and model size are not given.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .units import units_from
from .verdict import claim, claims_by_kind

__all__ = ["PUBLISHED_RATIOS", "PUBLISHED_ITERATIONS", "published_steps", "compare_with_published", "claims_at",
           "published_spread"]

#: The published ratio table: layer index, iteration, mean and std of R^SGD_med / R^Adam_med.
PUBLISHED_RATIOS = pd.DataFrame(
    [(15, 750, 1.65, 0.65), (15, 1250, 2.01, 1.00),
     (17, 750, 1.91, 0.53), (17, 1250, 1.43, 0.63),
     (22, 750, 3.54, 1.21), (22, 1250, 2.28, 1.18)],
    columns=["layer_index", "step", "paper_mean", "paper_std"],
)


#: The iterations of the published table.
PUBLISHED_ITERATIONS = (750, 1250)


def published_steps(probed: Sequence[int]) -> dict[int, int]:
    """The probe step that stands for each published iteration (750 and 1250): the same step where
    the runs were probed there; otherwise (runs shorter than the paper's, such as the ``ci`` scale)
    the probe nearest 60% of the last one for 750 and the last probe for 1250 -- a stated choice,
    since the paper's number of iterations is not known.

    >>> published_steps([750, 1250])
    {750: 750, 1250: 1250}
    >>> published_steps([0, 10, 20])
    {750: 10, 1250: 20}
    """
    steps = sorted({int(s) for s in probed})
    if not steps:
        raise ValueError("probed: no probe steps; the runs were not probed")
    if set(PUBLISHED_ITERATIONS) <= set(steps):
        return {it: it for it in PUBLISHED_ITERATIONS}
    last = steps[-1]
    return {750: min(steps, key=lambda s: abs(s - 0.6 * last)), 1250: last}


def compare_with_published(ratios: pd.DataFrame, step_map: dict[int, int] | None = None) -> pd.DataFrame:
    """Each row of :data:`PUBLISHED_RATIOS` beside this project's claim at the same iteration.

    The published rows are three tensors of a model whose task and size are not given, so "layer #"
    cannot name a tensor here: each published row stands beside the claim over *all* of this
    project's tensors at the matching step (:func:`rmed_core.study.verdict.claim`: geometric-mean ratio,
    its 95% t-interval, the exact sign-flip p over seeds and the verdict);
    :func:`rmed_core.study.verdict.claims_by_kind` breaks that claim down by kind of tensor.

    Args:
        ratios: output of :func:`ratio_table` or of :func:`rmed_core.study.units.log_ratios` (one task).
        step_map: the step of this project's runs that stands for each published iteration
            (default: the same number).

    Returns:
        Columns ``layer #, paper iteration, paper, step (here), this project (all tensors), p, seeds,
        tensors, verdict``; ``paper`` and ``this project`` are ratios, mean (std) over runs and
        geometric mean [95% interval] over seeds.
    """
    units = units_from(ratios)
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


def claims_at(units: pd.DataFrame, step_map: dict[int, int]) -> pd.DataFrame:
    """:func:`rmed_core.study.verdict.claims_by_kind` at the step standing for each published iteration,
    with the published rows of that iteration beside them.

    The published rows are three tensors ("layer #" 15, 17, 22) of a model whose task and size are
    not given: they stand *beside* the rows here (all tensors, then each kind), never matched to a
    tensor of this project's model.

    Args:
        units: :func:`rmed_core.study.units.log_ratios` of one task.
        step_map: published iteration -> step of these runs (:func:`published_steps`).

    Returns:
        Columns ``paper iteration, step, tensors, n_tensors, n_seeds, ratio, lower, upper, p,
        verdict, n_dropped, published`` (``published``: "layer 15: 1.65 (0.65); ..." at that
        iteration, mean (std) over runs).
    """
    if "task" in units and units.task.nunique() > 1:
        raise ValueError(f"units: {units.task.nunique()} tasks; a claim is about one task: select it")
    frames = []
    for iteration, step in step_map.items():
        at = units[units.step == step]
        if at.empty:
            continue
        pub = PUBLISHED_RATIOS[PUBLISHED_RATIOS.step == iteration]
        text = "; ".join(f"layer {r.layer_index}: {r.paper_mean:.2f} ({r.paper_std:.2f})" for r in pub.itertuples())
        frames.append(claims_by_kind(at).assign(**{"paper iteration": iteration, "step": step, "published": text}))
    if not frames:
        raise ValueError(f"units: no unit at the steps {sorted(set(step_map.values()))}")
    out = pd.concat(frames, ignore_index=True)
    return out[["paper iteration", "step", *[c for c in out.columns if c not in ("paper iteration", "step")]]]


def published_spread(step: int = 750, published: pd.DataFrame | None = None) -> pd.DataFrame:
    """The published effect and spread at iteration ``step``, in log space: ``log_effect`` =
    :math:`\\log(\\text{paper mean})` and ``log_sd`` = paper std / paper mean, the per-run spread of
    the log-ratio by the delta method (:math:`\\mathrm{sd}(\\log X) \\approx \\mathrm{sd}(X)/E[X]`).

    Args:
        published: a table like :data:`PUBLISHED_RATIOS` (the default).
    """
    if published is None:
        published = PUBLISHED_RATIOS
    missing = {"layer_index", "step", "paper_mean", "paper_std"} - set(published.columns)
    if missing:
        raise ValueError(f"published: the table lacks columns {sorted(missing)}")
    rows = published[published.step == step]
    if rows.empty:
        raise ValueError(f"step={step!r}: the published table has iterations {sorted(published.step.unique())}")
    return pd.DataFrame({"layer_index": rows.layer_index.to_numpy(), "log_effect": np.log(rows.paper_mean.to_numpy()),
                         "log_sd": (rows.paper_std / rows.paper_mean).to_numpy()})
