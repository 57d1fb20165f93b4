"""The certified estimate: the interval covers the exact R_med at (at least) the stated rate."""
from __future__ import annotations

import pytest

from _hessian_helpers import make_case
from rmed_core.hessian import rmed_per_layer
from rmed_core.hessian.sampled import order_statistic_ranks


def test_order_statistic_ranks():
    from scipy.stats import binom
    l, u = order_statistic_ranks(100, 0.0125)
    assert binom.cdf(l - 1, 100, 0.5) <= 0.0125 and binom.sf(u - 1, 100, 0.5) <= 0.0125
    assert l < 50 < u


@pytest.mark.parametrize("case", ["mlp_tanh", "transformer_tied"])
def test_sampled_interval_covers_exact(case):
    m, loss, batch = make_case(case)
    exact = rmed_per_layer(m, loss, batch).set_index("layer").r_med
    hits = total = 0
    for seed in range(4):
        df = rmed_per_layer(m, loss, batch, method="sampled", seed=seed, confidence=0.9, n_samples=40)
        assert (df.method == "sampled").all() and (df.confidence == 0.9).all()
        for _, row in df.iterrows():
            total += 1
            hits += row.lower <= exact[row.layer] * (1 + 1e-9) and exact[row.layer] <= row.upper * (1 + 1e-9)
            assert row.lower <= row.r_med <= row.upper
    assert hits / total >= 0.9
