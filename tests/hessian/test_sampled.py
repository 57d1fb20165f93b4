"""The sampled estimate: its interval covers the exact R_med at (at least) the stated rate at every
allowed sample size, sizes that cannot deliver the confidence are refused, and the undefined rule
holds for it too."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from scipy.stats import binom

from rmed_core.hessian import rmed_per_layer
from rmed_core.hessian.sampled import min_samples, order_statistic_ranks, post_stratified_median
from rmed_core.hessian.testing import make_case


def test_order_statistic_ranks():
    l, u = order_statistic_ranks(100, 0.0125)
    assert binom.cdf(l - 1, 100, 0.5) <= 0.0125 and binom.sf(u - 1, 100, 0.5) <= 0.0125
    assert l < 50 < u
    for m in range(min_samples(0.95), 40):  # every allowed size keeps each tail within alpha/4
        l, u = order_statistic_ranks(m, 0.0125)
        assert binom.cdf(l - 1, m, 0.5) <= 0.0125 and binom.sf(u - 1, m, 0.5) <= 0.0125


@pytest.mark.parametrize("n_samples, match", [(1, "at least 7"), (2, "at least 7"), (6, "at least 7"),
                                              (-3, "positive integer"), (2.5, "positive integer")])
def test_sample_sizes_that_cannot_deliver_are_refused(n_samples, match):
    m, loss, batch = make_case("mlp_tanh")
    with pytest.raises(ValueError, match=match):
        rmed_per_layer(m, loss, batch, method="sampled", n_samples=n_samples)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5, "high"])
def test_impossible_confidence_is_refused(confidence):
    m, loss, batch = make_case("mlp_tanh")
    with pytest.raises(ValueError, match="confidence"):
        rmed_per_layer(m, loss, batch, method="sampled", confidence=confidence)


def test_post_stratified_median():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert post_stratified_median(x, torch.zeros(4, dtype=torch.long), torch.tensor([1.0])) == 2.5
    # two cells of equal share; the draws over-represent the lower cell 3:1 -- post-stratification
    # gives each cell its share, so the median sits at the boundary between them
    x = torch.tensor([1.0, 1.1, 1.2, 10.0])
    cell = torch.tensor([0, 0, 0, 1])
    assert post_stratified_median(x, cell, torch.tensor([0.5, 0.5])) == pytest.approx((1.2 + 10.0) / 2)
    # an empty cell passes its share to the nearest filled one
    assert post_stratified_median(x, cell, torch.tensor([0.25, 0.5, 0.25])) == 10.0


# the transformer: a subset covering each path (brute-force tied embedding, attention, LayerNorm,
# GELU MLP, the final LayerNorm), and the tanh MLP; exact_below=0 so every tensor is sampled
SUBSETS = {"mlp_tanh": None,
           "transformer_tied": ["tok.weight", "pos.weight", "blocks.0.attn.q.weight", "blocks.0.attn.v.bias",
                                "blocks.0.ln1.weight", "blocks.0.fc.weight", "blocks.0.out.bias", "ln_f.bias"]}


@pytest.mark.parametrize("case", list(SUBSETS))
@pytest.mark.parametrize("n_samples", [7, 8, 12, 40])
def test_sampled_interval_covers_exact(case, n_samples):
    m, loss, batch = make_case(case)
    params = SUBSETS[case]
    exact = rmed_per_layer(m, loss, batch, params=params).set_index("layer")
    hits = total = 0
    for seed in range(6):
        df = rmed_per_layer(m, loss, batch, method="sampled", params=params, seed=seed, n_samples=n_samples,
                            exact_below=0, n_candidates=2, bound_steps=8)
        assert (df.method == "sampled").all() and (df.confidence == 0.95).all()
        assert df.attrs["products"] > 0
        for _, row in df.iterrows():
            assert row.lower <= row.r_med * (1 + 1e-12) and row.r_med <= row.upper * (1 + 1e-12), row
            total += 1
            r = exact.r_med[row.layer]
            hits += row.lower <= r * (1 + 1e-9) and r <= row.upper * (1 + 1e-9)
    assert total > 0 and hits / total >= 0.95, (hits, total)


def test_sampled_small_tensors_are_exact_and_zero_in_theory_is_undefined():
    m, loss, batch = make_case("transformer")
    exact = rmed_per_layer(m, loss, batch).set_index("layer")
    df = rmed_per_layer(m, loss, batch, method="sampled").set_index("layer")
    small = exact.index[exact.numel <= 8]  # biases and LayerNorm parameters: K = 8 products each
    for name in small:
        if exact.undefined[name]:
            assert math.isnan(df.r_med[name]) and df.undefined[name].startswith("zero in theory")
        else:
            assert df.r_med[name] == pytest.approx(exact.r_med[name], rel=1e-9)
    assert df.undefined["blocks.0.attn.k.bias"].startswith("zero in theory")


def test_wide_output_layer_is_sampled_by_the_free_proxy():
    """An output layer wider than ``proxy_below`` units is not computed whole (its K products would
    cost what the whole diagonal costs): weight and bias are sampled, ranked by the squared
    gradients; the maximum found is a verified entry and the interval holds the exact value."""
    m, loss, batch = make_case("transformer")
    exact = rmed_per_layer(m, loss, batch).set_index("layer")
    head = [n for n in exact.index if n.startswith("head.")]
    assert head, "the case has an untied output layer"
    hits = 0
    for seed in range(4):
        df = rmed_per_layer(m, loss, batch, method="sampled", params=head, seed=seed, proxy_below=2, exact_below=0,
                            n_samples=12, n_candidates=2).set_index("layer")
        assert not set(head) & set(df.attrs["exact"])
        for name in head:
            assert df.h_max[name] <= exact.h_max[name] * (1 + 1e-9)
            hits += df.lower[name] <= exact.r_med[name] * (1 + 1e-9) <= df.upper[name] * (1 + 1e-9) ** 2
    assert hits >= 0.95 * 4 * len(head) - 1
    whole = rmed_per_layer(m, loss, batch, method="sampled", params=head, exact_below=0).attrs["exact"]
    assert set(head) <= set(whole)  # within proxy_below: exact whole, as before


def test_proxy_below_is_checked():
    m, loss, batch = make_case("mlp_tanh")
    with pytest.raises(ValueError, match="proxy_below=-1"):
        rmed_per_layer(m, loss, batch, method="sampled", proxy_below=-1)


def test_gauss_newton_ranking_only_adds_verified_candidates():
    """``gauss_newton_draws`` adds the sampled Gauss-Newton diagonal's top entries to the verified
    ones: the uniform draws are the same, so the maximum found can only grow and stays a verified
    entry (at most the exact maximum); the intervals still hold the exact value; a loss that is not
    categorical is refused with the reason."""
    m, loss, batch = make_case("transformer")
    params = ["tok.weight", "pos.weight", "blocks.0.attn.q.weight", "blocks.0.attn.v.weight", "blocks.0.fc.weight",
              "blocks.0.ln1.weight", "head.weight"]
    exact = rmed_per_layer(m, loss, batch, params=params).set_index("layer")
    # few draws and one candidate a proxy, so that the plain estimate misses some maxima
    kw = dict(params=params, exact_below=0, n_samples=7, n_candidates=1, bound_steps=8, proxy_below=2)
    grew = 0
    for seed in range(3):
        plain = rmed_per_layer(m, loss, batch, method="sampled", seed=seed, **kw).set_index("layer")
        ranked = rmed_per_layer(m, loss, batch, method="sampled", seed=seed, gauss_newton_draws=16,
                                **kw).set_index("layer")
        # 16 label draws and one pass for the activation terms of the layers that feed one
        assert ranked.attrs["backward_passes"] == 16 + 1 and plain.attrs["backward_passes"] == 0
        for name in params:
            assert plain.h_max[name] <= ranked.h_max[name] <= exact.h_max[name] * (1 + 1e-9), name
            assert ranked.lower[name] <= exact.r_med[name] * (1 + 1e-9) <= ranked.upper[name] * (1 + 1e-9) ** 2
            grew += ranked.h_max[name] > plain.h_max[name]
    assert grew >= 3  # the output layer's maximum, where the Gauss-Newton matrix is the Hessian
    tm, tloss, tbatch = make_case("tokenwise")
    with pytest.raises(ValueError, match="categorical loss"):
        rmed_per_layer(tm, tloss, tbatch, method="sampled", exact_below=0, gauss_newton_draws=4)


def test_the_activation_term_changes_only_the_layers_that_feed_an_activation():
    """With the Gauss-Newton ranking, the activation term (on by default) re-ranks the MLP's first
    layer only; every other tensor's estimate is the same entry for entry, the intervals hold, and
    a flag that is not a bool is refused."""
    m, loss, batch = make_case("transformer")
    exact = rmed_per_layer(m, loss, batch).set_index("layer")
    kw = dict(exact_below=0, n_samples=9, n_candidates=2, bound_steps=4, gauss_newton_draws=8, seed=1)
    on = rmed_per_layer(m, loss, batch, method="sampled", **kw).set_index("layer")
    off = rmed_per_layer(m, loss, batch, method="sampled", activation_curvature=False, **kw).set_index("layer")
    assert on.attrs["backward_passes"] == off.attrs["backward_passes"] + 1
    fed = [n for n in on.index if ".fc." in n]
    assert fed
    same = [n for n in on.index if n not in fed]
    pd.testing.assert_frame_equal(on.loc[same, ["h_max", "h_median"]], off.loc[same, ["h_max", "h_median"]])
    for name in fed:  # the re-ranked layers' intervals still hold the exact value
        assert on.lower[name] <= exact.r_med[name] * (1 + 1e-9) <= on.upper[name] * (1 + 1e-9) ** 2, name
    with pytest.raises(ValueError, match="activation_curvature='yes'"):
        rmed_per_layer(m, loss, batch, method="sampled", gauss_newton_draws=4, activation_curvature="yes")
