"""The final-loss rule, once: the trainer's tuning and the premise's tables score a run alike."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from rmed_core.runs.tuning import final_loss_of
from rmed_core.study.premise import final_loss


@pytest.mark.parametrize("n", [1, 7, 10, 19, 20, 1250])
def test_the_tail_is_the_last_tenth_of_the_iterations(n):
    losses = [float(i) for i in range(n)]
    tail = losses[-max(1, n // 10):]
    assert final_loss_of(losses) == sum(tail) / len(tail)


def test_premise_table_applies_the_same_rule():
    loss = pd.DataFrame({"task": "t", "opt": "adam", "lr": 0.1, "seed": [0] * 30 + [1] * 30,
                         "step": list(range(30)) * 2, "loss": [3.0 - 0.01 * i for i in range(30)] + [1.0] * 29 + [9.0]})
    got = final_loss(loss).set_index("seed").final_loss
    for seed, g in loss.groupby("seed"):
        assert got[seed] == final_loss_of(g.loss.to_numpy())


def test_a_diverged_run_scores_inf():
    assert final_loss_of([1.0, 2.0], diverged=True) == math.inf
    assert final_loss_of([1.0, float("inf")]) == math.inf
    with pytest.raises(ValueError, match="no iterations"):
        final_loss_of([])
