"""The result store: one folder per run, keyed by the run's configuration and the code version.

Layout (``root`` is ``$RMED_RESULTS``, else ``<repository>/results``)::

    root/<task>/<scale>/<opt>-s<seed>-<key>/
        config.json       the run configuration (every field that changes the numbers)
        provenance.json   code version, git commit, versions, device, wall time, status
        loss.csv rmed.csv probe.csv eig.csv    tidy tables
        checkpoint.pt     only while the run is unfinished
        COMPLETE          written last: the run is visible only once it exists

``key`` is the first 16 hex digits of SHA-256 over the canonical JSON of the configuration and
:func:`code_version` (a SHA-256 over every ``rmed_core/**/*.py`` file). Every file is written to a
temporary name in the same folder and moved into place with ``os.replace`` (atomic on POSIX), and
``COMPLETE`` (which lists each table's size) is written last, so a run killed half way is never
read as finished.

Stale results: when the code changes, old runs keep their folders but no longer match any key.
:func:`load_results` leaves them out and *warns* (:class:`StaleResultsWarning`) with their number;
``include_stale=True`` returns them too, with ``stale=True`` in a ``stale`` column. Nothing stale
is ever returned silently.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import warnings
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from .provenance import repo_root

__all__ = ["ResultStore", "load_results", "code_version", "config_key", "StaleResultsWarning", "KINDS",
           "atomic_write_bytes", "atomic_write_text"]

KINDS = ("loss", "rmed", "probe", "eig", "runs")
MARKER = "COMPLETE"
ID_COLUMNS = ["task", "scale", "opt", "lr", "seed"]


class StaleResultsWarning(UserWarning):
    """Some stored runs were made by another version of the code and were left out."""


#: Modules that do not change a run's numbers (presentation, orchestration, the theorem's own
#: model): editing them leaves stored runs valid.
NOT_COMPUTING = frozenset({"analysis.py", "cli.py", "__main__.py", "experiments.py", "linear_net.py",
                           "papermill_io.py", "plots.py", "report.py", "sweep.py", "sweep_spec.py"})


@lru_cache(maxsize=1)
def code_version() -> str:
    """SHA-256 (first 16 hex digits) over the relative paths and bytes of every ``.py`` file of
    ``rmed_core`` that computes a run (all but :data:`NOT_COMPUTING`), in sorted order: any change
    to that code makes earlier results stale."""
    pkg = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(pkg.rglob("*.py")):
        if "__pycache__" in f.parts or (f.parent == pkg and f.name in NOT_COMPUTING):
            continue
        h.update(f.relative_to(pkg).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _canonical(config: dict[str, Any]) -> str:
    """Sorted-key compact JSON (so the key does not depend on field order)."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def config_key(config: dict[str, Any], version: str | None = None) -> str:
    """The run key: SHA-256 (16 hex digits) of the canonical JSON of ``config`` plus the code version."""
    text = _canonical(config) + "|" + (version or code_version())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, fsync, ``os.replace``."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _as_dict(config: Any) -> dict[str, Any]:
    if hasattr(config, "key_dict"):
        return config.key_dict()
    if isinstance(config, dict):
        return dict(config)
    raise TypeError(f"config must be a dict or have key_dict(); got {type(config).__name__}")


class ResultStore:
    """Runs on disk under ``root`` (default ``$RMED_RESULTS``, else ``<repository>/results``).

    A *config* is a dict of the fields that determine a run's numbers (or an object with
    ``key_dict()``, e.g. a resolved :class:`~rmed_core.trainer.TrainConfig`) with at least
    ``task, scale, opt, seed``.
    """

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root or os.environ.get("RMED_RESULTS") or repo_root() / "results").expanduser()

    def __repr__(self) -> str:
        return f"ResultStore({str(self.root)!r})"

    # -- locating runs ---------------------------------------------------------------------------
    def run_dir(self, config: Any) -> Path:
        """The folder of ``config`` under the current code version (not created)."""
        c = _as_dict(config)
        missing = [k for k in ("task", "scale", "opt", "seed") if k not in c]
        if missing:
            raise ValueError(f"config lacks {missing}: a run is stored under task/scale/opt/seed")
        return self.root / str(c["task"]) / str(c["scale"]) / f"{c['opt']}-s{c['seed']}-{config_key(c)}"

    def has(self, config: Any) -> bool:
        """Whether a finished run of ``config`` made by the current code is stored."""
        return (self.run_dir(config) / MARKER).is_file()

    def get(self, config: Any) -> dict[str, Any]:
        """The finished run of ``config``: ``{"config", "provenance", "loss", "rmed", "probe", "eig"}``
        (tables as DataFrames). Raises ``KeyError`` when it is not stored."""
        d = self.run_dir(config)
        if not (d / MARKER).is_file():
            raise KeyError(f"no finished run for this config under the current code version (looked in {d})")
        return self._read_run(d)

    # -- writing ---------------------------------------------------------------------------------
    def write_run(self, config: Any, tables: dict[str, pd.DataFrame], provenance: dict[str, Any],
                  extra_files: dict[str, bytes] | None = None) -> Path:
        """Write a finished run: ``config.json``, ``provenance.json``, one CSV per table and any
        ``extra_files`` (e.g. ``final_model.pt``), then the ``COMPLETE`` marker (with each file's
        size) — each file atomically, the marker last."""
        c = _as_dict(config)
        d = self.run_dir(c)
        d.mkdir(parents=True, exist_ok=True)
        files: dict[str, bytes] = {
            "config.json": json.dumps(c, indent=1, sort_keys=True).encode(),
            "provenance.json": json.dumps({**provenance, "code_version": code_version(), "key": config_key(c)},
                                          indent=1, sort_keys=True, default=str).encode(),
        }
        for kind, df in tables.items():
            if kind not in KINDS[:-1]:
                raise ValueError(f"table {kind!r} is not known; use one of {KINDS[:-1]}")
            buf = io.StringIO()
            df.to_csv(buf, index=False, float_format="%.17g")
            files[f"{kind}.csv"] = buf.getvalue().encode()
        files.update(extra_files or {})
        for name, data in files.items():
            atomic_write_bytes(d / name, data)
        marker = {"code_version": code_version(), "files": {n: len(b) for n, b in files.items()}}
        atomic_write_text(d / MARKER, json.dumps(marker, indent=1, sort_keys=True))
        return d

    # -- reading ---------------------------------------------------------------------------------
    def _read_run(self, d: Path) -> dict[str, Any]:
        marker = json.loads((d / MARKER).read_text())
        for name, size in marker["files"].items():
            actual = (d / name).stat().st_size if (d / name).is_file() else -1
            if actual != size:
                raise OSError(f"{d / name}: {actual} bytes on disk, the COMPLETE marker says {size}: "
                              f"the run folder is corrupt; delete {d} to recompute it")
        out: dict[str, Any] = {"dir": d, "config": json.loads((d / "config.json").read_text()),
                               "provenance": json.loads((d / "provenance.json").read_text())}
        for kind in KINDS[:-1]:
            f = d / f"{kind}.csv"
            out[kind] = pd.read_csv(f) if f.is_file() and f.stat().st_size > 1 else pd.DataFrame()
        return out

    def finished_runs(self) -> Iterable[tuple[Path, bool]]:
        """``(folder, stale)`` of every finished run under ``root``; ``stale`` when it was made by
        another code version."""
        if not self.root.is_dir():
            return
        current = code_version()
        for marker in sorted(self.root.glob(f"*/*/*/{MARKER}")):
            v = json.loads(marker.read_text()).get("code_version")
            yield marker.parent, v != current

    def load(self, kind: str, *, include_stale: bool = False, **filters: Any) -> pd.DataFrame:
        """See :func:`load_results`."""
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} is not known; use one of {KINDS}")
        frames, n_stale = [], 0
        for d, stale in self.finished_runs():
            if stale and not include_stale:
                n_stale += 1
                continue
            config = json.loads((d / "config.json").read_text())
            if not all(_match(config.get(k), v) for k, v in filters.items()):
                continue
            run = self._read_run(d)
            ids = {**{k: config.get(k) for k in ID_COLUMNS}, "run": d.name}
            if kind == "runs":
                prov = run["provenance"]
                df = pd.DataFrame([{**config, "run": d.name, "status": prov.get("status"),
                                    "wall_time_s": prov.get("wall_time_s"), "device": prov.get("device"),
                                    "code_version": prov.get("code_version")}])
            else:
                df = run[kind]
                if df.empty:
                    continue
                df = df.assign(**ids)[[*ids, *df.columns]]
            if include_stale:
                df = df.assign(stale=stale)
            frames.append(df)
        if n_stale:
            warnings.warn(f"{n_stale} stored run(s) under {self.root} were made by another version of rmed_core "
                          f"and were left out; pass include_stale=True to see them (column 'stale'), or rerun.",
                          StaleResultsWarning, stacklevel=3)
        if not frames:
            return pd.DataFrame(columns=[*ID_COLUMNS, "run"] + _EMPTY_COLUMNS.get(kind, []))
        return pd.concat(frames, ignore_index=True)


_EMPTY_COLUMNS = {"loss": ["step", "loss", "diverged"],
                  "rmed": ["step", "layer", "numel", "r_med", "method", "lower", "upper"],
                  "probe": ["step", "loss"], "eig": ["step", "rank", "eigenvalue"]}


def _match(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, (list, tuple, set, frozenset)):
        return any(_match(value, w) for w in wanted)
    if isinstance(wanted, float) or isinstance(value, float):
        try:
            return math.isclose(float(value), float(wanted), rel_tol=1e-12)
        except (TypeError, ValueError):
            return False
    return value == wanted


def load_results(kind: str, *, root: str | Path | None = None, include_stale: bool = False,
                 **filters: Any) -> pd.DataFrame:
    """All finished runs' table ``kind`` as one tidy DataFrame.

    Args:
        kind: ``"loss"`` (``step, loss, diverged``: the mini-batch training loss before each
            update), ``"rmed"`` (``step, layer, numel, r_med, method, lower, upper, ...``),
            ``"probe"`` (``step, loss`` on the fixed Hessian batch, probe time), ``"eig"``
            (``step, rank, eigenvalue``), or ``"runs"`` (one row per run: config and status).
        root: the store's folder (default ``$RMED_RESULTS``, else ``<repository>/results``).
        include_stale: also return runs made by other code versions (with a ``stale`` column).
            Otherwise they are left out with a :class:`StaleResultsWarning`.
        **filters: config fields to match, a value or a list of values (``opt=["adam", "sgdm"]``).

    Every row carries ``task, scale, opt, lr, seed, run`` first.
    """
    return ResultStore(root).load(kind, include_stale=include_stale, **filters)
