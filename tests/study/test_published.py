"""The published table beside this project's claims, from tables as the store returns them."""
from __future__ import annotations


import numpy as np
import pandas as pd

from rmed_core.study import units as un
from rmed_core.study import verdict as v
from rmed_core.study.published import PUBLISHED_RATIOS, compare_with_published
from rmed_core.study.units import ratio_table

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
