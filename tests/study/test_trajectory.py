"""The trajectory study's readings on tables whose answer is known: a gap that only follows the loss
vanishes at matched loss, a gap in the median shows as a ratio of medians, the kinds' curves are the
runs' means, and bad input is refused by name."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from rmed_core.study.run_test import run_means
from rmed_core.study.trajectory import (claims_at_steps, decomposition_table, interpolation_summary,
                                        kind_trajectories, trajectory_claims)

STEPS = list(range(0, 1251, 125))
LAYERS = ["tok.weight", "blocks.0.attn.q.weight", "blocks.0.ln1.weight", "blocks.0.fc.weight", "head.weight"]


def _loss(opt: str, step: int) -> float:
    """Adam's loss falls twice as fast as SGD-M's; both start at 7."""
    rate = 2e-3 if opt == "adam" else 1e-3
    return 3.0 + 4.0 * math.exp(-rate * step)


def _tables(depends_on: str, n_seeds: int = 6, noise: float = 0.02, seed: int = 0):
    """R_med tables of ``n_seeds`` runs per optimizer whose log R_med is a function of the loss only
    (``depends_on="loss"``) or is larger under SGD-M at every step by log 1.5 (``"optimizer"``)."""
    rng = np.random.default_rng(seed)
    rows, probes = [], []
    for opt in ("sgdm", "adam"):
        for s in range(n_seeds):
            for step in STEPS:
                loss = _loss(opt, step)
                probes.append(dict(opt=opt, seed=s, step=step, loss=loss))
                base = 2.0 + (loss - 3.0) if depends_on == "loss" else 2.0
                shift = math.log(1.5) if (depends_on == "optimizer" and opt == "sgdm" and step > 0) else 0.0
                for i, layer in enumerate(LAYERS):
                    log_r = base + 0.1 * i + shift + noise * rng.standard_normal() * (step > 0)
                    h_max = math.exp(1.0 + 0.05 * i)
                    rows.append(dict(opt=opt, seed=s, step=step, layer=layer, r_med=math.exp(log_r), h_max=h_max,
                                     h_median=h_max / math.exp(log_r)))
    return pd.DataFrame(rows), pd.DataFrame(probes)


def test_a_gap_that_follows_the_loss_is_shown_at_matched_iteration_and_not_at_matched_loss():
    rmed, probes = _tables("loss")
    claims = trajectory_claims(rmed, probes).set_index(["comparison", "step"])
    # SGD-M is behind, so at the same step its loss and (here) its R_med are higher
    assert (claims.loc["iteration"].loc[250:].direction == "larger").all()
    matched = claims.loc["loss"].loc[250:]
    assert (matched.direction == "no difference shown").all()
    # interpolation in log-loss of a function linear in the loss: within a few percent
    assert (abs(np.log(matched.ratio)) < 0.05).all()
    at = claims_at_steps(rmed, probes, [750, 1250]).set_index(["comparison", "step"])
    assert (at.loc["iteration"].verdict == "reproduced").all() and (at.loc["loss"].verdict == "not shown").all()


def test_a_gap_that_follows_the_optimizer_is_shown_at_both():
    rmed, probes = _tables("optimizer")
    claims = trajectory_claims(rmed, probes).set_index(["comparison", "step"])
    for comparison in ("iteration", "loss"):
        later = claims.loc[comparison].loc[250:1250]
        assert (later.direction == "larger").all(), comparison
        assert np.allclose(later.ratio, 1.5, rtol=0.05)
    assert claims.loc[("iteration", 0)].ratio == pytest.approx(1.0)


def test_adam_runs_that_never_reached_sgdms_loss_are_counted_not_extrapolated():
    rmed, probes = _tables("optimizer")
    probes = probes.copy()
    # make SGD-M's last probe reach a loss below every Adam probe: no Adam run brackets it
    probes.loc[(probes.opt == "sgdm") & (probes.step == 1250), "loss"] = 1.0
    claims = trajectory_claims(rmed, probes).set_index(["comparison", "step"])
    assert claims.loc[("loss", 1250)].n_adam == 0 and claims.loc[("loss", 1250)].direction == "no difference shown"
    assert math.isnan(claims.loc[("loss", 1250)].ratio)


def test_kind_trajectories_are_the_runs_geometric_means_with_a_t_interval():
    from scipy.stats import t

    rmed, _ = _tables("optimizer", noise=0.2)
    traj = kind_trajectories(rmed).set_index(["opt", "tensors", "step"])
    m = run_means(rmed)
    g = m[(m.opt == "sgdm") & (m.step == 500)].m.to_numpy()
    row = traj.loc[("sgdm", "all", 500)]
    half = t.ppf(0.975, g.size - 1) * g.std(ddof=1) / math.sqrt(g.size)
    assert row.geo_mean == pytest.approx(math.exp(g.mean()))
    assert (row.lower, row.upper) == pytest.approx((math.exp(g.mean() - half), math.exp(g.mean() + half)))
    assert row.n_runs == 6 and row.n_tensors == len(LAYERS)
    assert {"embedding", "attention", "LayerNorm", "MLP", "output"} <= set(traj.index.get_level_values("tensors"))


def test_a_gap_in_the_median_shows_as_a_ratio_of_medians_and_the_parts_multiply():
    rmed, _ = _tables("optimizer")
    parts = decomposition_table(rmed, steps=[750, 1250]).set_index(["part", "step"])
    for step in (750, 1250):
        assert parts.loc[("r_med", step)].direction == "larger"
        assert parts.loc[("h_max", step)].ratio == pytest.approx(1.0)
        assert parts.loc[("h_median", step)].direction == "smaller"
        assert parts.loc[("r_med", step)].ratio == pytest.approx(
            parts.loc[("h_max", step)].ratio / parts.loc[("h_median", step)].ratio)


def test_the_decomposition_uses_only_rows_where_all_three_values_are_positive():
    rmed, _ = _tables("optimizer")
    rmed = rmed.copy()
    tok = rmed.layer == "tok.weight"
    rmed.loc[tok, "h_median"] = 0.0  # median zero: R_med undefined there
    rmed.loc[tok, "r_med"] = np.nan
    rmed.loc[tok & (rmed.opt == "sgdm"), "h_max"] *= 10.0  # would move the ratio of maxima if it were used
    parts = decomposition_table(rmed, steps=[750]).set_index("part")
    assert parts.loc["h_max"].ratio == pytest.approx(1.0)
    assert parts.loc["r_med"].ratio == pytest.approx(parts.loc["h_max"].ratio / parts.loc["h_median"].ratio)


def test_the_interpolation_error_is_small_for_a_smooth_function_of_the_loss():
    rmed, probes = _tables("loss", noise=0.0)
    s = interpolation_summary(rmed, probes)
    assert s["n"] > 0 and s["max_log"] < 0.05 and s["median_factor"] >= 1.0


def test_bad_input_is_refused_by_name():
    rmed, probes = _tables("optimizer")
    with pytest.raises(ValueError, match="steps="):
        claims_at_steps(rmed, probes, [760])
    with pytest.raises(ValueError, match="value="):
        run_means(rmed, value="r_max")
    with pytest.raises(ValueError, match="probes: the table lacks columns"):
        trajectory_claims(rmed, probes.drop(columns="loss"))
    with pytest.raises(ValueError, match="rmed: the table lacks columns"):
        decomposition_table(rmed.drop(columns="h_max"))


def test_batch_effect_reads_the_ratio_at_both_batch_sizes():
    from rmed_core.study.trajectory import batch_effect

    small, _ = _tables("optimizer", n_seeds=1, noise=0.0)
    small = small[small.step == 1250]
    large = small.copy()
    large["r_med"] = large.r_med * np.where(large.layer == "tok.weight", 4.0, 1.0)  # the embedding's support grows
    large.loc[large.opt == "sgdm", "r_med"] *= 1.2
    eff = batch_effect(small, large).set_index("tensors")
    assert eff.ratio_small["all"] == pytest.approx(1.5)
    assert eff.ratio_large["all"] == pytest.approx(1.5 * 1.2)
    assert eff.adam_large["embedding"] == pytest.approx(4 * eff.adam_small["embedding"])
    assert eff.n_tensors["all"] == len(LAYERS)
    with pytest.raises(ValueError, match="no run, step and tensor in common"):
        batch_effect(small, large.assign(seed=7))


def test_too_few_runs_are_not_testable_at_the_published_steps():
    rmed, probes = _tables("optimizer", n_seeds=2)
    at = claims_at_steps(rmed, probes, [750, 1250])
    assert at.verdict.str.startswith("not testable: the smallest p with 2 and 2 runs is 0.167").all(), at.verdict
