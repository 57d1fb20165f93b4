"""A papermill I/O handler that reads jupytext notebooks (``.py`` percent format, ``.md``).

papermill reads only ``.ipynb`` JSON and picks a handler by path prefix; this handler is
registered (``pyproject.toml``, entry-point group ``papermill.io``) for the prefixes
``notebooks/``, ``./notebooks/``, ``../notebooks/`` and ``/``, so that

    papermill notebooks/fig2.py out.ipynb -p opt adam

works as typed. Anything that is not a jupytext source is passed to papermill's own local
handler unchanged, and so is every write (papermill refuses an output folder that does not exist
with ``FileNotFoundError: output folder ... doesn't exist``).
"""
from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat

__all__ = ["HANDLER", "JupytextHandler", "read_notebook"]

JUPYTEXT_SUFFIXES = (".py", ".md")
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def read_notebook(path: str | Path) -> nbformat.NotebookNode:
    """Read a jupytext (``.py``/``.md``) or ``.ipynb`` notebook, adding a ``python3`` kernelspec
    when the source names none (papermill needs one to choose a kernel)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"notebook {str(path)!r} does not exist")
    nb = jupytext.read(path) if path.suffix in JUPYTEXT_SUFFIXES else nbformat.read(path, as_version=4)
    nb.metadata.setdefault("kernelspec", dict(KERNELSPEC))
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb


class JupytextHandler:
    """papermill I/O handler: ``.py``/``.md`` sources are converted with jupytext on read; every
    other call goes to papermill's own ``LocalHandler``.

    papermill is imported lazily: papermill loads this module through its entry point while
    ``papermill.iorw`` is still being imported, so a module-level import would be circular.
    """

    def __init__(self) -> None:
        self._local = None

    @property
    def local(self):
        """papermill's ``LocalHandler``, created on first use."""
        if self._local is None:
            from papermill.iorw import LocalHandler

            self._local = LocalHandler()
        return self._local

    def read(self, path: str) -> str:  # noqa: D102
        if str(path).endswith(JUPYTEXT_SUFFIXES):
            return nbformat.writes(read_notebook(path))
        return self.local.read(path)

    def write(self, buf: str, path: str) -> None:  # noqa: D102
        return self.local.write(buf, path)

    def listdir(self, path: str) -> list[str]:  # noqa: D102
        return self.local.listdir(path)

    def pretty_path(self, path: str) -> str:  # noqa: D102
        return self.local.pretty_path(path)

    def cwd(self, new_path):  # noqa: D102
        return self.local.cwd(new_path)


#: The instance papermill registers (papermill calls handlers' methods on the registered object).
HANDLER = JupytextHandler()
