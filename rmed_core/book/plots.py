"""Figures shared by the notebooks: curves over seeds as a mean with a band, one colour per
optimizer, diverged runs marked rather than dropped."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..kinds import tensor_kind

__all__ = ["OPT_COLORS", "KIND_COLORS", "band_plot", "figure_grid", "layer_lines", "rmed_by_tensor_plot", "ratio_plot",
           "opt_scatter", "trajectory_plot", "ratio_over_time_plot"]

#: Font sizes for figures about 7.5 inches wide, the width of the book's text column.
plt.rcParams.update({"font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8,
                     "xtick.labelsize": 8, "ytick.labelsize": 8, "figure.titlesize": 10})
try:  # sharper PNGs in notebooks (and so in the book); a no-op outside IPython
    from matplotlib_inline.backend_inline import set_matplotlib_formats

    set_matplotlib_formats("retina")
except ImportError:  # pragma: no cover
    pass

#: One colour per optimizer, the same in every figure of the book.
OPT_COLORS = {"gd": "#d62728", "sgd": "#ff7f0e", "sgdm": "#d62728", "adam": "#1f77b4", "adamw": "#17becf",
              "signgd": "#2ca02c", "signum": "#2ca02c", "rmsprop": "#9467bd", "adagrad": "#8c564b"}


def figure_grid(n: int, *, width: float = 3.75, height: float = 2.9, ncols: int | None = None):
    """``n`` axes, at most two side by side (or ``ncols``), each ``width`` × ``height`` inches:
    two panels fill the book's text column."""
    ncols = ncols or min(n, 2)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def band_plot(ax, df: pd.DataFrame, x: str, y: str, *, hue: str = "opt", over: str = "seed",
              logx: bool = False, logy: bool = False, band: str = "minmax", label_suffix: str = "",
              linestyle: str = "-", marker: str | None = None, hue_order: Sequence[str] | None = None,
              center: str = "mean") -> None:
    """Plot the ``center`` (``"mean"`` or ``"median"``) of ``y`` against ``x`` for each value of
    ``hue``, with a band over ``over`` (``band="minmax"``: min to max; ``"std"``: ± one standard
    deviation; ``"none"``). Non-finite values (diverged runs) are left out and counted in the legend. On a
    log x-axis with few distinct values, those values become the ticks."""
    for key in hue_order or list(dict.fromkeys(df[hue])):
        sub = df[df[hue] == key]
        if sub.empty:
            continue
        finite = sub[np.isfinite(sub[y].astype(float))]
        n_bad = sub[over].nunique() - finite[over].nunique() if over in sub else 0
        stats = finite.groupby(x)[y].agg(["mean", "median", "min", "max", "std"]).reset_index()
        label = f"{key}{label_suffix}" + (f" ({n_bad} diverged)" if n_bad else "")
        color = OPT_COLORS.get(str(key))
        ax.plot(stats[x], stats[center], linestyle=linestyle, marker=marker, color=color, label=label)
        if band != "none":
            lo, hi = ((stats["min"], stats["max"]) if band == "minmax"
                      else (stats["mean"] - stats["std"].fillna(0), stats["mean"] + stats["std"].fillna(0)))
            ax.fill_between(stats[x], lo, hi, color=color, alpha=0.2, linewidth=0)
    if logx:
        ax.set_xscale("log")
        ticks = sorted(df[x].unique())
        if len(ticks) <= 10:
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.minorticks_off()
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(True, alpha=0.3)


def layer_lines(ax, rmed: pd.DataFrame, *, y: str = "r_med", logy: bool = True) -> None:
    """One line of ``y`` against ``step`` per parameter tensor (``layer``), coloured by its kind
    (:func:`rmed_core.kinds.tensor_kind`, :data:`KIND_COLORS`), with one legend entry per kind."""
    seen = set()
    for name, sub in rmed.groupby("layer", sort=False):
        kind = tensor_kind(str(name))
        ax.plot(sub["step"], sub[y], color=KIND_COLORS[kind], alpha=0.7, linewidth=1,
                label=None if kind in seen else kind)
        seen.add(kind)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.grid(True, alpha=0.3)


#: One colour per kind of parameter tensor (:func:`rmed_core.kinds.tensor_kind`), and for "all".
KIND_COLORS = {"all": "#000000", "embedding": "#8c564b", "conv": "#2ca02c", "attention": "#1f77b4", "MLP": "#ff7f0e",
               "LayerNorm": "#bcbd22", "output": "#d62728", "other": "#9467bd"}


def _kind_order(kinds) -> list[str]:
    return [k for k in KIND_COLORS if k in set(kinds)] + sorted(set(kinds) - set(KIND_COLORS))


def rmed_by_tensor_plot(ax, summary: pd.DataFrame, *, opts: Sequence[str], title: str = "") -> None:
    """R_med of every tensor at one probe step: for each optimizer of ``opts`` (its colour) the
    median over seeds with a bar from the smallest to the largest seed, the tensors grouped by kind
    (shaded spans, labelled) and in model order within a kind. ``summary``: one step of
    :func:`rmed_core.study.units.rmed_by_tensor`. A tensor whose R_med is undefined in every seed has
    no point."""
    if summary.step.nunique() > 1:
        raise ValueError("summary: several steps; select one")
    tensors = (summary[["layer_index", "layer", "kind"]].drop_duplicates("layer")
               .assign(order=lambda d: d.kind.map({k: i for i, k in enumerate(_kind_order(d.kind))}))
               .sort_values(["order", "layer_index"]).reset_index(drop=True))
    x = {name: i for i, name in enumerate(tensors.layer)}
    width = 0.6 / max(1, len(opts))
    for j, opt in enumerate(opts):
        sub = summary[(summary.opt == opt) & summary["median"].notna()]
        xs = np.array([x[n] for n in sub.layer]) + (j - (len(opts) - 1) / 2) * width
        ax.errorbar(xs, sub["median"], yerr=[sub["median"] - sub["min"], sub["max"] - sub["median"]], fmt="o",
                    markersize=3, elinewidth=0.8, capsize=0, color=OPT_COLORS.get(opt), label=opt)
    for k, g in tensors.groupby("kind", sort=False):
        lo, hi = g.index.min() - 0.5, g.index.max() + 0.5
        ax.axvspan(lo, hi, color=KIND_COLORS.get(k, "#cccccc"), alpha=0.08, linewidth=0)
        ax.text((lo + hi) / 2, 1.0, k, transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=7,
                color=KIND_COLORS.get(k, "#333333"))
    ax.set_yscale("log")
    ax.set_xlim(-0.5, len(tensors) - 0.5)
    ax.set_xticks(range(len(tensors)), [str(i) for i in tensors.layer_index], fontsize=6)
    ax.set_xlabel("parameter tensor (index in the model), grouped by kind")
    ax.set_ylabel(r"$R_\mathrm{med}$")
    ax.grid(True, axis="y", alpha=0.3)
    if title:
        ax.set_title(title, pad=14)


def ratio_plot(ax, table: pd.DataFrame, *, by: str = "paper iteration", labels: dict | None = None,
               tensors: pd.DataFrame | None = None, published: pd.DataFrame | None = None,
               band: tuple[float, float] | None = None,
               ylabel: str = r"$R^{\mathrm{SGDM}}_{\mathrm{med}} / R^{\mathrm{Adam}}_{\mathrm{med}}$") -> None:
    """Ratios with their intervals on a log axis, one column of points per kind of tensor (row
    ``tensors`` of :func:`rmed_core.study.verdict.claims_by_kind` or
    :func:`rmed_core.study.verdict.equivalence_by_kind`: ``ratio, lower, upper``), one marker per value of
    ``by`` (the iteration), a line at 1.

    Args:
        labels: the legend's text for each value of ``by`` (default ``"<by> <value>"``).
        tensors: optional per-tensor ratios (columns ``kind``, ``by`` and ``geo_mean``, as
            :func:`rmed_core.study.units.ratio_table` gives them), drawn as faint dots behind.
        published: optional rows of :data:`rmed_core.study.published.PUBLISHED_RATIOS`, drawn as grey
            mean ± std in a column of their own (three tensors of a model whose kinds are not known).
        band: a shaded range (the equivalence margin of the control).
    """
    kinds = ["all"] + [k for k in _kind_order(table.tensors) if k != "all"]
    columns = kinds + (["published"] if published is not None else [])
    values = list(dict.fromkeys(table[by]))
    markers = ["o", "s", "^", "D"]
    offset = {v: (i - (len(values) - 1) / 2) * 0.22 for i, v in enumerate(values)}
    if band is not None:
        ax.axhspan(*band, color="#2ca02c", alpha=0.1, linewidth=0, label=f"margin [{band[0]:.2f}, {band[1]:.2f}]")
    ax.axhline(1, color="k", linewidth=0.8)
    for i, v in enumerate(values):
        sub = table[table[by] == v].set_index("tensors")
        for k in kinds:
            if k not in sub.index:
                continue
            r = sub.loc[k]
            xk = columns.index(k) + offset[v]
            if tensors is not None and k != "all":
                t = tensors[(tensors.kind == k) & (tensors[by] == v)]
                ax.scatter(np.full(len(t), xk), t.geo_mean, s=6, color=KIND_COLORS.get(k), alpha=0.25, linewidth=0)
            if np.isfinite(r.lower) and np.isfinite(r.upper):
                ax.errorbar(xk, r.ratio, yerr=[[r.ratio - r.lower], [r.upper - r.ratio]], fmt=markers[i % 4],
                            color=KIND_COLORS.get(k), markersize=5, capsize=2,
                            label=(labels or {}).get(v, f"{by} {v}") if k == "all" else None)
            else:
                ax.plot(xk, r.ratio, markers[i % 4], color=KIND_COLORS.get(k), markersize=5)
        if published is not None:
            p = published[published.step == v]
            xp = columns.index("published") + offset[v]
            ax.errorbar(np.full(len(p), xp), p.paper_mean, yerr=[np.minimum(p.paper_std, p.paper_mean * 0.95),
                                                               p.paper_std],
                        fmt=markers[i % 4], color="#555555", markerfacecolor="none", markersize=4, capsize=2)
    ax.set_yscale("log")
    ax.set_xticks(range(len(columns)), columns, rotation=20)
    ax.set_xlim(-0.6, len(columns) - 0.4)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)


def opt_scatter(ax, summary: pd.DataFrame, *, x_opt: str, y_opt: str) -> pd.DataFrame:
    """Each tensor's R_med under ``y_opt`` against ``x_opt`` (medians over seeds) at one probe step,
    coloured by kind, with the diagonal dotted, on log axes. ``summary``: one step of
    :func:`rmed_core.study.units.rmed_by_tensor`. Returns the plotted pairs (``layer, kind`` and
    one column per optimizer): tensors defined under both."""
    if summary.step.nunique() > 1:
        raise ValueError("summary: several steps; select one")
    wide = summary.pivot_table(index=["layer", "kind"], columns="opt", values="median")
    both = wide.dropna(subset=[x_opt, y_opt]).reset_index()
    for kind in _kind_order(both.kind):
        g = both[both.kind == kind]
        ax.scatter(g[x_opt], g[y_opt], s=14, color=KIND_COLORS.get(kind), label=kind)
    lim = [min(both[[x_opt, y_opt]].min().min(), 1) * 0.8, both[[x_opt, y_opt]].max().max() * 1.25]
    ax.plot(lim, lim, color="k", linewidth=0.8, linestyle=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"R_med under {x_opt} (median over seeds)")
    ax.set_ylabel(f"R_med under {y_opt} (median over seeds)")
    return both


def trajectory_plot(ax, table: pd.DataFrame, *, tensors: str = "all", opts: Sequence[str] = ("sgdm", "adam"),
                    y: str = "geo_mean", logy: bool = True) -> None:
    """One optimizer's curve of ``y`` against ``step`` per colour, with its ``lower``-``upper`` band:
    the rows of ``table`` (:func:`rmed_core.study.trajectory.kind_trajectories`) whose ``tensors`` is
    ``tensors``."""
    sub = table[table.tensors == tensors]
    for opt in opts:
        g = sub[sub.opt == opt].sort_values("step")
        if g.empty:
            continue
        color = OPT_COLORS.get(opt)
        ax.plot(g.step, g[y], marker="o", markersize=3, color=color, label=f"{opt} ({int(g.n_runs.max())} runs)")
        ax.fill_between(g.step, g.lower, g.upper, color=color, alpha=0.2, linewidth=0)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.grid(True, alpha=0.3)


def ratio_over_time_plot(ax, claims: pd.DataFrame, *, marks: Sequence[int] = (),
                         ylabel: str = r"$R^{\mathrm{SGDM}}_{\mathrm{med}} / R^{\mathrm{Adam}}_{\mathrm{med}}$") -> None:
    """The SGD-M / Adam ratio with its interval against SGD-M's step, one line per ``comparison``
    of ``claims`` (:func:`rmed_core.study.trajectory.trajectory_claims`: at matched iteration, solid;
    at matched loss, dashed), filled markers where the Holm-corrected test shows a difference, a line
    at 1 and dotted verticals at ``marks`` (the published iterations)."""
    styles = {"iteration": ("-", "o", "#000000", "matched iteration"), "loss": ("--", "s", "#7f7f7f", "matched loss")}
    ax.axhline(1, color="k", linewidth=0.8)
    for s in marks:
        ax.axvline(s, color="#999999", linestyle=":", linewidth=0.8)
    for comparison, g in claims.groupby("comparison", sort=False):
        ls, mk, color, label = styles.get(comparison, ("-", "^", "#1f77b4", comparison))
        g = g.sort_values("step")
        shift = 8 if comparison == "loss" else 0
        ax.plot(g.step + shift, g.ratio, linestyle=ls, color=color, linewidth=1, label=label)
        ok = g.lower.notna() & g.upper.notna()
        ax.errorbar(g.step[ok] + shift, g.ratio[ok], yerr=[g.ratio[ok] - g.lower[ok], g.upper[ok] - g.ratio[ok]],
                    fmt="none", ecolor=color, elinewidth=0.8, capsize=2)
        shown = g.direction != "no difference shown"
        ax.scatter(g.step[shown] + shift, g.ratio[shown], marker=mk, color=color, s=22, zorder=3)
        ax.scatter(g.step[~shown] + shift, g.ratio[~shown], marker=mk, facecolors="white", edgecolors=color, s=22,
                   zorder=3)
    ax.set_yscale("log")
    ax.set_xlabel("SGD-M's step")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
