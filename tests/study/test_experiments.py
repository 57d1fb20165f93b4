"""The grids the chapters read: seeds per scale, the notebooks' ``lr`` parameter, a tiny grid
trained into a temporary store and described."""
from __future__ import annotations

import pytest

from rmed_core.runs.store import ResultStore
from rmed_core.study.experiments import (SEEDS_PER_SCALE, describe_grid, learning_rates, run_grid, seeds_for,
                                         setup_sentence)


def test_seeds_per_scale_start_at_first():
    assert seeds_for("study") == list(range(SEEDS_PER_SCALE["study"]))
    assert seeds_for("ci", first=7) == [7, 8]
    with pytest.raises(ValueError, match="scale='huge'"):
        seeds_for("huge")


@pytest.mark.parametrize("lr, want", [(None, None), ("", None), (0.1, {"sgdm": 0.1, "adam": 0.1}),
                                      ("0.1", {"sgdm": 0.1, "adam": 0.1}), ("sgdm:0.1,adam=1e-3", {"sgdm": 0.1, "adam": 1e-3})])
def test_learning_rates_parse(lr, want):
    assert learning_rates(lr, ["sgdm", "adam"]) == want


@pytest.mark.parametrize("lr, words", [(True, "expected a number"), ("sgdm:fast", "expected a number"),
                                       ("rmsprop:0.1", "does not train")])
def test_learning_rates_refuse(lr, words):
    with pytest.raises(ValueError, match=words):
        learning_rates(lr, ["sgdm", "adam"])


def test_a_tiny_grid_is_trained_labelled_and_described(tmp_path):
    grid = run_grid(["ptb_lm"], ["sgdm", "adam"], [0], scale="ci", store=ResultStore(tmp_path), progress=False,
                    steps=3, probe_steps=(0, 3), probe_top_eig=False)
    assert len(grid.results) == 2 and not grid.diverged
    assert set(grid.loss.opt) == {"sgdm", "adam"} and (grid.loss.groupby("opt").step.count() == 3).all()
    assert set(grid.rmed.step) == {0, 3} and "layer_index" in grid.rmed
    table = describe_grid(grid)
    assert list(table.opt) == ["sgdm", "adam"] or list(table.opt) == ["adam", "sgdm"]
    sentence = setup_sentence(grid, "ptb_lm")
    assert "Penn Treebank" in sentence and "3 iterations" in sentence and "seeds 0" in sentence
