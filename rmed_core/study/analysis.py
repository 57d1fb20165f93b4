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

from .verdict import claim, claims_by_kind, log_ratios, tensor_kind

__all__ = ["PUBLISHED_RATIOS", "PUBLISHED_ITERATIONS", "ratio_table", "compare_with_published", "verdict", "rank_trend", "rmed_parts",
           "published_steps", "claims_at", "rmed_by_tensor", "final_loss", "tuning_table", "final_loss_claim",
           "smoothed_loss", "matched_loss_levels", "iterations_to_loss", "matched_loss_table", "premise_verdict"]

#: The published ratio table: layer index, iteration, mean and std of R^SGD_med / R^Adam_med.
PUBLISHED_RATIOS = pd.DataFrame(
    [(15, 750, 1.65, 0.65), (15, 1250, 2.01, 1.00),
     (17, 750, 1.91, 0.53), (17, 1250, 1.43, 0.63),
     (22, 750, 3.54, 1.21), (22, 1250, 2.28, 1.18)],
    columns=["layer_index", "step", "paper_mean", "paper_std"],
)
#: The iterations of the published table.
PUBLISHED_ITERATIONS = (750, 1250)


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


# -- the steps that stand for the published iterations ---------------------------------------------
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


def claims_at(units: pd.DataFrame, step_map: dict[int, int]) -> pd.DataFrame:
    """:func:`rmed_core.verdict.claims_by_kind` at the step standing for each published iteration,
    with the published rows of that iteration beside them.

    The published rows are three tensors ("layer #" 15, 17, 22) of a model whose task and size are
    not given: they stand *beside* the rows here (all tensors, then each kind), never matched to a
    tensor of this project's model.

    Args:
        units: :func:`rmed_core.verdict.log_ratios` of one task.
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


def rmed_by_tensor(rmed: pd.DataFrame, *, steps: Sequence[int] | None = None,
                   by: Sequence[str] = ("task", "opt", "step", "layer_index", "layer")) -> pd.DataFrame:
    """R_med of each tensor over seeds: its median, minimum and maximum over the seeds where it is
    defined, how many those are (``n_seeds``) and in how many it is undefined (``n_undefined``),
    with the tensor's ``kind`` (:func:`rmed_core.verdict.tensor_kind`).

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


# -- training loss: the premise -------------------------------------------------------------------
_RUN = ("task", "opt", "lr", "seed")


def _check_loss(loss: pd.DataFrame, by: Sequence[str]) -> None:
    missing = {"step", "loss", *by} - set(loss.columns)
    if missing:
        raise ValueError(f"loss: the table lacks columns {sorted(missing)}")


def final_loss(loss: pd.DataFrame, *, by: Sequence[str] = _RUN) -> pd.DataFrame:
    """Each run's final training loss by the rule of :func:`rmed_core.trainer.tune_lr`: the mean
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
        tail = values[-max(1, len(values) // 10):]
        rows.append({**dict(zip(by, key)), "final_loss": np.inf if diverged else float(tail.mean()),
                     "diverged": diverged, "iterations": int(len(values))})
    return pd.DataFrame(rows, columns=[*by, "final_loss", "diverged", "iterations"])


def tuning_table(loss: pd.DataFrame) -> pd.DataFrame:
    """The learning-rate tuning of each optimizer, one row per ``(task, opt, lr)``: the final loss
    (:func:`final_loss`; mean over seeds where a rate was run with several), whether it diverged,
    ``best`` (the lowest final loss of that optimizer: :func:`rmed_core.trainer.tune_lr`'s winner;
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
    :func:`rmed_core.verdict.claim` on the per-seed log-ratio of final losses
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
    reach it (:func:`iterations_to_loss`), and the rule of :func:`rmed_core.verdict.claim` on the
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
    :func:`rmed_core.verdict.claim`: ``final`` on the ratio of final training losses
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
