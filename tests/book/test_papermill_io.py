"""`papermill notebooks/<name>.py out.ipynb -p ...` works as typed, from relative, ./ and absolute
paths and from inside notebooks/, without capturing any other path, and refuses an output folder
that does not exist with a clear message."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAPERMILL = shutil.which("papermill", path=str(Path(sys.executable).parent)) or "papermill"


def _papermill(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PAPERMILL, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def _glued(notebook: Path) -> dict[str, str]:
    nb = json.loads(notebook.read_text())
    out = {}
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            meta = o.get("metadata", {}).get("scrapbook", {})
            if meta:
                out[meta["name"]] = o["data"].get(meta["mime_prefix"] + "text/plain")
    return out


@pytest.mark.parametrize("source, cwd", [("notebooks/theorem.py", "."), ("./notebooks/theorem.py", "."),
                                         ("ABSOLUTE", "/"), ("theorem.py", "notebooks")])
def test_theorem_runs_as_typed(source, cwd, tmp_path):
    src = str(ROOT / "notebooks/theorem.py") if source == "ABSOLUTE" else source
    out = tmp_path / "out.ipynb"
    result = _papermill(src, str(out), "-p", "opt", "adam", "-p", "scale", "ci", cwd=ROOT / cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "does not end in" not in result.stderr, result.stderr[-3000:]
    glued = _glued(out)
    for key in ("rmed_w1_final", "rmed_w2_final", "loss_final"):
        assert key in glued, f"{key} not glued; glued: {sorted(glued)}"
    assert 0.9 < float(glued["rmed_w1_final"]) < 3, glued["rmed_w1_final"]


def test_theorem_with_width_parameter(tmp_path):
    out = tmp_path / "out.ipynb"
    result = _papermill("notebooks/theorem.py", str(out), "-p", "opt", "gd", "-p", "width", "40",
                        "-p", "scale", "ci", cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    nb = json.loads(out.read_text())
    injected = next(c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", []))
    assert "width = 40" in "".join(injected["source"])
    assert float(_glued(out)["rmed_w1_final"]) > 3


def test_missing_output_folder_is_refused_clearly(tmp_path):
    result = _papermill("notebooks/theorem.py", str(tmp_path / "no" / "such" / "out.ipynb"), "-p", "scale", "ci",
                        cwd=ROOT)
    assert result.returncode != 0
    assert "doesn't exist" in result.stderr


def test_bad_parameter_fails_before_work(tmp_path):
    result = _papermill("notebooks/theorem.py", str(tmp_path / "out.ipynb"), "-p", "opt", "newton",
                        "-p", "scale", "ci", cwd=ROOT)
    assert result.returncode != 0
    assert "opt='newton' is not a known optimizer" in result.stderr + result.stdout


def test_other_paths_are_left_to_papermill(tmp_path):
    """Only `.py`/`.md` reads are converted; every other path reaches papermill's own LocalHandler
    (the same instance, so papermill's --cwd applies), and no prefix such as "/" is registered."""
    from papermill.iorw import LocalHandler, papermill_io

    from rmed_core.book.papermill_io import JupytextLocalHandler

    schemes = [scheme for scheme, _ in papermill_io._handlers]
    assert "/" not in schemes and "notebooks/" not in schemes, schemes
    nb = tmp_path / "plain.ipynb"
    nb.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    handler = papermill_io.get_handler(str(nb))
    assert isinstance(handler, JupytextLocalHandler) and type(handler.local) is LocalHandler
    assert papermill_io.get_handler("local") is handler
    assert papermill_io.read(str(nb)) == LocalHandler().read(str(nb))
    assert papermill_io.get_handler("https://example.org/x.py") is not handler  # other schemes untouched
    with warnings.catch_warnings():  # pytest resets the filter that silences papermill's suffix warning
        warnings.simplefilter("ignore")
        converted = json.loads(papermill_io.read(str(ROOT / "notebooks/theorem.py")))
    assert any("parameters" in c["metadata"].get("tags", []) for c in converted["cells"])


def test_every_parameter_has_a_type():
    for notebook in sorted((ROOT / "notebooks").glob("*.py")):
        result = subprocess.run([PAPERMILL, "--help-notebook", notebook.name], cwd=ROOT / "notebooks",
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "Parameters inferred" in result.stdout and "Unknown type" not in result.stdout, result.stdout


def test_training_notebooks_take_lr():
    for name in ("fig1", "fig2", "fig3", "fig4", "fig5", "theorem"):
        result = subprocess.run([PAPERMILL, "--help-notebook", f"notebooks/{name}.py"], cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        assert "\n  lr: " in result.stdout, f"{name}: no lr parameter\n{result.stdout}"


def test_missing_tuned_lr_says_how_to_pass_one(tmp_path):
    result = _papermill("notebooks/fig4.py", str(tmp_path / "out.ipynb"), "-p", "task", "fashion_cnn",
                        "-p", "scale", "ci", cwd=ROOT)
    assert result.returncode != 0
    assert "has no tuned learning rate for task 'fashion_cnn'" in result.stderr + result.stdout
    assert "-p lr VALUE" in result.stderr + result.stdout
