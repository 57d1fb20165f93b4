"""Results bundles: export from the store, read back, and the reproduction check that fails when
the stored numbers move (at ``ci`` scale: seconds)."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from rmed_core.runs.bundle import ReproductionError, bundle_provenance, check_reproduces, export_bundle, read_bundle
from rmed_core.runs.store import ResultStore
from rmed_core.runs.sweep_spec import load_spec
from rmed_core.runs.trainer import train

SPEC = """
scale: ci
tasks: [ptb_lm]
optimizers: [adam, sgdm]
lrs: {adam: [0.01], sgdm: [0.1]}
seeds: [0]
steps: 6
config: {probe_steps: [3, 6], probe_top_eig: false, hessian_batch: 3}
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bundle")
    spec = tmp / "tiny.yaml"
    spec.write_text(SPEC)
    store = ResultStore(tmp / "store")
    for p in load_spec(spec).points:
        train(p.config, store, progress=False)
    export_bundle("tiny", [spec], store=store.root, root=tmp / "bundles", command="test")
    return tmp / "bundles"


def test_bundle_holds_every_run_with_sizes_and_provenance(bundle):
    runs = read_bundle("tiny", "runs", root=bundle)
    assert sorted(runs.opt) == ["adam", "sgdm"]
    assert {"d_model", "n_layers", "n_heads", "seq_len", "vocab_size", "steps", "lr", "wall_time_s",
            "code_version"} <= set(runs.columns)
    assert (runs.steps == 6).all() and runs.vocab_size.notna().all()
    assert (runs.hessian_batch == 3).all()  # the run's own probe batch, not its scale's default (4)
    rmed = read_bundle("tiny", "rmed", root=bundle, opt="adam")
    assert set(rmed.step) == {3, 6} and "layer_index" in rmed.columns and (rmed.opt == "adam").all()
    loss = read_bundle("tiny", "loss", root=bundle)
    assert len(loss) == 12
    prov = bundle_provenance("tiny", root=bundle)
    assert prov["runs"] == 2 and prov["command"] == "test" and prov["specs"]


def test_missing_runs_and_unknown_names_are_refused(tmp_path, bundle):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.replace("seeds: [0]", "seeds: [0, 1]"))
    with pytest.raises(ValueError, match="not finished"):
        export_bundle("x", [spec], store=tmp_path / "empty", root=tmp_path / "b")
    out = export_bundle("x", [spec], store=tmp_path / "empty", root=tmp_path / "b", partial=True)
    assert len(bundle_provenance("x", root=out.parent)["missing"]) == 4
    with pytest.raises(ValueError, match="bundle='nope'.*tiny"):
        read_bundle("nope", "rmed", root=bundle)
    with pytest.raises(ValueError, match="kind='weights'"):
        read_bundle("tiny", "weights", root=bundle)


def test_reproduction_check_passes_and_fails_when_a_number_moves(bundle):
    out = check_reproduces("tiny", opt="adam", seed=0, until=3, root=bundle)
    assert out["loss_max_rel"] <= 1e-3 and out["probes"] == 1 and out["tensors"] > 0
    f = bundle / "tiny" / "rmed.csv"
    df = pd.read_csv(f)
    df.loc[(df.opt == "adam") & (df.step == 3) & df.r_med.notna(), "r_med"] *= 1.2
    df.to_csv(f, index=False)
    with pytest.raises(ReproductionError, match="rerun the sweep"):
        check_reproduces("tiny", opt="adam", seed=0, until=3, root=bundle)
    with pytest.raises(ValueError, match="until=99"):
        check_reproduces("tiny", opt="adam", seed=0, until=99, root=bundle)
    json.loads((bundle / "tiny" / "provenance.json").read_text())


def test_a_run_the_bundle_holds_is_read_not_trained(bundle):
    from rmed_core.runs.bundle import find_run

    cfg = load_spec_points(bundle)[0].config
    hit = find_run(cfg, root=bundle)
    assert hit is not None and hit.from_store and hit.provenance["bundle"] == "tiny"
    assert len(hit.loss) == 6 and set(hit.rmed.step) == {3, 6} and "layer_index" in hit.rmed.columns
    import dataclasses

    assert find_run(dataclasses.replace(cfg, seed=7), root=bundle) is None


def load_spec_points(bundle):
    spec = bundle.parent / "tiny.yaml"
    return load_spec(spec).points


def test_a_bundle_committed_in_parts_keeps_its_earlier_runs_and_the_sweep_skips_them(tmp_path, bundle):
    """A new checkout has an empty store: exporting the next part keeps what the bundle held, and
    the sweep does not compute it again."""
    import shutil

    from rmed_core.runs.bundle import bundle_configs
    from rmed_core.runs.sweep import run_sweep

    root = tmp_path / "bundles"
    shutil.copytree(bundle / "tiny", root / "tiny")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC.replace("seeds: [0]", "seeds: [0, 1]"))
    before = {k: read_bundle("tiny", k, root=root) for k in ("runs", "rmed", "loss")}
    export_bundle("tiny", [spec], store=tmp_path / "empty", root=root, partial=True)
    after = {k: read_bundle("tiny", k, root=root) for k in ("runs", "rmed", "loss")}
    for k in before:
        pd.testing.assert_frame_equal(after[k], before[k], check_dtype=False)
    assert sorted(bundle_provenance("tiny", root=root)["missing"]) == sorted(
        p.label for p in load_spec(spec).points if p.config.seed == 1)
    first = tmp_path / "first.yaml"
    first.write_text(SPEC)
    report = run_sweep(load_spec(first), ResultStore(tmp_path / "empty"), progress=False,
                       held=bundle_configs("tiny", root=root))  # nothing to run: no cluster is started
    assert list(report.table.note) == ["in the bundle"] * 2 and report.ok


def test_a_scheduled_run_is_reproduced_at_its_own_length_and_stopped(tmp_path):
    """A warmup-cosine run's rates depend on its length, so its reproduction trains at that length
    and stops after ``until`` updates: the losses match, a moved loss fails, and probes within
    ``until`` (which such a stop cannot compute) are refused with the reason."""
    spec = tmp_path / "sched.yaml"
    spec.write_text(SPEC.replace("config: {probe_steps: [3, 6], probe_top_eig: false, hessian_batch: 3}",
                                 "config: {probe_steps: [6], probe_top_eig: false, schedule: warmup-cosine}")
                    .replace("optimizers: [adam, sgdm]", "optimizers: [adam]")
                    .replace("lrs: {adam: [0.01], sgdm: [0.1]}", "lrs: {adam: [0.01]}"))
    store = ResultStore(tmp_path / "store")
    for p in load_spec(spec).points:
        train(p.config, store, progress=False)
    export_bundle("sched", [spec], store=store.root, root=tmp_path / "b", command="test")
    out = check_reproduces("sched", opt="adam", seed=0, until=3, root=tmp_path / "b")
    assert out["loss_max_rel"] <= 1e-3 and out["probes"] == 0
    assert check_reproduces("sched", opt="adam", seed=0, until=6, root=tmp_path / "b")["probes"] == 1
    f = tmp_path / "b" / "sched" / "loss.csv"
    df = pd.read_csv(f)
    df.loc[df.step == 2, "loss"] *= 1.1
    df.to_csv(f, index=False)
    with pytest.raises(ReproductionError, match="training loss differs"):
        check_reproduces("sched", opt="adam", seed=0, until=3, root=tmp_path / "b")
    spec.write_text(spec.read_text().replace("probe_steps: [6]", "probe_steps: [2, 6]"))
    for p in load_spec(spec).points:
        train(p.config, store, progress=False)
    export_bundle("sched2", [spec], store=store.root, root=tmp_path / "b", command="test")
    with pytest.raises(ValueError, match="warmup-cosine.*first probe"):
        check_reproduces("sched2", opt="adam", seed=0, until=3, root=tmp_path / "b")
