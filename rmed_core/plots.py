"""Figures shared by the notebooks: curves over seeds as a mean with a band, one colour per
optimizer, diverged runs marked rather than dropped."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = ["OPT_COLORS", "LAYER_GROUPS", "band_plot", "figure_grid", "layer_group", "layer_lines"]

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


#: Parameter-tensor groups of the project's models, for colouring per-layer curves.
LAYER_GROUPS = {"embedding": "#8c564b", "attention": "#1f77b4", "mlp": "#ff7f0e", "layernorm": "#7f7f7f",
                "head": "#d62728", "conv": "#2ca02c", "other": "#9467bd"}


def layer_group(name: str) -> str:
    """The group of a parameter tensor, from its name in the project's models."""
    parts = name.split(".")
    if parts[0] in ("tok", "pos"):
        return "embedding"
    if parts[0] == "head":
        return "head"
    if any(p.startswith("ln") for p in parts):
        return "layernorm"
    if "attn" in parts:
        return "attention"
    if parts[-2:-1] and parts[-2] in ("fc", "out"):
        return "mlp"
    return "conv" if parts[0].isdigit() else "other"


def layer_lines(ax, rmed: pd.DataFrame, *, y: str = "r_med", logy: bool = True) -> None:
    """One line of ``y`` against ``step`` per parameter tensor (``layer``), coloured by
    :func:`layer_group`, with one legend entry per group."""
    seen = set()
    for name, sub in rmed.groupby("layer", sort=False):
        group = layer_group(str(name))
        ax.plot(sub["step"], sub[y], color=LAYER_GROUPS[group], alpha=0.7, linewidth=1,
                label=None if group in seen else group)
        seen.add(group)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.grid(True, alpha=0.3)
