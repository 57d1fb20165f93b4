"""The variants table on tables whose answer is known: each variant is read by the premise's and the
claim's rules, the four readings come where they should, and bad tables are refused."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from rmed_core.study.variants import DESIGN_POINT, design_variant, variant_table

LAYERS = ["blocks.0.attn.q.weight", "blocks.0.fc.weight", "blocks.0.ln1.weight", "head.weight"]
STEPS = {750: 750, 1250: 1250}


def _tables(variants: dict[str, tuple[float, float, dict]], n: int = 6, iters: int = 1250, seed: int = 0):
    """Runs of each variant ``name: (log R_med gap, SGD-M's loss handicap, config fields)``:
    ``n`` seeds a side, a loss curve per run and R_med of four tensors at 750 and 1250."""
    rng = np.random.default_rng(seed)
    runs, loss, rmed = [], [], []
    for name, (gap, handicap, fields) in variants.items():
        for opt in ("sgdm", "adam"):
            for s in range(n):
                run = f"{name}-{opt}-s{s}"
                config = {"opt": opt, "seed": s, **fields}
                runs.append(dict(run=run, task="ptb_lm", sweep=f"variant-{name}", config=json.dumps(config),
                                 steps=iters))
                step = np.arange(iters + 1)
                level = 3.0 + (handicap if opt == "sgdm" else 0.0) + rng.normal(0, 0.005)
                curve = level + 4.0 * np.exp(-step / (150 * (1 + (handicap > 0) * (opt == "sgdm"))))
                loss.append(pd.DataFrame(dict(run=run, task="ptb_lm", opt=opt, lr=0.1, seed=s, step=step,
                                              loss=curve + rng.normal(0, 0.01, len(step)))))
                shift = rng.normal(gap if opt == "sgdm" else 0.0, 0.05)
                for st in STEPS.values():
                    for i, layer in enumerate(LAYERS):
                        rmed.append(dict(run=run, opt=opt, seed=s, step=st, layer=layer,
                                         r_med=float(np.exp(1.0 + 0.4 * i + shift + rng.normal(0, 0.02)))))
    # a tuning run, which the table must leave out
    runs.append(dict(run="tune", task="ptb_lm", sweep="variant-x-tuning", config="{}", steps=iters))
    return pd.DataFrame(runs), pd.concat(loss, ignore_index=True), pd.DataFrame(rmed)


def test_the_four_readings_come_where_they_should():
    runs, loss, rmed = _tables({
        "a": (0.3, 0.3, {}),                                # premise and claim: the design point
        "b": (0.3, 0.0, {"init": "torch"}),                  # the claim without the premise
        "c": (0.0, 0.3, {"output_bias": True}),              # the premise without the claim
        "d": (-0.3, 0.0, {"schedule": "warmup-cosine"}),     # neither (the claim's opposite)
    })
    t = variant_table(runs, loss, rmed, STEPS, n_sims=200).set_index("variant")
    assert list(t.index) == ["design point", "init=torch", "output_bias=True", "schedule=warmup-cosine"]
    assert t.loc["design point", "reading"] == "claim with premise"
    assert t.loc["init=torch", "reading"] == "claim without premise"
    assert t.loc["output_bias=True", "reading"] == "premise without claim"
    assert t.loc["schedule=warmup-cosine", "reading"] == "neither"
    assert t.loc["schedule=warmup-cosine", "claim_1250"] == "opposite"
    assert (t.n_sgdm == 6).all() and (t.n_adam == 6).all()  # the tuning run is left out
    # the claim's effect is the ratio of geometric means, computed here independently
    m = rmed[rmed.run.str.startswith("b-")]
    m = m[m.step == 1250].assign(log=lambda d: np.log(d.r_med)).groupby(["opt", "seed"]).log.mean()
    assert np.isclose(t.loc["init=torch", "ratio_1250"], np.exp(m["sgdm"].mean() - m["adam"].mean()))
    assert (t.fpr_750 < 0.15).all() and (t.power_1_3_1250 > 0.5).all()


def test_too_few_runs_are_not_testable_and_bad_tables_are_refused():
    runs, loss, rmed = _tables({"a": (0.3, 0.3, {})}, n=2)
    t = variant_table(runs, loss, rmed, STEPS, n_sims=50)
    assert t.reading.iloc[0] == "not testable" and t.claim_1250.iloc[0].startswith("not testable")
    with pytest.raises(ValueError, match="lacks columns.*config"):
        variant_table(runs.drop(columns="config"), loss, rmed, STEPS)
    with pytest.raises(ValueError, match="steps"):
        variant_table(runs, loss, rmed, {})
    with pytest.raises(ValueError, match="no study run"):
        variant_table(runs[runs.sweep.str.endswith("-tuning")], loss, rmed, STEPS)


def test_design_variant_names_only_what_differs_from_the_design_point():
    assert design_variant(json.dumps(DESIGN_POINT)) == "design point"
    assert design_variant({"init": "torch", "output_bias": False}) == "init=torch"
    with pytest.raises(TypeError, match="config"):
        design_variant(3)


def test_a_variant_tuned_but_not_run_is_listed_and_one_side_only_is_not_testable():
    runs, loss, rmed = _tables({"a": (0.3, 0.3, {}), "b": (0.3, 0.0, {"init": "torch"})}, n=5)
    runs.loc[runs.run == "tune", "config"] = json.dumps({"schedule": "warmup-cosine"})
    one_side = ~(runs.run.str.startswith("b-adam"))
    t = variant_table(runs[one_side], loss, rmed, STEPS, n_sims=50).set_index("variant")
    assert t.loc["schedule=warmup-cosine", "reading"] == "not run"
    assert t.loc["init=torch", "premise"].startswith("not testable") and t.loc["init=torch", "n_adam"] == 0
    assert t.loc["design point", "reading"] == "claim with premise"
