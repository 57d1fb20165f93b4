"""The control's rule on tables whose answer is known: a degenerate control is inconclusive with its
reason, a rate that kills units is not chosen, and the three readings (gap, no gap, inconclusive)
come where they should."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from rmed_core.study.control import active_rmed, control_verdict, dead_fractions, pick_control_rate

LAYERS = ["0.weight", "0.bias", "3.weight", "6.weight"]


def _rmed(log_ratio: float, sd: float, *, n: int = 6, dead: float = 0.1, step: int = 1250, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = []
    for opt in ("sgdm", "adam"):
        for s in range(n):
            shift = rng.normal(log_ratio if opt == "sgdm" else 0.0, sd)
            for i, layer in enumerate(LAYERS):
                act = math.exp(-(2.0 + 0.3 * i + shift))
                rows.append(dict(opt=opt, seed=s, step=step, layer=layer, n_used=100, n_zero=int(100 * dead),
                                 h_max=1.0, h_median_active=act, h_median=act, r_med=1.0 / act))
    return pd.DataFrame(rows)


def _final(sgdm: float = 0.4, adam: float = 0.35, n: int = 6):
    return pd.DataFrame([dict(opt=o, seed=s, final_loss=v) for o, v in (("sgdm", sgdm), ("adam", adam))
                         for s in range(n)])


def test_a_clear_gap_an_equivalence_and_a_wide_interval_read_as_they_should():
    assert control_verdict(_rmed(math.log(2.0), 0.05), _final(), 1250).verdict == "gap: SGD-M larger"
    assert control_verdict(_rmed(math.log(0.5), 0.05), _final(), 1250).verdict == "gap: SGD-M smaller"
    v = control_verdict(_rmed(0.0, 0.02), _final(), 1250)
    assert v.verdict == "no gap" and 1 / 1.5 < v.lower90 < v.ratio < v.upper90 < 1.5
    wide = control_verdict(_rmed(0.0, 1.0, n=3, seed=3), _final(n=3), 1250)
    assert wide.verdict.startswith("inconclusive: the 90% interval"), wide


def test_a_degenerate_control_is_inconclusive_with_its_reason():
    v = control_verdict(_rmed(math.log(2.0), 0.05), _final(sgdm=1e-4, adam=2e-4), 1250)
    assert v.verdict.startswith("inconclusive") and "SGD-M interpolates" in v.verdict and "Adam interpolates" in v.verdict
    v = control_verdict(_rmed(0.0, 0.02, dead=0.7), _final(), 1250)
    assert v.verdict.startswith("inconclusive") and "70% dead entries" in v.verdict


def test_r_med_over_active_entries_and_the_dead_fraction():
    df = active_rmed(_rmed(0.0, 0.1, dead=0.25))
    assert np.allclose(df.r_med_active, df.h_max / df.h_median_active) and np.allclose(df.dead_fraction, 0.25)
    old = active_rmed(_rmed(0.0, 0.1).drop(columns=["n_zero", "h_median_active"]))  # a run stored before the count
    assert old.r_med_active.isna().all() and old.dead_fraction.isna().all()
    d = dead_fractions(_rmed(0.0, 0.1, dead=0.6))
    assert (d.runs_dead_majority == 6).all() and np.allclose(d["max"], 0.6)


def test_a_rate_that_kills_units_is_not_chosen_even_when_its_loss_is_lowest():
    loss, rmed = [], []
    for opt, lr, final, dead in (("sgdm", 0.03, 0.50, 0.1), ("sgdm", 0.1, 0.40, 0.2), ("sgdm", 0.3, 0.30, 0.8),
                                 ("adam", 0.001, 0.35, 0.0), ("adam", 0.003, 0.33, 0.1)):
        loss += [dict(task="fashion_cnn", opt=opt, lr=lr, seed=0, step=t, loss=final, diverged=False) for t in range(20)]
        rmed += [dict(opt=opt, lr=lr, seed=0, step=20, layer=lay, n_used=10, n_zero=int(10 * dead), h_max=1.0,
                      h_median_active=0.1) for lay in LAYERS]
    t = pick_control_rate(pd.DataFrame(loss), pd.DataFrame(rmed)).set_index(["opt", "lr"])
    assert t.loc[("sgdm", 0.3)].best and not t.loc[("sgdm", 0.3)].allowed and not t.loc[("sgdm", 0.3)].chosen
    assert t.loc[("sgdm", 0.1)].chosen and t.loc[("adam", 0.003)].chosen
    assert t.chosen.sum() == 2


def test_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match="step="):
        control_verdict(_rmed(0.0, 0.1), _final(), 750)
    with pytest.raises(ValueError, match="margin="):
        control_verdict(_rmed(0.0, 0.1), _final(), 1250, margin=1.0)
    with pytest.raises(ValueError, match="final_losses: the table lacks columns"):
        control_verdict(_rmed(0.0, 0.1), _final().drop(columns="final_loss"), 1250)


def test_runs_stored_without_a_count_of_zeros_fall_back_to_r_med_and_zero_medians_make_it_inconclusive():
    old = _rmed(0.0, 0.02).drop(columns=["n_zero", "h_median_active"]).assign(undefined="")
    v = control_verdict(old, _final(), 1250)
    assert v.verdict == "no gap" and v.statistic.startswith("R_med (this table has no count")
    old.loc[(old.opt == "sgdm") & (old.layer == "3.weight") & (old.seed < 2), ["undefined", "r_med"]] = \
        ["median is zero", math.nan]
    v = control_verdict(old, _final(sgdm=1e-4), 1250)
    assert "SGD-M interpolates" in v.verdict and "2 tensor-runs have a zero median" in v.verdict
    assert v.n_left_out == 1
