"""The sweep runner on a real Dask LocalCluster (worker processes): results equal serial runs, a
killed worker loses and duplicates nothing, failures are isolated, stored points are skipped.

Runs are at ``scale="ci"`` without curvature probes (a probe costs tens of seconds on a shared
2-core CPU); the probes' determinism is the trainer's to test, the sweep only calls ``train``.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from rmed_core.runs.store import ResultStore
from rmed_core.runs.results import load_results
from rmed_core.runs.sweep import plan, run_sweep, start_client
from rmed_core.runs.sweep_spec import SpecError, Sweep, load_spec, parse_spec
from rmed_core.runs.trainer import train


def write_spec(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def assert_same_as_serial(points, root: Path, serial_root: Path) -> None:
    """Every point's stored tables equal those of the same run made alone in this process, with
    the worker's number of torch threads (float32 sums depend on it)."""
    store, serial = ResultStore(root), ResultStore(serial_root)
    threads = torch.get_num_threads()
    for p in points:
        got = store.get(p.config.key_dict())
        torch.set_num_threads(got["provenance"]["threads"])
        try:
            ref = train(dataclasses.replace(p.config, device="cpu"), serial, progress=False)
        finally:
            torch.set_num_threads(threads)
        assert got["config"] == ref.config.key_dict()
        assert got["provenance"]["status"] == ref.status
        for kind in ("loss", "rmed", "eig"):
            pd.testing.assert_frame_equal(got[kind], getattr(ref, kind), check_exact=True, obj=f"{p.label} {kind}")


@pytest.fixture(scope="module")
def cluster():
    client, cluster = start_client(workers=2)
    yield client
    client.close()
    cluster.close()


# -- specifications ------------------------------------------------------------------------------
GOOD = """
scale: ci
tasks: [ptb_lm]
optimizers: [adam, sgdm]
seeds: [0, 1]
steps: 5
config: {probe_every: 0}
"""


@pytest.mark.parametrize("edit, key, words", [
    ("optimiser: [adam]", "optimiser", "did you mean 'optimizers'"),
    ("scale: huge", "scale", "not a known scale"),
    ("tasks: [ptb_lm, imagenet]", "tasks", "'imagenet' is not known"),
    ("optimizers: [adam, lion]", "optimizers", "'lion' is not known"),
    ("seeds: []", "seeds", "empty"),
    ("lrs: [0.01, -1]", "lrs", "positive number"),
    ("lrs: [0]", "lrs", "positive number"),
    ("optimizers: [signgd]", "lrs", "no tuned learning rate"),
    ("config: {probe_evry: 2}", "config.probe_evry", "did you mean 'probe_every'"),
    ("config: {seed: 2}", "config.seed", "set by the grid"),
    ("device: tpu", "device", "not a device"),
    ("parameters: {opt: adam}", "parameters", "only a notebook sweep"),
])
def test_bad_spec_names_file_and_key(tmp_path, edit, key, words):
    lines = [ln for ln in GOOD.strip().splitlines() if ln.split(":")[0] != edit.split(":")[0]]
    path = write_spec(tmp_path, "\n".join(lines + [edit]) + "\n", "bad.yaml")
    with pytest.raises(SpecError) as e:
        load_spec(path)
    assert str(path) in str(e.value) and f": {key}: " in str(e.value) and words in str(e.value), str(e.value)
    assert e.value.key == key


def test_bad_spec_files(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "missing.yaml")
    with pytest.raises(SpecError, match="scale: missing"):
        load_spec(write_spec(tmp_path, "tasks: [ptb_lm]\noptimizers: [adam]\n"))
    with pytest.raises(SpecError, match="expected a mapping"):
        load_spec(write_spec(tmp_path, "- ptb_lm\n"))
    with pytest.raises(SpecError, match="cannot parse"):
        load_spec(write_spec(tmp_path, "scale: [ci\n"))
    with pytest.raises(SpecError, match="optimizers: missing"):
        load_spec(write_spec(tmp_path, "scale: ci\ntasks: ptb_lm\n"))


def test_grid_is_deduplicated_by_store_key(tmp_path):
    """``tuned`` and the tuned value itself are one run: the grid keeps it once, keyed as the store."""
    from rmed_core.tasks import TUNED_LR

    tuned = TUNED_LR["ptb_lm"]["ci"]["adam"]
    other = 0.003 if tuned != 0.003 else 0.001
    assert TUNED_LR["ptb_lm"]["ci"]["sgdm"] not in (tuned, other)
    sweep = load_spec(write_spec(tmp_path, GOOD + f"lrs: [tuned, {tuned}, {other}]\n"))
    labels = [p.label for p in sweep.points]
    assert len(sweep.points) == len({p.key for p in sweep.points}) == 2 * 2 * 3 - 2  # adam's tuned lr, twice
    assert "ptb_lm/ci adam lr=tuned s0" in labels and f"ptb_lm/ci adam lr={tuned:g} s0" not in labels
    store = ResultStore(tmp_path / "store")
    for p in sweep.points:
        assert store.run_dir(p.config.key_dict()) == store.root / p.key


def test_toml_spec_equals_yaml(tmp_path):
    toml = write_spec(tmp_path, 'scale = "ci"\ntasks = ["ptb_lm"]\noptimizers = ["adam", "sgdm"]\nseeds = [0, 1]\n'
                                'steps = 5\n[config]\nprobe_every = 0\n', "spec.toml")
    assert load_spec(toml).points == load_spec(write_spec(tmp_path, GOOD)).points


def test_device_is_resolved_on_the_worker():
    """A client without CUDA can describe CUDA runs: the config stays ``auto`` until the worker."""
    sweep = parse_spec(dict(scale="ci", tasks="ptb_lm", optimizers="adam", device="cuda"), "x.yaml")
    assert sweep.points[0].config.device == "auto" and sweep.points[0].device == "cuda"


# -- running on a cluster ------------------------------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="the failing point is a CUDA run on a machine without CUDA")
def test_failures_are_isolated_and_diverged_is_a_result(cluster, tmp_path):
    base = parse_spec(dict(scale="ci", tasks="ptb_lm", optimizers=["adam"], seeds=[0], steps=4,
                           config={"probe_every": 0}), "iso.yaml").points[0]
    diverging = parse_spec(dict(scale="ci", tasks="ptb_lm", optimizers=["sgd"], lrs=[1e12], seeds=[0], steps=4,
                                config={"probe_every": 0}), "iso.yaml").points[0]
    crashing = parse_spec(dict(scale="ci", tasks="ptb_lm", optimizers=["adam"], seeds=[7], steps=4, device="cuda",
                               config={"probe_every": 0}), "iso.yaml").points[0]
    sweep = Sweep(Path("iso.yaml"), "iso", "runs", (crashing, base, diverging))
    store = ResultStore(tmp_path / "store")
    report = run_sweep(sweep, store, client=cluster, progress=False)
    outcome = dict(zip(report.table["label"], report.table["outcome"]))
    assert outcome == {crashing.label: "failed", base.label: "finished", diverging.label: "diverged"}, report.table
    assert not report.ok and report.counts["failed"] == 1
    assert "CUDA is not available" in report.failures.loc[0, "error"]
    failures = pd.read_csv(report.failures_file)
    assert list(failures["key"]) == [crashing.key] and "Traceback" in failures.loc[0, "traceback"]
    assert "Failed:" in report.summary() and crashing.label in report.summary()
    assert store.has(base.config.key_dict()) and store.has(diverging.config.key_dict())
    assert_same_as_serial([base, diverging], store.root, tmp_path / "serial")
    # The failed point is retried next time (it is not in the store); the others are skipped.
    again = run_sweep(sweep, store, client=cluster, progress=False)
    assert dict(zip(again.table["label"], again.table["outcome"]))[base.label] == "skipped"
    assert again.counts == {"finished": 0, "diverged": 0, "skipped": 2, "failed": 1, "interrupted": 0}


def test_killed_worker_loses_and_duplicates_nothing(cluster, tmp_path):
    """SIGKILL a worker while it trains: the scheduler resubmits its point, which resumes from its
    checkpoint; every point ends in the store once, with the numbers of an uninterrupted run."""
    spec = write_spec(tmp_path, "scale: ci\ntasks: ptb_lm\noptimizers: [adam, sgdm]\nseeds: [3]\nsteps: 40\n"
                                "config: {probe_every: 0, checkpoint_every: 4}\n")
    sweep = load_spec(spec)
    store = ResultStore(tmp_path / "store")
    pids = cluster.run(os.getpid)
    result = {}
    runner = threading.Thread(target=lambda: result.update(report=run_sweep(
        sweep, store, scheduler=cluster.scheduler.address, progress=False)))
    runner.start()
    deadline = time.monotonic() + 120
    while not list(store.root.glob("*/*/*/checkpoint.pt")):  # a run is midway
        assert time.monotonic() < deadline and runner.is_alive(), "no checkpoint appeared"
        time.sleep(0.1)
    busy = [w for w, keys in cluster.processing().items() if keys]
    os.kill(pids[busy[0]], signal.SIGKILL)
    runner.join(timeout=300)
    assert pids[busy[0]] not in cluster.run(os.getpid).values()  # the worker did die (and was replaced)
    report = result["report"]
    assert report.ok and set(report.table["outcome"]) == {"finished"}, report.table
    runs = load_results("runs", root=store.root)
    assert len(runs) == len(sweep.points) and runs["run"].is_unique
    loss = load_results("loss", root=store.root)
    assert not loss.duplicated(["run", "step"]).any() and len(loss) == 40 * len(sweep.points)
    assert not list(store.root.glob("*/*/*/checkpoint.pt"))
    assert_same_as_serial(sweep.points, store.root, tmp_path / "serial")
    assert plan(sweep, store)["stored"].all()


def test_notebook_sweep_keeps_each_executed_notebook(cluster, tmp_path):
    nb = tmp_path / "tiny.py"
    nb.write_text('# %% tags=["parameters"]\nx = 1\nscale = "book"\n\n'
                  '# %%\nimport os\nassert scale == "ci"\nassert os.environ["RMED_RESULTS"]\ny = 10 * x\n')
    spec = write_spec(tmp_path, f"scale: ci\nnotebook: {nb}\nparameters: {{x: [1, 2]}}\n")
    sweep = load_spec(spec)
    store = ResultStore(tmp_path / "store")
    report = run_sweep(sweep, store, client=cluster, progress=False)
    assert report.ok and report.counts["finished"] == 2, report.table
    for p in sweep.points:
        out = store.root / p.key
        assert out.is_file() and f"x = {p.parameters['x']}" in out.read_text()
    assert not list((store.root / "notebooks").glob(".*"))  # no temporary files left
    assert run_sweep(sweep, store, client=cluster, progress=False).counts["skipped"] == 2
    with pytest.raises(SpecError, match=r"parameters\.z: not a parameter of tiny\.py"):
        load_spec(write_spec(tmp_path, f"scale: ci\nnotebook: {nb}\nparameters: {{z: [1]}}\n"))


def test_learning_rates_per_optimizer(tmp_path):
    sweep = parse_spec({"scale": "ci", "tasks": ["ptb_lm"], "optimizers": ["adam", "sgdm"],
                        "lrs": {"adam": [0.001, 0.003], "sgdm": [0.1]}, "seeds": [0], "config": {"probe_every": 0}})
    assert sorted((p.config.opt, p.config.lr) for p in sweep.points) == [("adam", 0.001), ("adam", 0.003),
                                                                          ("sgdm", 0.1)]
    for lrs, words in [({"adam": [0.001]}, "no learning rates for sgdm"), ({"adam": [1e-3], "sgdm": [-1]}, "lrs.sgdm"),
                       ({"adam": [1e-3], "sgdm": [0.1], "lion": [1]}, "'lion' is not known")]:
        with pytest.raises(SpecError, match=words):
            parse_spec({"scale": "ci", "tasks": ["ptb_lm"], "optimizers": ["adam", "sgdm"], "lrs": lrs})
