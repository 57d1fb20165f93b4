"""The book's figures on small tables: what each draws, counted on the axes."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # the tests draw off screen; the notebooks keep the inline backend

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from rmed_core.book.plots import KIND_COLORS, band_plot, figure_grid, layer_lines, opt_scatter  # noqa: E402
from rmed_core.kinds import KINDS  # noqa: E402


def test_figure_grid_hides_the_spare_axes():
    fig, axes = figure_grid(3)
    assert len(axes) == 3 and len(fig.axes) == 4 and not fig.axes[3].get_visible()


def test_band_plot_draws_one_line_per_optimizer_and_counts_diverged_runs():
    df = pd.DataFrame({"opt": ["adam"] * 4 + ["sgdm"] * 4, "seed": [0, 0, 1, 1] * 2, "step": [0, 1] * 4,
                       "loss": [2.0, 1.0, 2.2, 1.1, 2.0, 1.5, np.nan, np.inf]})  # sgdm seed 1: no finite loss
    _, (ax,) = figure_grid(1)
    band_plot(ax, df, "step", "loss")
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["adam", "sgdm (1 diverged)"]


def test_every_kind_has_a_colour():
    assert set(KINDS) <= set(KIND_COLORS)


def test_layer_lines_has_one_legend_entry_per_kind():
    df = pd.DataFrame({"layer": ["tok.weight", "blocks.0.fc.weight", "blocks.0.out.weight"] * 2,
                       "step": [0, 0, 0, 1, 1, 1], "r_med": [2.0, 3.0, 4.0, 2.5, 3.5, 4.5]})
    _, (ax,) = figure_grid(1)
    layer_lines(ax, df)
    assert len(ax.get_lines()) == 3
    assert sorted(ax.get_legend_handles_labels()[1]) == ["MLP", "embedding"]


def test_opt_scatter_pairs_tensors_defined_under_both():
    summary = pd.DataFrame({"step": 1, "layer": ["a.weight", "b.weight", "c.weight"] * 2,
                            "kind": "other", "opt": ["sgdm"] * 3 + ["adam"] * 3,
                            "median": [4.0, 2.0, np.nan, 2.0, 3.0, 1.0]})
    _, (ax,) = figure_grid(1)
    both = opt_scatter(ax, summary, x_opt="adam", y_opt="sgdm")
    assert list(both.layer) == ["a.weight", "b.weight"]
    assert int((both.sgdm > both.adam).sum()) == 1
    with pytest.raises(ValueError, match="several steps"):
        opt_scatter(ax, summary.assign(step=[1, 2] * 3), x_opt="adam", y_opt="sgdm")
