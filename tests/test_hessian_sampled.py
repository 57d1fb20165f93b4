"""The certified estimate: the interval covers the exact R_med at (at least) the stated rate."""
from __future__ import annotations

import pytest

from rmed_core.hessian import rmed_per_layer
from rmed_core.hessian.sampled import order_statistic_ranks
from rmed_core.hessian.testing import make_case


def test_order_statistic_ranks():
    from scipy.stats import binom
    l, u = order_statistic_ranks(100, 0.0125)
    assert binom.cdf(l - 1, 100, 0.5) <= 0.0125 and binom.sf(u - 1, 100, 0.5) <= 0.0125
    assert l < 50 < u


# the transformer: a subset covering each path (brute-force tied embedding, attention, LayerNorm,
# GELU MLP, the zero-in-theory key bias, the final LayerNorm), to keep the test short
SUBSETS = {"mlp_tanh": None,
           "transformer_tied": ["tok.weight", "pos.weight", "blocks.0.attn.q.weight", "blocks.0.attn.k.bias",
                                "blocks.0.ln1.weight", "blocks.0.fc.weight", "blocks.0.out.bias", "ln_f.bias"]}


@pytest.mark.parametrize("case", list(SUBSETS))
def test_sampled_interval_covers_exact(case):
    m, loss, batch = make_case(case)
    params = SUBSETS[case]
    exact = rmed_per_layer(m, loss, batch, params=params).set_index("layer")
    # blocks that are zero in theory (the attention key bias: softmax ignores a per-row shift)
    # hold rounding noise, whose "R_med" is meaningless: they are not counted
    noise = exact.h_max <= 1e-9 * exact.h_max.max()
    hits = total = 0
    for seed in range(4):
        df = rmed_per_layer(m, loss, batch, method="sampled", params=params, seed=seed, confidence=0.9, n_samples=40)
        assert (df.method == "sampled").all() and (df.confidence == 0.9).all()
        for _, row in df.iterrows():
            assert row.lower <= row.r_med <= row.upper, row
            if noise[row.layer]:
                continue
            total += 1
            r = exact.r_med[row.layer]
            hits += row.lower <= r * (1 + 1e-9) and r <= row.upper * (1 + 1e-9)
    assert total > 0 and hits / total >= 0.9, (hits, total)
