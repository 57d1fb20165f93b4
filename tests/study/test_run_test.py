"""The trajectory study's run-level rule: the permutation test against its exact definition and
against scipy, its error rates by simulation, Holm, and the matched-loss interpolation on tables
whose answer is known."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from rmed_core.study.run_test import (holm, interpolation_error, matched_loss_means, permutation_p, run_claim,
                                      run_claims_by, run_means, simulate_run_test)


def test_permutation_p_counts_relabellings_by_brute_force():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.3, 1, 4), rng.normal(0, 1, 5)
    pooled = np.concatenate([a, b])
    diffs = [pooled[list(i)].mean() - np.delete(pooled, list(i)).mean() for i in itertools.combinations(range(9), 4)]
    d = a.mean() - b.mean()
    p_g, p_l = permutation_p(a, b)
    assert p_g == pytest.approx(np.mean(np.array(diffs) >= d - 1e-12))
    assert p_l == pytest.approx(np.mean(np.array(diffs) <= d + 1e-12))


def test_permutation_p_agrees_with_scipy_monte_carlo_beyond_the_exact_limit():
    from scipy.stats import permutation_test

    rng = np.random.default_rng(2)
    a, b = rng.normal(0.4, 1, 12), rng.normal(0, 1, 12)  # C(24, 12) = 2.7e6 > MAX_EXACT
    p_g, _ = permutation_p(a, b)
    ref = permutation_test((a, b), lambda x, y: x.mean() - y.mean(), alternative="greater", n_resamples=100_000,
                           random_state=0).pvalue
    assert abs(p_g - ref) < 0.01


def test_run_claim_refuses_below_its_floor_and_reads_the_direction():
    assert run_claim([0.3, 0.4], [0.0, 0.1]).verdict.startswith("not testable")
    assert run_claim([0.0, 0.1, 0.05, -0.05, 0.12], [0.3, 0.4, 0.35, 0.5, 0.45]).verdict == "opposite"
    c = run_claim([0.1, -0.2, 0.05, 0.0, 0.3], [0.0, 0.1, -0.1, 0.2, 0.05])
    assert c.verdict == "not shown" and c.lower < 1 < c.upper and c.ratio == pytest.approx(math.exp(np.mean([0.1, -0.2, 0.05, 0.0, 0.3]) - np.mean([0.0, 0.1, -0.1, 0.2, 0.05])))


def test_the_rule_keeps_its_level_and_has_power_at_the_study_effect():
    fpr = simulate_run_test(10, 0.0, 0.1, n_sims=1000)
    fpr_unequal = simulate_run_test(10, 0.0, 0.1, sd_ratio=2.0, n_sims=1000)
    assert fpr <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 1000) and fpr_unequal <= 0.08
    assert simulate_run_test(10, math.log(1.3), 0.1, n_sims=500) > 0.95  # the five-seed study's effect and spread
    assert simulate_run_test(2, 1.0, 0.1) == 0.0  # below the floor the rule never claims


def test_holm_against_its_definition():
    p = np.array([0.02, 0.001, 0.04, 0.5])
    order = np.argsort(p)
    expected = np.maximum.accumulate([min(1, (4 - j) * p[i]) for j, i in enumerate(order)])
    assert holm(p)[order] == pytest.approx(expected)
    with pytest.raises(ValueError, match="p="):
        holm([0.1, 1.5])


def _rmed(values):
    return pd.DataFrame([dict(opt=o, seed=s, step=t, layer=l, r_med=v) for (o, s, t, l), v in values.items()])


def test_run_means_use_the_tensors_finite_in_every_run_and_count_the_rest():
    rm = _rmed({("adam", 0, 5, "tok.weight"): math.e, ("adam", 0, 5, "blocks.0.ln1.weight"): 1.0,
                ("sgdm", 0, 5, "tok.weight"): math.e ** 3, ("sgdm", 0, 5, "blocks.0.ln1.weight"): math.nan})
    m = run_means(rm).set_index("opt")
    assert m.loc["adam", "m"] == pytest.approx(1) and m.loc["sgdm", "m"] == pytest.approx(3)
    assert (m.n_tensors == 1).all() and (m.n_left_out == 1).all()
    with pytest.raises(ValueError, match="kind="):
        run_means(rm, kind="bogus")


def test_matched_loss_interpolates_adam_at_sgdm_loss_and_never_extrapolates():
    # Adam: loss e^-t/100 along steps, M = step/100; SGD-M at step 200 has Adam's loss of step 100
    steps = [0, 100, 200]
    means = pd.DataFrame([dict(opt="adam", seed=s, step=t, m=t / 100) for s in (0, 1) for t in steps]
                         + [dict(opt="sgdm", seed=0, step=200, m=5.0), dict(opt="sgdm", seed=0, step=100, m=5.0)])
    probes = pd.DataFrame([dict(opt="adam", seed=s, step=t, loss=math.exp(-t / 100)) for s in (0, 1) for t in steps]
                          + [dict(opt="sgdm", seed=0, step=200, loss=math.exp(-1.5)),
                             dict(opt="sgdm", seed=0, step=100, loss=math.exp(-3.0))])
    out = matched_loss_means(means, probes)
    at200 = out[(out.step == 200) & (out.opt == "adam")]
    assert at200.m.to_numpy() == pytest.approx([1.5, 1.5])
    assert out[(out.step == 100) & (out.opt == "adam")].m.isna().all()  # below Adam's lowest loss
    err = interpolation_error(means, probes)
    assert err.error.abs().max() == pytest.approx(0, abs=1e-12)  # linear in log-loss: recovered exactly
    table = run_claims_by(out[out.step == 200], "step")
    assert list(table.direction) == ["no difference shown"] and table.n_adam.iloc[0] == 2


def test_run_test_table_reads_all_tensors_and_kinds_with_holm():
    from rmed_core.study.run_test import run_test_table

    rng = np.random.default_rng(3)
    layers = ["tok.weight", "blocks.0.ln1.weight", "blocks.0.ln1.bias"]
    rows = [dict(opt=o, seed=s, step=10, layer=l,
                 r_med=math.exp(rng.normal(0, 0.05) + (1.0 if (o == "sgdm" and "ln" in l) else 0.0)))
            for o in ("adam", "sgdm") for s in range(6) for l in layers]
    out = run_test_table(pd.DataFrame(rows), {750: 10}, n_sims=200).set_index("tensors")
    assert out.loc["all", "verdict"] == "reproduced" and np.isnan(out.loc["all", "p_holm"])
    assert out.loc["LayerNorm", "direction"] == "larger under SGD-M"
    assert out.loc["embedding", "direction"] == "no difference shown"
    assert out.loc["LayerNorm", "ratio"] == pytest.approx(math.e, rel=0.1)
    assert 0 <= out.loc["all", "fpr"] <= 0.1
