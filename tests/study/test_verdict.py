"""The verdict rules: the sign-flip test against hand-computed cases, the claim over tensors and
seeds, the control's equivalence and its wording, and bad input."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from rmed_core import kinds
from rmed_core.study import error_rates as er
from rmed_core.study import units as un
from rmed_core.study import verdict as v
from rmed_core.study.published import compare_with_published
from rmed_core.study.verdict import verdict as analysis_verdict

def _units(seed_means, n_tensors: int = 3, spread: float = 0.2, seed: int = 0) -> pd.DataFrame:
    """Units whose mean over tensors in seed s is exactly seed_means[s]."""
    rng = np.random.default_rng(seed)
    rows = []
    for s, m in enumerate(seed_means):
        noise = rng.normal(0, spread, n_tensors)
        for k, y in enumerate(m + noise - noise.mean()):
            rows.append(dict(seed=s, layer=f"blocks.0.attn.{'qkv'[k % 3]}.weight" if k < 3 else f"t{k}", y=y))
    return pd.DataFrame(rows)


def test_four_seeds_are_not_testable():
    huge = [3.0, 2.5, 4.0, 3.5]
    c = v.claim(huge)
    assert c.verdict == "not testable: 4 seeds < 5" and c.ratio > 10
    assert analysis_verdict(huge) == c.verdict
    assert er.simulate_rule(4, 10, log_effect=3.0, seed_sd=0.1, tensor_sd=0.1, n_sims=100) == 0.0
    assert v.min_seeds(0.05) == 5 and 2.0 ** -v.min_seeds(0.05) <= 0.05 < 2.0 ** -(v.min_seeds(0.05) - 1)
    assert v.claim([]).verdict == "not testable: 0 seeds < 5"


def test_sign_flip_p_hand_computed():
    # sum 9.5, sum of |m| 10.5: flipping a set F gives 10.5 - 2 * sum_F |m| >= 9.5 only for F = {} or {0.5}
    assert v.sign_flip_p([1.0, 2.0, 3.0, -0.5, 4.0]) == 2 / 32
    assert v.sign_flip_p([1.0, 2.0, 3.0, -0.5, 4.0], "less") == 31 / 32
    # ties count: |m| all 1, observed 3; patterns with at most one flip of a +1 reach >= 3: 1 + 5
    assert v.sign_flip_p([1.0, 1.0, 1.0, 1.0, -1.0]) == 6 / 32
    assert v.sign_flip_p([0.1, 0.2, 0.3, 0.4, 0.5]) == 1 / 32
    c = v.claim([-0.1, -0.2, -0.3, -0.4, -0.5])
    assert c.verdict == "opposite" and c.p_less == 1 / 32
    assert v.claim([1.0, 2.0, 3.0, -0.5, 4.0]).verdict == "not shown"


def test_claim_averages_tensors_within_seed_and_counts_undefined_units():
    units = _units([0.3, 0.5, 0.1, 0.4, 0.2])
    extra = pd.DataFrame([dict(seed=0, layer="t9", y=np.inf), dict(seed=1, layer="t9", y=np.nan)])
    c = v.claim(pd.concat([units, extra]))
    assert c.seed_means == pytest.approx((0.3, 0.5, 0.1, 0.4, 0.2))
    assert (c.n_seeds, c.n_tensors, c.n_dropped, c.verdict) == (5, 3, 2, "reproduced")
    assert c.ratio == pytest.approx(math.exp(0.3))
    half = 2.7764451051977987 * np.std([0.3, 0.5, 0.1, 0.4, 0.2], ddof=1) / math.sqrt(5)  # t_{0.975, 4}
    assert (c.lower, c.upper) == pytest.approx((math.exp(0.3 - half), math.exp(0.3 + half)))
    by_kind = v.claims_by_kind(pd.concat([units, extra]))
    assert by_kind.tensors.tolist() == ["all", "attention", "other"]
    with pytest.raises(ValueError, match="several rows per"):
        v.claim(pd.concat([units, units]))


def test_equivalence_cases():
    assert v.equivalence([0.05, -0.02, 0.01, 0.03, -0.04]).verdict == "equivalent"
    assert v.equivalence([0.05, -0.02, 0.01, 0.03, -0.04], margin=1.01).verdict == "not equivalent"
    assert v.equivalence([0.6, -0.7, 0.9, -0.8, 0.5]).verdict == "not equivalent"  # centred, too noisy
    assert v.equivalence(np.log([2.0, 2.1, 1.9, 2.0, 2.05])).verdict == "not equivalent"  # a precise gap
    assert v.equivalence([0.1]).verdict == "not testable: 1 seeds < 2"
    e = v.equivalence([0.05, -0.02, 0.01, 0.03, -0.04])
    assert e.margin == v.DEFAULT_MARGIN == 1.5 and e.lower < e.ratio < e.upper


def test_control_wording():
    lm_yes = v.claim([0.5, 0.7, 0.4, 0.6, 0.8])
    lm_no = v.claim([0.5, -0.7, 0.4, 0.6, 0.8])
    cnn_flat = v.equivalence([0.05, -0.02, 0.01, 0.03, -0.04])
    cnn_gap = v.equivalence(np.log([2.0, 2.1, 1.9, 2.0, 2.05]))
    assert v.control_statement(lm_yes, cnn_flat).startswith("The control holds: the language model's gap is "
                                                            "reproduced")
    assert v.control_statement(lm_yes, cnn_gap).startswith("The control fails:")
    text = v.control_statement(lm_no, cnn_flat)
    assert text.startswith("No control: the language model's gap is not shown") and "not a control" in text
    assert "equivalent to 1 within [0.67, 1.50]" in text
    assert "not testable" in v.control_statement(v.claim([1.0, 1.0, 1.0]), cnn_flat)


@pytest.mark.parametrize("call, name", [
    (lambda: er.simulate_rule(0, 3), "n_seeds"),
    (lambda: er.simulate_rule(5, 0), "n_tensors"),
    (lambda: er.simulate_rule(5, 3, n_sims=0), "n_sims"),
    (lambda: er.simulate_rule(5, 3, log_effect=[0.1, 0.2]), "log_effect"),
    (lambda: er.simulate_rule(5, 3, seed_sd=-1.0), "seed_sd"),
    (lambda: er.simulate_rule(5, 3, tensor_sd=[0.1, 0.2]), "tensor_sd"),
    (lambda: er.verdict_fpr(5, 3, 0.3, 0.3, alpha=1.5), "alpha"),
    (lambda: er.verdict_power(5, shared=2.0), "shared"),
    (lambda: er.verdict_power(5, seed_sd=0.3), "seed_sd"),
    (lambda: er.verdict_power(5, step=999), "step"),
    (lambda: v.equivalence([0.1, 0.2], margin=1.0), "margin"),
    (lambda: v.equivalence([0.1, 0.2], margin=0.5), "margin"),
    (lambda: v.claim(pd.DataFrame({"seed": [0]})), "lacks columns"),
    (lambda: v.claim(pd.DataFrame({"seed": [0, 0], "y": [1.0, 1.0], "step": [1, 2]})), "step"),
    (lambda: v.claim([0.1, np.nan]), "data"),
    (lambda: er.spread_from_study(pd.DataFrame({"seed": [0], "y": [0.0]})), "y: the table lacks"),
    (lambda: un.log_ratios(pd.DataFrame({"opt": ["adam"]})), "rmed: the table lacks"),
    (lambda: v.sign_flip_p([0.1], "two-sided"), "alternative"),
    (lambda: kinds.tensor_kind(""), "name"),
    (lambda: compare_with_published(pd.DataFrame({"layer": ["w"]})), "ratios"),
])
def test_bad_input_names_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()
