import numpy as np
import pandas as pd
import pytest

from rmed_core.analysis import PUBLISHED_RATIOS, compare_with_published, ratio_table, verdict


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


def test_verdicts():  # the rule of rmed_core.verdict.claim on one log-ratio per seed
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
