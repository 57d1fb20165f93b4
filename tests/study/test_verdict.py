"""The verdict rules: the sign-flip test against hand-computed cases, its error rates by
simulation (and that the simulation would catch the old "mean ratio > 1" rule), the control's
wording, tensor kinds of the project's models, and bad input."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from rmed_core import kinds
from rmed_core.study import error_rates as er
from rmed_core.study import published as pub
from rmed_core.study import units as un
from rmed_core.study import verdict as v
from rmed_core.study.published import PUBLISHED_RATIOS, compare_with_published
from rmed_core.study.units import ratio_table
from rmed_core.study.verdict import verdict as analysis_verdict

N_SIMS = 2000


def _old_rule(y: np.ndarray) -> bool:
    """The rule this module replaces: a published row counted as at least "partly" reproduced when
    the arithmetic mean over seeds of its ratio exceeded 1 (here: any of the tensors)."""
    return bool(np.any(np.exp(y).mean(axis=0) > 1))


def _units(seed_means, n_tensors: int = 3, spread: float = 0.2, seed: int = 0) -> pd.DataFrame:
    """Units whose mean over tensors in seed s is exactly seed_means[s]."""
    rng = np.random.default_rng(seed)
    rows = []
    for s, m in enumerate(seed_means):
        noise = rng.normal(0, spread, n_tensors)
        for k, y in enumerate(m + noise - noise.mean()):
            rows.append(dict(seed=s, layer=f"blocks.0.attn.{'qkv'[k % 3]}.weight" if k < 3 else f"t{k}", y=y))
    return pd.DataFrame(rows)


# (1) under no effect the rule errs at most at its level; the old rule far more often ---------------
def test_false_reproduced_rate_under_no_effect_is_at_most_the_level():
    fpr = er.verdict_fpr(5, 30, seed_sd=0.3, tensor_sd=0.5, n_sims=N_SIMS, rng_seed=1)
    se = math.sqrt((1 / 32) * (31 / 32) / N_SIMS)
    assert fpr <= 0.05 and abs(fpr - 1 / 32) < 4 * se  # exactly 1/32 for a symmetric null with 5 seeds
    # the same simulated studies under the old rule: the test can fail
    old = er.verdict_fpr(5, 3, seed_sd=0.3, tensor_sd=0.5, n_sims=N_SIMS, rng_seed=1, rule=_old_rule)
    assert old > 0.5
    assert er.verdict_fpr(5, 3, seed_sd=0.3, tensor_sd=0.5, n_sims=N_SIMS, rng_seed=1) <= 0.05


def test_the_simulated_rule_is_claim():
    # the same simulated studies, judged by the vectorised default and by claim() one at a time
    args = (5, 4, 0.1, 0.3, 0.3, 300, 7)
    by_claim = er.simulate_rule(*args, rule=lambda y: v.claim(y.mean(axis=1)).verdict == "reproduced")
    assert er.simulate_rule(*args) == by_claim and 0 < by_claim < 1


# (2) power at the published effect --------------------------------------------------------------
def test_power_at_the_published_effect_with_five_seeds():
    # iteration 750: at least 0.80 however much of the published spread the tensors of a run share
    assert er.verdict_power(5, step=750, shared=1.0, n_sims=N_SIMS, rng_seed=2) >= 0.80
    assert er.verdict_power(5, step=750, shared=0.0, n_sims=N_SIMS, rng_seed=2) >= 0.80
    # iteration 1250: at least 0.80 when the tensors' noise is independent
    assert er.verdict_power(5, step=1250, shared=0.0, n_sims=N_SIMS, rng_seed=2) >= 0.80


def test_power_matches_its_closed_form_when_all_noise_is_shared():
    # shared=1: m_s = mean(mu) + a_s, and with 5 seeds the rule rejects exactly when every m_s > 0
    spread = pub.published_spread(1250)
    z = spread.log_effect.mean() / math.sqrt((spread.log_sd ** 2).mean())
    exact = norm.cdf(z) ** 5
    power = er.verdict_power(5, step=1250, shared=1.0, n_sims=N_SIMS, rng_seed=4)
    assert abs(power - exact) < 4 * math.sqrt(exact * (1 - exact) / N_SIMS)
    assert 0.5 < exact < 0.7  # at iteration 1250 the rule may miss the published effect


def test_spread_from_study_recovers_the_simulated_components():
    rng = np.random.default_rng(5)
    n_seeds, n_tensors = 40, 30
    a = rng.normal(0, 0.4, (n_seeds, 1))
    y = rng.normal(0, 1, n_tensors)[None, :] + a + rng.normal(0, 0.2, (n_seeds, n_tensors))
    units = pd.DataFrame([dict(seed=s, layer=f"t{k}", y=y[s, k]) for s in range(n_seeds) for k in range(n_tensors)])
    units.loc[0, "y"] = np.nan  # a tensor undefined in one seed is left out
    got = er.spread_from_study(units)
    assert got["n_left_out"] == 1 and got["n_tensors"] == n_tensors - 1 and got["n_seeds"] == n_seeds
    assert got["tensor_sd"] == pytest.approx(0.2, rel=0.1)
    assert got["seed_sd"] == pytest.approx(np.std(a, ddof=1), rel=0.1)
    # no seed-level component: clipped at 0, not negative
    flat = units.assign(y=rng.normal(0, 0.2, len(units)))
    assert er.spread_from_study(flat)["seed_sd"] >= 0


# (3) fewer than 5 seeds: the rule refuses to claim -----------------------------------------------
def test_four_seeds_are_not_testable():
    huge = [3.0, 2.5, 4.0, 3.5]
    c = v.claim(huge)
    assert c.verdict == "not testable: 4 seeds < 5" and c.ratio > 10
    assert analysis_verdict(huge) == c.verdict
    assert er.simulate_rule(4, 10, log_effect=3.0, seed_sd=0.1, tensor_sd=0.1, n_sims=100) == 0.0
    assert v.min_seeds(0.05) == 5 and 2.0 ** -v.min_seeds(0.05) <= 0.05 < 2.0 ** -(v.min_seeds(0.05) - 1)
    assert v.claim([]).verdict == "not testable: 0 seeds < 5"


# (4) the sign-flip p-value by hand ---------------------------------------------------------------
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


# (5) equivalence and the control's wording -------------------------------------------------------
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


# (6) tensor kinds of the project's models -------------------------------------------------------
def test_every_parameter_of_the_project_models_has_a_known_kind():
    from rmed_core.models import CNN, TransformerClassifier, TransformerLM

    models = [TransformerLM(7, d_model=8, n_layers=2, n_heads=2, seq_len=4),
              TransformerLM(7, d_model=8, n_layers=1, n_heads=2, seq_len=4, tie_weights=True),
              TransformerClassifier(7, 3, d_model=8, n_layers=2, n_heads=2, seq_len=4),
              CNN(1, 10, width=2, size=8), CNN(3, 4, width=1, size=4, activation="tanh", pool="avg")]
    for model in models:
        for name, _ in model.named_parameters():
            kind = kinds.tensor_kind(name)
            assert kind in kinds.KINDS and kind != "other", name
            assert kind == kinds.tensor_kind(name, model), name  # the name agrees with the module's type
            assert kinds.tensor_role(name) == name.rsplit(".", 1)[-1]
    expected = {"tok.weight": "embedding", "pos.weight": "embedding", "blocks.0.attn.q.weight": "attention",
                "blocks.0.attn.k.bias": "attention", "blocks.0.attn.proj.weight": "attention",
                "blocks.1.ln1.weight": "LayerNorm", "blocks.0.fc.weight": "MLP", "blocks.0.out.bias": "MLP",
                "ln_f.weight": "LayerNorm", "head.weight": "output", "0.weight": "conv", "3.bias": "conv",
                "7.weight": "output", "whatever": "other"}
    assert {n: kinds.tensor_kind(n) for n in expected} == expected


# the store's output is what ratio_table reads --------------------------------------------------
def test_ratio_table_accepts_load_results(tmp_path):
    from rmed_core.runs.store import ResultStore
    from rmed_core.runs.results import load_results

    store = ResultStore(tmp_path)
    names = ["tok.weight", "blocks.0.attn.k.bias", "head.weight"]
    for seed in range(5):
        for opt, scale in (("sgdm", 2.0), ("adam", 1.0)):
            rmed = pd.DataFrame(dict(step=750, index=range(3), layer=names, numel=4,  # as the trainer writes it
                                     r_med=[scale * (3 + seed), np.nan if seed == 0 else scale, 5.0 * scale],
                                     method="exact", lower=np.nan, upper=np.nan))
            store.write_run(dict(task="ptb_lm", scale="ci", opt=opt, lr=0.1, seed=seed), {"rmed": rmed}, {})
    loaded = load_results("rmed", root=tmp_path)
    assert "layer_index" in loaded and "index" not in loaded
    assert "layer_index" in load_results("rmed", root=tmp_path, task="none").columns
    ratios = ratio_table(loaded)
    assert len(ratios) == 3 and np.allclose(ratios["mean"], 2.0) and np.allclose(ratios["geo_mean"], 2.0)
    row = ratios.set_index("layer").loc["blocks.0.attn.k.bias"]
    assert (row.n_seeds, row.n_dropped, row.kind) == (4, 1, "attention") and sorted(row.by_seed) == [1, 2, 3, 4]
    table = compare_with_published(ratios, {750: 750, 1250: 750})
    assert len(table) == len(PUBLISHED_RATIOS) and (table.verdict == "reproduced").all()
    assert (table.p == 1 / 32).all() and table["this project (all tensors)"].iloc[0].startswith("2.00")
    units = un.log_ratios(loaded)
    assert v.claim(units).n_dropped == 1
    assert compare_with_published(units, {750: 750, 1250: 750}).verdict.tolist() == table.verdict.tolist()
    assert (compare_with_published(ratios).verdict.iloc[1::2] == "no data").all()  # no probe at step 1250


# (7) bad input names the parameter --------------------------------------------------------------
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


def test_false_reproduced_rate_at_the_spread_measured_in_the_study():
    # the spread of the committed study's log-ratios (seed level and per tensor), at each probe
    from rmed_core.runs.bundle import bundle_names, read_bundle

    if "study" not in bundle_names():
        pytest.skip("no study bundle in this checkout")
    runs = read_bundle("study", "runs", sweep="study")
    units = un.log_ratios(read_bundle("study", "rmed", run=list(runs.run)))
    for step, at in units.groupby("step"):
        sp = er.spread_from_study(at[["seed", "layer", "y"]])
        fpr = er.verdict_fpr(5, sp["n_tensors"], sp["seed_sd"], sp["tensor_sd"], n_sims=N_SIMS, rng_seed=3)
        assert fpr <= 0.05, (step, sp, fpr)
