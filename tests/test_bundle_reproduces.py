"""The committed study bundle is what the current code computes: one seed of one optimizer is
trained again from scratch up to iteration 750 and probed, and its training losses and R_med must
match the stored ones (tolerances in :func:`rmed_core.bundle.check_reproduces`). A code change that
moves them fails here, with the commands to rerun the study."""
from __future__ import annotations

from rmed_core.bundle import bundle_names, check_reproduces, read_bundle


def test_the_study_bundle_is_complete():
    assert "study" in bundle_names(), "bundles/study is missing: run the study's sweeps and `rmed bundle study ...`"
    runs = read_bundle("study", "runs", sweep="study")
    lm = runs[runs.task == "ptb_lm"]
    assert {"adam", "sgdm"} <= set(lm.opt) and lm.groupby("opt").seed.nunique().min() >= 5
    assert (lm.vocab_size >= 2000).all() and (lm.seq_len >= 32).all() and (lm.d_model >= 64).all()
    assert (lm.steps >= 1250).all()
    probes = read_bundle("study", "rmed", run=list(lm.run))
    assert {750, 1250} <= set(probes.step)


def test_the_current_code_reproduces_a_slice_of_the_study():
    out = check_reproduces("study", sweep="study", opt="adam", seed=0, until=750)
    assert out["probes"] == 1 and out["tensors"] > 20
