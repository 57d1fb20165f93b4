import numpy as np
import pandas as pd
import pytest

from rmed_core.study.published import PUBLISHED_RATIOS, compare_with_published
from rmed_core.study.units import ratio_table, rmed_parts
from rmed_core.study.verdict import verdict


def _table():
    rows = []
    for seed, (s, a) in enumerate([(4.0, 2.0), (3.0, 1.0), (1.0, 2.0)]):
        for opt, r in (("sgdm", s), ("adam", a)):
            rows.append(dict(task="t", layer_index=15, layer="fc.bias", opt=opt, seed=seed, step=750, r_med=r))
    return pd.DataFrame(rows)


def test_ratio_table_pairs_by_seed():
    out = ratio_table(_table())
    assert out["mean"].iloc[0] == pytest.approx(np.mean([2.0, 3.0, 0.5]))
    assert out["std"].iloc[0] == pytest.approx(np.std([2.0, 3.0, 0.5], ddof=1))
    assert (out.n_seeds.iloc[0], out.n_above_1.iloc[0]) == (3, 2)


def test_verdicts():  # the rule of rmed_core.study.verdict.claim on one log-ratio per seed
    assert verdict([0.7, 0.1, 0.4, 0.2, 0.9]) == "reproduced"
    assert verdict([0.7, -0.1, 0.4, 0.2, 0.9]) == "not shown"
    assert verdict([-0.7, -0.1, -0.4, -0.2, -0.9]) == "opposite"
    assert verdict([0.7, 1.1, 0.4]) == "not testable: 3 seeds < 5"


def test_compare_with_published_has_one_row_per_published_row():
    out = compare_with_published(ratio_table(_table()))
    assert len(out) == len(PUBLISHED_RATIOS)
    first = out.iloc[0]
    assert first["paper"] == "1.65 (0.65)" and first["verdict"] == "not testable: 3 seeds < 5"
    assert (out[out["paper iteration"] == 1250]["verdict"] == "no data").all()


def test_missing_columns_and_no_overlap_are_clear_errors():
    with pytest.raises(ValueError, match="lacks columns"):
        ratio_table(pd.DataFrame({"opt": []}))
    with pytest.raises(ValueError, match="no .* probed under both"):
        ratio_table(_table(), num="signum")


def test_rmed_parts_split_the_ratio_into_maximum_and_median():
    rows = []
    for seed, (mx_s, md_s) in enumerate([(2.0, 1e-3), (8.0, 4e-3)]):
        rows.append(dict(opt="sgdm", step=5, layer="w", seed=seed, h_max=mx_s, h_median=md_s, r_med=mx_s / md_s))
        rows.append(dict(opt="adam", step=5, layer="w", seed=seed, h_max=1.0, h_median=0.1, r_med=10.0))
    rows.append(dict(opt="adam", step=5, layer="b", seed=0, h_max=1.0, h_median=0.0, r_med=np.nan))  # undefined
    parts = rmed_parts(pd.DataFrame(rows)).set_index(["opt", "layer"])
    s = parts.loc[("sgdm", "w")]
    assert s.h_max == pytest.approx(4.0) and s.h_median == pytest.approx(2e-3) and s.n_seeds == 2
    assert s.r_med == pytest.approx(s.h_max / s.h_median)  # geometric means keep r = max / median
    assert ("adam", "b") not in parts.index
    with pytest.raises(ValueError, match="h_median"):
        rmed_parts(pd.DataFrame(rows).drop(columns="h_median"))
