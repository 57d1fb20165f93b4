"""`papermill notebooks/<name>.py out.ipynb -p ...` works as typed, from relative, ./ and absolute
paths, and refuses an output folder that does not exist with a clear message."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAPERMILL = shutil.which("papermill", path=str(Path(sys.executable).parent)) or "papermill"


def _papermill(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PAPERMILL, *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def _glued(notebook: Path) -> dict[str, str]:
    nb = json.loads(notebook.read_text())
    out = {}
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            meta = o.get("metadata", {}).get("scrapbook", {})
            if meta:
                out[meta["name"]] = o["data"].get(meta["mime_prefix"] + "text/plain")
    return out


@pytest.mark.parametrize("source", ["notebooks/theorem.py", "./notebooks/theorem.py", "ABSOLUTE"])
def test_theorem_runs_as_typed(source, tmp_path):
    src = str(ROOT / "notebooks/theorem.py") if source == "ABSOLUTE" else source
    out = tmp_path / "out.ipynb"
    result = _papermill(src, str(out), "-p", "opt", "adam", "-p", "scale", "ci", cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
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
