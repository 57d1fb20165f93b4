"""The book's own Sphinx extension drops executed outputs when rmed_core changes, so that a plain
`jupyter-book build book` never shows a figure made by older code."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("fresh_outputs", ROOT / "book" / "_ext" / "fresh_outputs.py")
fresh = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fresh)


def _build(tmp_path: Path):
    build = tmp_path / "_build"
    stale = [build / ".jupyter_cache", build / ".doctrees", build / "jupyter_execute"]
    for p in stale:
        (p / "sub").mkdir(parents=True, exist_ok=True)
        (p / "sub" / "f").write_text("old output")
    app = SimpleNamespace(outdir=str(build / "html"), doctreedir=str(build / ".doctrees"))
    config = SimpleNamespace(nb_execution_cache_path=str(build / ".jupyter_cache"))
    return app, config, stale


def test_outputs_are_dropped_when_the_package_changes_and_kept_otherwise(tmp_path, monkeypatch):
    app, config, stale = _build(tmp_path)
    monkeypatch.setattr(fresh, "inputs_hash", lambda: "aaaa")
    fresh._drop_if_package_changed(app, config)  # first build with this extension: no record yet
    assert not any((p / "sub").exists() for p in stale)
    assert Path(app.doctreedir).is_dir()
    app, config, stale = _build(tmp_path)
    fresh._drop_if_package_changed(app, config)  # nothing changed: the cache is kept
    assert all((p / "sub" / "f").is_file() for p in stale)
    monkeypatch.setattr(fresh, "inputs_hash", lambda: "bbbb")
    fresh._drop_if_package_changed(app, config)  # rmed_core or the stored results changed: every page is executed again
    assert not any((p / "sub").exists() for p in stale)
    assert (tmp_path / "_build" / fresh.HASH_FILE).read_text().strip() == "bbbb"


def test_code_hash_follows_every_module_of_the_package(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    before = fresh.code_hash(pkg)
    (pkg / "sub" / "b.py").write_text("y = 3\n")
    assert fresh.code_hash(pkg) != before
    assert fresh.code_hash() == fresh.code_hash(ROOT / "rmed_core")


def test_stored_results_are_inputs_of_the_pages_too(tmp_path):
    bundles, results = tmp_path / "bundles", tmp_path / "results"
    (bundles / "study").mkdir(parents=True)
    (bundles / "study" / "rmed.csv").write_text("r_med\n1.0\n")
    before = fresh.data_hash((bundles, results))  # a missing folder counts as empty
    (bundles / "study" / "rmed.csv").write_text("r_med\n2.0\n")
    assert fresh.data_hash((bundles, results)) != before
    assert fresh.DATA == (ROOT / "bundles", ROOT / "benchmarks" / "results")
    assert fresh.inputs_hash().startswith(fresh.code_hash() + "-")


def test_the_book_registers_the_extension():
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["sphinx"]["local_extensions"]["fresh_outputs"] == "book/_ext"
    assert not config["launch_buttons"].get("colab_url") and not config["launch_buttons"].get("binderhub_url")
    assert "repository" not in config, "no repository URL that is not real"
