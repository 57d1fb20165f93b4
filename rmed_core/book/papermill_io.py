"""papermill reads jupytext notebooks (``.py`` percent format, ``.md``) from any folder.

papermill reads only ``.ipynb`` JSON. It picks an I/O handler by path *prefix* (``s3://``,
``https://``, ...) and falls back to the handler registered as ``"local"`` for every other path.
This module adds one entry point (``pyproject.toml``, group ``papermill.io``, name ``local``):
when papermill loads it, :func:`install` wraps papermill's own local handler in a
:class:`JupytextLocalHandler`, which

* reads a path that ends in ``.py`` or ``.md`` with ``jupytext`` (adding a ``python3``
  kernelspec when the source names none), relative to papermill's working folder, and
* passes every other call (every other path, every write, ``listdir``, ``cwd``) to papermill's
  own ``LocalHandler`` instance, unchanged.

So ``papermill notebooks/fig2.py out.ipynb`` and ``cd notebooks && papermill fig2.py out.ipynb``
both work, while ``.ipynb`` paths, URLs and other schemes behave exactly as without this package.
papermill's warning that an input "does not end in one of ['.ipynb', '.json']" is silenced for
``.py``/``.md`` inputs only.
"""
from __future__ import annotations

import importlib
import os
import warnings
from pathlib import Path
from typing import Any

import jupytext
import nbformat

__all__ = ["JUPYTEXT_SUFFIXES", "JupytextLocalHandler", "install", "read_notebook"]

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


def is_jupytext_path(path: Any) -> bool:
    """Whether ``path`` names a jupytext source (a string ending in ``.py`` or ``.md``)."""
    return isinstance(path, (str, os.PathLike)) and str(path).endswith(JUPYTEXT_SUFFIXES)


class JupytextLocalHandler:
    """papermill's local handler with one addition: ``read`` of a ``.py``/``.md`` path converts it
    with jupytext. Everything else is delegated to ``local``, papermill's own handler instance,
    whose working folder (papermill's ``--cwd``) this handler also reads relative to."""

    def __init__(self, local: Any) -> None:
        self.local = local

    def read(self, path: str) -> str:  # noqa: D102
        if not is_jupytext_path(path):
            return self.local.read(path)
        cwd = getattr(self.local, "_cwd", None)
        full = Path(cwd, path) if cwd is not None else Path(path)
        return nbformat.writes(read_notebook(full))

    def __getattr__(self, name: str) -> Any:  # write, listdir, pretty_path, cwd, ...
        if name == "local":
            raise AttributeError(name)
        return getattr(self.local, name)


def install(io: Any) -> JupytextLocalHandler:
    """Wrap the handler registered as ``"local"`` in papermill's registry ``io`` (a
    ``papermill.iorw.PapermillIO``) and put the wrapper in its place; idempotent.

    papermill has no public call that replaces a handler: registering another ``"local"`` puts it
    first in the list, but the fall-back for plain paths is the *last* ``"local"`` entry, so the
    entry itself is replaced in ``io._handlers``.
    """
    handlers = io._handlers
    for i, (scheme, handler) in enumerate(handlers):
        if scheme == "local":
            if not isinstance(handler, JupytextLocalHandler):
                handlers[i] = (scheme, JupytextLocalHandler(handler))
            wrapper = handlers[i][1]
    warnings.filterwarnings("ignore", message=r"The specified file \(.*\.(py|md)\) does not end in one of",
                            category=UserWarning)
    return wrapper


def __getattr__(name: str) -> Any:
    """``local_handler``: the object papermill registers through the entry point. Looking it up
    installs the wrapper into papermill's registry (papermill looks it up once, while
    ``papermill.iorw`` is being imported; its registry already exists at that point)."""
    # "HANDLER" is the name installs made before this entry point registered (under path prefixes);
    # answering it too keeps papermill importable until `pip install -e .` refreshes the metadata.
    if name in ("local_handler", "HANDLER"):
        return install(importlib.import_module("papermill.iorw").papermill_io)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
