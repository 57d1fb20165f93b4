"""The result store: keys, atomic writes, the COMPLETE marker, stale results, load_results."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from rmed_core.runs import files
from rmed_core.runs import store as st
from rmed_core.runs.store import ResultStore, StaleResultsWarning
from rmed_core.runs.results import load_results

CONFIG = dict(task="ptb_lm", scale="ci", opt="adam", lr=0.01, seed=0, steps=2)


def _tables(offset: float = 0.0) -> dict[str, pd.DataFrame]:
    return {"loss": pd.DataFrame(dict(step=[0, 1], loss=[2.0 + offset, 1.5 + offset], diverged=[False, False])),
            "rmed": pd.DataFrame(dict(step=[0, 2], index=[0, 0], layer=["w", "w"], numel=[4, 4], r_med=[3.0, 2.5],
                                      method="exact", lower=[3.0, 2.5], upper=[3.0, 2.5])),
            "probe": pd.DataFrame(dict(step=[0, 2], loss=[2.0, 1.4], time_s=[0.1, 0.1]))}


def test_root_from_env_and_argument(tmp_path, monkeypatch):
    monkeypatch.setenv("RMED_RESULTS", str(tmp_path / "env"))
    assert ResultStore().root == tmp_path / "env"
    assert ResultStore(tmp_path / "arg").root == tmp_path / "arg"
    monkeypatch.delenv("RMED_RESULTS")
    assert ResultStore().root.name == "results"


def test_key_is_stable_and_order_free():
    assert st.config_key(CONFIG) == st.config_key(dict(reversed(list(CONFIG.items()))))
    assert st.config_key(CONFIG) != st.config_key({**CONFIG, "seed": 1})
    assert st.config_key(CONFIG, "v1") != st.config_key(CONFIG, "v2")


def test_write_then_has_get_and_load(tmp_path):
    s = ResultStore(tmp_path)
    assert not s.has(CONFIG)
    with pytest.raises(KeyError):
        s.get(CONFIG)
    d = s.write_run(CONFIG, _tables(), {"status": "finished"})
    assert s.has(CONFIG) and (d / "COMPLETE").is_file()
    assert not [p for p in d.iterdir() if p.name.startswith(".")]  # no temporary files left
    assert s.get(CONFIG)["loss"]["loss"].tolist() == [2.0, 1.5]
    r = load_results("rmed", root=tmp_path)
    assert {"task", "opt", "seed", "step", "layer", "r_med", "method", "lower", "upper", "lr", "scale"} <= set(r.columns)
    loss = load_results("loss", root=tmp_path)
    assert {"task", "opt", "seed", "step", "loss", "lr", "scale", "diverged"} <= set(loss.columns)
    assert load_results("runs", root=tmp_path)["status"].tolist() == ["finished"]


def test_filters_match_values_and_lists(tmp_path):
    s = ResultStore(tmp_path)
    s.write_run(CONFIG, _tables(), {})
    s.write_run({**CONFIG, "opt": "sgdm", "lr": 1.0}, _tables(1.0), {})
    assert set(load_results("loss", root=tmp_path)["opt"]) == {"adam", "sgdm"}
    assert set(load_results("loss", root=tmp_path, opt="sgdm")["opt"]) == {"sgdm"}
    assert len(load_results("loss", root=tmp_path, opt=["adam", "sgdm"], lr=0.01)) == 2
    empty = load_results("rmed", root=tmp_path, task="mnist_cnn")
    assert empty.empty and {"task", "opt", "seed", "step", "layer", "r_med"} <= set(empty.columns)
    with pytest.raises(ValueError, match="kind"):
        load_results("losses", root=tmp_path)


def test_half_written_run_is_invisible(tmp_path, monkeypatch):
    s = ResultStore(tmp_path)
    calls = []

    def crash_on_marker(path, data):
        if path.name == "COMPLETE":
            raise KeyboardInterrupt("killed before the marker")
        calls.append(path.name)
        real(path, data)

    real = files.atomic_write_bytes
    monkeypatch.setattr(files, "atomic_write_bytes", crash_on_marker)  # the marker, via atomic_write_text
    monkeypatch.setattr(st, "atomic_write_bytes", crash_on_marker)  # the tables
    with pytest.raises(KeyboardInterrupt):
        s.write_run(CONFIG, _tables(), {})
    assert "loss.csv" in calls and not s.has(CONFIG)
    assert load_results("loss", root=tmp_path).empty


def test_truncated_table_is_detected(tmp_path):
    s = ResultStore(tmp_path)
    d = s.write_run(CONFIG, _tables(), {})
    (d / "loss.csv").write_text("step,loss\n")
    with pytest.raises(OSError, match="loss.csv.*COMPLETE"):
        s.get(CONFIG)


def test_stale_runs_are_flagged_not_silent(tmp_path, monkeypatch):
    s = ResultStore(tmp_path)
    monkeypatch.setattr(st, "code_version", lambda: "old-version")
    s.write_run(CONFIG, _tables(), {})
    monkeypatch.setattr(st, "code_version", lambda: "new-version")
    assert not s.has(CONFIG)  # a code change means recompute
    with pytest.warns(StaleResultsWarning, match="1 stored run"):
        assert load_results("loss", root=tmp_path).empty
    both = load_results("loss", root=tmp_path, include_stale=True)
    assert both["stale"].all() and len(both) == 2
    marker = next(tmp_path.rglob("COMPLETE"))
    assert json.loads(marker.read_text())["code_version"] == "old-version"


def test_code_version_moves_with_a_computing_module_only(tmp_path, monkeypatch):
    """A copy of the package: editing a module that computes runs changes the version, editing one
    of the allow-list (a figure, a verdict rule) does not; "all" sees both."""
    import shutil
    from pathlib import Path

    import rmed_core
    from rmed_core.runs import code_version as cv

    copy = tmp_path / "rmed_core"
    shutil.copytree(Path(rmed_core.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cv, "__file__", str(copy / "runs" / "code_version.py"))

    def versions() -> tuple[str, str]:
        cv.code_version.cache_clear()
        return cv.code_version("runs"), cv.code_version("all")

    try:
        runs0, all0 = versions()
        assert len(runs0) == 16 and all(c in "0123456789abcdef" for c in runs0)
        with open(copy / "book" / "plots.py", "a") as f:
            f.write("\n# a figure changes\n")
        runs1, all1 = versions()
        assert runs1 == runs0 and all1 != all0
        with open(copy / "hessian" / "exact.py", "a") as f:
            f.write("\n# the engine changes\n")
        runs2, all2 = versions()
        assert runs2 != runs1 and all2 != all1
    finally:
        monkeypatch.undo()
        cv.code_version.cache_clear()
