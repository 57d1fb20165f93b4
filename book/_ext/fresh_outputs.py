"""Sphinx extension: a page is never shown with outputs made by an older ``rmed_core``, or from
older stored results.

Executed notebooks are cached by jupyter-cache, which keys on a notebook's code cells only, and
Sphinx re-reads only the pages whose own source changed. So whenever the source of ``rmed_core``
changes (a SHA-256 over the relative path and bytes of every ``rmed_core/**/*.py``), or a file the
notebooks read their stored results from (the results bundles under ``bundles/``, the benchmark
tables under ``benchmarks/results/``), this extension drops, before Sphinx loads anything, the
notebook cache (``_build/.jupyter_cache``), Sphinx's environment (``_build/.doctrees``) and the
executed notebooks (``_build/jupyter_execute``): every page is executed again. The hash of the code
the outputs were made with, and of the stored results, is kept in ``_build/.rmed-code-hash``.
Because it is part of the book, a plain ``jupyter-book build book`` runs it, not only ``make book``.

It also copies the book's own static files (``book/_static``) over the built ones after every
build: an incremental Sphinx build does not re-copy a static file that was edited.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from sphinx.util import logging

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "rmed_core"
HASH_FILE = ".rmed-code-hash"
#: Stored results the notebooks read (a change re-executes every page, like a change of the code).
DATA = (ROOT / "bundles", ROOT / "benchmarks" / "results")


def code_hash(package: Path = PACKAGE) -> str:
    """SHA-256 (16 hex digits) over the relative paths and bytes of every ``.py`` file under ``package``."""
    h = hashlib.sha256()
    for f in sorted(package.rglob("*.py")):
        h.update(f.relative_to(package).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def data_hash(folders: tuple[Path, ...] = DATA) -> str:
    """SHA-256 (16 hex digits) over the relative paths and bytes of every file under ``folders``
    (a missing folder counts as empty)."""
    h = hashlib.sha256()
    for folder in folders:
        for f in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if f.is_file():
                h.update(f.relative_to(folder.parent).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def inputs_hash() -> str:
    """What the executed pages depend on besides their own source: the code and the stored results."""
    return f"{code_hash()}-{data_hash()}"


def stale_paths(build: Path, cache: Path) -> list[Path]:
    """What to drop when the package changed: the notebook cache, Sphinx's environment, the
    executed notebooks."""
    return [cache, build / ".doctrees", build / "jupyter_execute"]


def _drop_if_package_changed(app, config) -> None:
    build = Path(app.outdir).parent
    cache = Path(getattr(config, "nb_execution_cache_path", "") or build / ".jupyter_cache")
    record = build / HASH_FILE
    current = inputs_hash()
    if record.is_file() and record.read_text().strip() == current:
        return
    dropped = [p for p in stale_paths(build, cache) if p.exists()]
    for p in dropped:
        shutil.rmtree(p)
    Path(app.doctreedir).mkdir(parents=True, exist_ok=True)
    if dropped:
        logging.getLogger(__name__).info(
            f"rmed_core or the stored results changed since the last build ({current}): every page is "
            f"executed again")
    build.mkdir(parents=True, exist_ok=True)
    record.write_text(current + "\n")


def _copy_static(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    src, dest = Path(app.srcdir) / "_static", Path(app.outdir) / "_static"
    if src.is_dir() and dest.is_dir():
        shutil.copytree(src, dest, dirs_exist_ok=True)


def setup(app):
    # config-inited runs before Sphinx loads its pickled environment, so dropping it here works
    app.connect("config-inited", _drop_if_package_changed, priority=100)
    app.connect("build-finished", _copy_static)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
