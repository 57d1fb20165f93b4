"""``rmed sweep`` end to end: its own LocalCluster of two worker processes, a second invocation
that skips everything, ``--dry-run``, exit statuses."""
from __future__ import annotations

import subprocess
import sys

from rmed_core.cli import main
from rmed_core.runs.store import ResultStore
from rmed_core.runs.results import load_results
from rmed_core.runs.sweep_spec import load_spec

from test_sweep import assert_same_as_serial

SPEC = """
scale: ci
tasks: [ptb_lm]
optimizers: [adam, sgdm]
seeds: [0]
steps: 6
config: {probe_every: 0}
"""


def test_sweep_runs_then_skips_then_lists(tmp_path, capsys):
    spec = tmp_path / "grid.yaml"
    spec.write_text(SPEC)
    store = tmp_path / "store"
    assert main(["sweep", str(spec), "--dry-run", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert out.count("would run") == 2 and "2 points, 0 in the store" in out
    assert not store.exists()  # a dry run starts nothing and writes nothing

    assert main(["sweep", str(spec), "--workers", "2", "--store", str(store), "--no-progress"]) == 0
    assert "grid: 2 finished, 0 failed" in capsys.readouterr().out
    sweep = load_spec(spec)
    assert_same_as_serial(sweep.points, store, tmp_path / "serial")

    assert main(["sweep", str(spec), "--workers", "2", "--store", str(store), "--no-progress"]) == 0
    assert "grid: 0 finished, 2 skipped, 0 failed" in capsys.readouterr().out
    assert len(load_results("runs", root=store)) == 2

    assert main(["sweep", str(spec), "--dry-run", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert out.count("stored (skip)") == 2 and "2 points, 2 in the store" in out
    assert all(ResultStore(store).has(p.config.key_dict()) for p in sweep.points)


def test_bad_spec_exits_2_before_scheduling(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(SPEC.replace("sgdm", "lion"))
    r = subprocess.run([sys.executable, "-m", "rmed_core", "sweep", str(spec), "--store", str(tmp_path / "s")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert f"{spec}: optimizers: 'lion' is not known; valid: " in r.stderr
    assert not (tmp_path / "s").exists()
