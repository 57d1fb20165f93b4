"""The code version a stored run is keyed by: a SHA-256 over the modules of ``rmed_core`` that
compute what a run holds. A change to any of them makes earlier runs stale (the store then leaves
them out, with a warning); a change to presentation or orchestration does not."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

__all__ = ["NON_COMPUTING", "code_version", "is_covered"]

#: The allow-list of what computes nothing a stored run holds, as paths relative to ``rmed_core``
#: (a folder ends in ``/``): presentation (the book's figures and panels), the study's rules (read
#: from stored results, recomputed at every read) and orchestration (command line, sweeps, bundles,
#: reading results). Every other module of ``rmed_core`` -- any module added later included -- is
#: covered by :func:`code_version`. A test checks that no covered module imports one of these.
NON_COMPUTING: dict[str, str] = {
    "__init__.py": "the package face: re-exports the public API",
    "__main__.py": "command-line entry point",
    "cli.py": "command line",
    "book/": "figures, provenance panels, notebook I/O",
    "study/": "the study's grids, published numbers and verdict rules, recomputed from stored results at every read",
    "runs/sweep.py": "runs grid points through the trainer; computes nothing itself",
    "runs/sweep_spec.py": "reads sweep files into configs (a config change is a key change)",
    "runs/bundle.py": "exports stored runs' tables as a bundle and retrains a slice to compare; computes nothing itself",
    "runs/__init__.py": "re-exports the runs' public API",
    "runs/results.py": "reads stored results",
}


def is_covered(relative: str) -> bool:
    """Whether the module at ``relative`` (a path below ``rmed_core``, e.g. ``"runs/trainer.py"``)
    is covered by the runs' code version: not in :data:`NON_COMPUTING` nor in a folder it names.

    >>> is_covered("hessian/exact.py"), is_covered("study/verdict.py"), is_covered("runs/sweep.py")
    (True, False, False)
    """
    return not any(relative == k or (k.endswith("/") and relative.startswith(k)) for k in NON_COMPUTING)


def _package_root() -> Path:
    """The folder of ``rmed_core``."""
    return Path(__file__).resolve().parent.parent


def _package_files(scope: str) -> list[Path]:
    pkg = _package_root()
    return [f for f in sorted(pkg.rglob("*.py")) if "__pycache__" not in f.parts
            and not (scope == "runs" and not is_covered(f.relative_to(pkg).as_posix()))]


@lru_cache(maxsize=2)
def code_version(scope: str = "runs") -> str:
    """SHA-256 (first 16 hex digits) over the relative paths and bytes of ``.py`` files of
    ``rmed_core`` in sorted order: with ``scope="runs"`` every module but the allow-list
    :data:`NON_COMPUTING` (any change to code that computes a run makes earlier runs stale); with
    ``scope="all"`` every module (for executed notebooks, which also draw and judge)."""
    if scope not in ("runs", "all"):
        raise ValueError(f"scope={scope!r}: use 'runs' or 'all'")
    pkg = _package_root()
    h = hashlib.sha256()
    for f in _package_files(scope):
        h.update(f.relative_to(pkg).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]
