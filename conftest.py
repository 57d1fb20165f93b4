"""Collect every jupytext notebook under ``notebooks/`` as an nbval test, at ``scale="ci"``.

nbval collects only ``.ipynb`` files: each ``notebooks/*.py`` is parameterised with papermill
(``prepare_only``: the ``injected-parameters`` cell is added, nothing runs) into a temporary
``.ipynb`` that nbval then executes cell by cell. The notebooks hold no stored outputs, so the
real checks are their ``assert`` cells.
"""
from __future__ import annotations

import os
from pathlib import Path

import papermill
import pytest
from nbval.plugin import IPyNbFile

from rmed_core.book.papermill_io import read_notebook

NOTEBOOK_PARAMETERS = {"scale": "ci"}


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.suffix == ".py" and file_path.parent.name == "notebooks" and not file_path.name.startswith("_"):
        tmp = parent.config._tmp_path_factory.mktemp("nbval") / f"{file_path.stem}.ipynb"
        papermill.execute_notebook(read_notebook(file_path), str(tmp), parameters=NOTEBOOK_PARAMETERS,
                                   prepare_only=True, language="python", log_output=False, progress_bar=False)
        return NotebookFromSource.from_parent(parent, path=tmp, source=file_path)
    return None


class NotebookFromSource(IPyNbFile):
    """An nbval notebook generated from a jupytext source; the kernel runs in the repository root
    so that relative paths behave as they do for a user."""

    def __init__(self, *args, source: Path, **kwargs):
        super().__init__(*args, **kwargs)
        self.source = source

    def setup(self):
        os.environ.setdefault("RMED_NOTEBOOK_SOURCE", str(self.source))
        super().setup()
