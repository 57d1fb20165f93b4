"""The result store: one folder per run, keyed by the run's configuration and the code version.

Layout (``root`` is ``$RMED_RESULTS``, else ``<repository>/results``)::

    root/<task>/<scale>/<opt>-s<seed>-<key>/
        config.json       the run configuration (every field that changes the numbers)
        provenance.json   code version, git commit, versions, device, wall time, status
        loss.csv rmed.csv probe.csv eig.csv    tidy tables
        checkpoint.pt     only while the run is unfinished
        COMPLETE          written last: the run is visible only once it exists

``key`` is the first 16 hex digits of SHA-256 over the canonical JSON of the configuration and
:func:`code_version` (a SHA-256 over every ``rmed_core/**/*.py`` file but the few listed in
:data:`NON_COMPUTING`). Every file is written to a temporary name in the same folder and moved into
place with ``os.replace`` (atomic on POSIX), and ``COMPLETE`` (which records the SHA-256 of every
file's content) is written last, so a run killed half way is never read as finished.

The store proves what it serves:

* **Corruption.** Every read checks every file against the hashes in ``COMPLETE``. A run that
  fails (a file edited, truncated or missing, an empty or garbled ``COMPLETE``) raises
  :class:`CorruptRunError` naming the file and what to do from :meth:`ResultStore.get`; in
  :func:`load_results` it is left out with a :class:`CorruptRunWarning` that names and counts it.
* **One writer per run.** :meth:`ResultStore.writing` holds an exclusive lock file
  (``root/.locks/``, released by the kernel if the process dies) while a run is computed: a second
  process waits, then reuses the finished run.

Stale results: when the code changes, old runs keep their folders but no longer match any key.
:func:`load_results` leaves them out and *warns* (:class:`StaleResultsWarning`) with their number;
``include_stale=True`` returns them too, with ``stale=True`` in a ``stale`` column. Nothing stale
is ever returned silently.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import shutil
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from ..provenance import repo_root
from .code_version import code_version
from .files import atomic_write_bytes, atomic_write_text, sha256_bytes

__all__ = ["ResultStore", "config_key", "StaleResultsWarning", "KINDS", "ID_COLUMNS", "MARKER", "CorruptRunError",
           "CorruptRunWarning"]

KINDS = ("loss", "rmed", "probe", "eig", "runs")
MARKER = "COMPLETE"
ID_COLUMNS = ["task", "scale", "opt", "lr", "seed"]


class StaleResultsWarning(UserWarning):
    """Some stored runs were made by another version of the code and were left out."""


class CorruptRunWarning(UserWarning):
    """Some stored runs failed their content check and were left out."""


class CorruptRunError(OSError):
    """A stored run (or its checkpoint) is damaged: the message names the file and what to do."""


def _canonical(config: dict[str, Any]) -> str:
    """Sorted-key compact JSON (so the key does not depend on field order)."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def config_key(config: dict[str, Any], version: str | None = None) -> str:
    """The run key: SHA-256 (16 hex digits) of the canonical JSON of ``config`` plus the code version."""
    text = _canonical(config) + "|" + (version or code_version())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _as_dict(config: Any) -> dict[str, Any]:
    if hasattr(config, "key_dict"):
        return config.key_dict()
    if isinstance(config, dict):
        return dict(config)
    raise TypeError(f"config must be a dict or have key_dict(); got {type(config).__name__}")


class ResultStore:
    """Runs on disk under ``root`` (default ``$RMED_RESULTS``, else ``<repository>/results``).

    A *config* is a dict of the fields that determine a run's numbers (or an object with
    ``key_dict()``, e.g. a resolved :class:`~rmed_core.runs.config.TrainConfig`) with at least
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
        """Whether a finished run of ``config`` made by the current code is stored (its ``COMPLETE``
        marker exists; :meth:`get` and :meth:`status` also check its content)."""
        return (self.run_dir(config) / MARKER).is_file()

    def get(self, config: Any) -> dict[str, Any]:
        """The finished run of ``config``: ``{"config", "provenance", "loss", "rmed", "probe", "eig"}``
        (tables as DataFrames). Raises ``KeyError`` when it is not stored and
        :class:`CorruptRunError` (naming the file) when its content fails the check."""
        d = self.run_dir(config)
        if not (d / MARKER).is_file():
            raise KeyError(f"no finished run for this config under the current code version (looked in {d})")
        return self.read_run(d)

    def status(self, config: Any) -> tuple[str, str | None]:
        """``("stored", None)``, ``("missing", None)`` or ``("corrupt", why)`` for ``config``'s run
        (the content check of :meth:`get`, without parsing the tables)."""
        d = self.run_dir(config)
        if not (d / MARKER).is_file():
            return "missing", None
        try:
            self.verify(d)
        except CorruptRunError as e:
            return "corrupt", str(e)
        return "stored", None

    def discard(self, config: Any) -> Path:
        """Delete ``config``'s run folder (a corrupt run, to compute it again). Call it inside
        :meth:`writing` so that no other process is writing the run meanwhile."""
        d = self.run_dir(config)
        if d.is_dir():
            shutil.rmtree(d)
        return d

    @contextlib.contextmanager
    def writing(self, config: Any, poll_s: float = 0.5) -> Iterator[Path]:
        """Hold the run's exclusive lock (``root/.locks/<task>__<scale>__<run>.run.lock``) while it is
        computed and written: one writer per run. A second process blocks here until the first is
        done (then finds the run stored and reuses it); the kernel releases the lock of a process
        that dies. Yields the run folder."""
        from filelock import FileLock

        d = self.run_dir(config)
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with FileLock(str(locks / ("__".join(d.relative_to(self.root).parts) + ".run.lock")), poll_interval=poll_s):
            yield d

    # -- writing ---------------------------------------------------------------------------------
    def write_run(self, config: Any, tables: dict[str, pd.DataFrame], provenance: dict[str, Any],
                  extra_files: dict[str, bytes] | None = None) -> Path:
        """Write a finished run: ``config.json``, ``provenance.json``, one CSV per table and any
        ``extra_files`` (e.g. ``final_model.pt``), then the ``COMPLETE`` marker (with each file's
        SHA-256 and size) — each file atomically, the marker last. To compute and write a run
        while other processes may too, hold :meth:`writing`."""
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
        marker = {"code_version": code_version(), "files": {n: {"sha256": sha256_bytes(b), "bytes": len(b)}
                                                            for n, b in files.items()}}
        atomic_write_text(d / MARKER, json.dumps(marker, indent=1, sort_keys=True))
        return d

    # -- reading ---------------------------------------------------------------------------------
    @staticmethod
    def marker(d: Path) -> dict[str, Any]:
        """The parsed ``COMPLETE`` record of run folder ``d``; :class:`CorruptRunError` naming the
        file when it is empty, garbled or of an unknown layout."""
        f = d / MARKER
        try:
            m = json.loads(f.read_text())
            if not (isinstance(m, dict) and isinstance(m.get("files"), dict) and m["files"]):
                raise ValueError("no 'files' record")
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise CorruptRunError(f"{f}: the completion record is empty or garbled ({type(e).__name__}: {e}); the run "
                                  f"cannot be trusted: delete {d} (or run the sweep with --recompute-corrupt) to "
                                  "compute it again") from e
        return m

    def verify(self, d: Path) -> dict[str, Any]:
        """Check every file of run folder ``d`` against the SHA-256 in its ``COMPLETE`` record
        (records written before hashes: against the size). Returns the record; raises
        :class:`CorruptRunError` naming the first file that fails and what to do."""
        m = self.marker(d)
        for name, want in m["files"].items():
            f = d / name
            advice = (f"the run folder is corrupt; delete {d} (or run the sweep with --recompute-corrupt) to "
                      "compute it again")
            if not f.is_file():
                raise CorruptRunError(f"{f}: missing, but the COMPLETE record lists it: {advice}")
            if isinstance(want, dict):
                got = sha256_bytes(f.read_bytes())
                if got != want.get("sha256"):
                    raise CorruptRunError(f"{f}: its content does not match the SHA-256 in COMPLETE ({got[:12]}... "
                                          f"on disk, {str(want.get('sha256'))[:12]}... recorded): {advice}")
            elif f.stat().st_size != want:
                raise CorruptRunError(f"{f}: {f.stat().st_size} bytes on disk, the COMPLETE record says {want}: "
                                      f"{advice}")
        return m

    def read_run(self, d: Path, *, verified: bool = False) -> dict[str, Any]:
        if not verified:
            self.verify(d)
        try:
            out: dict[str, Any] = {"dir": d, "config": json.loads((d / "config.json").read_text()),
                                   "provenance": json.loads((d / "provenance.json").read_text())}
            for kind in KINDS[:-1]:
                f = d / f"{kind}.csv"
                out[kind] = pd.read_csv(f) if f.is_file() and f.stat().st_size > 1 else pd.DataFrame()
        except (ValueError, OSError, pd.errors.ParserError) as e:  # hashes match, yet unreadable
            raise CorruptRunError(f"{d}: a file matches its hash but cannot be read ({type(e).__name__}: {e}); "
                                  f"delete {d} to compute the run again") from e
        return out

    def finished_runs(self) -> Iterable[tuple[Path, bool]]:
        """``(folder, stale)`` of every finished run under ``root``; ``stale`` when it was made by
        another code version (a run whose ``COMPLETE`` record cannot be read is yielded as not
        stale: reading it reports the damage)."""
        if not self.root.is_dir():
            return
        current = code_version()
        for marker in sorted(self.root.glob(f"*/*/*/{MARKER}")):
            try:
                v = self.marker(marker.parent).get("code_version")
            except CorruptRunError:
                v = current
            yield marker.parent, v != current

    def load(self, kind: str, *, include_stale: bool = False, **filters: Any) -> pd.DataFrame:
        """See :func:`load_results`."""
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} is not known; use one of {KINDS}")
        frames, n_stale, corrupt = [], 0, []
        for d, stale in self.finished_runs():
            if stale and not include_stale:
                n_stale += 1
                continue
            try:  # every run is checked, also those the filters leave out
                self.verify(d)
                config = json.loads((d / "config.json").read_text())
                if not all(_match(config.get(k), v) for k, v in filters.items()):
                    continue
                run = self.read_run(d, verified=True)
            except (CorruptRunError, ValueError) as e:
                corrupt.append(str(e) if isinstance(e, CorruptRunError) else f"{d / 'config.json'}: {e}")
                continue
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
                if kind == "rmed":  # the trainer's column "index" is the tensor's position in the model
                    df = df.rename(columns={"index": "layer_index"})
                df = df.assign(**ids)[[*ids, *df.columns]]
            if include_stale:
                df = df.assign(stale=stale)
            frames.append(df)
        if corrupt:
            warnings.warn(f"{len(corrupt)} stored run(s) under {self.root} are corrupt and were left out:\n  "
                          + "\n  ".join(corrupt), CorruptRunWarning, stacklevel=3)
        if n_stale:
            warnings.warn(f"{n_stale} stored run(s) under {self.root} were made by another version of rmed_core "
                          f"and were left out; pass include_stale=True to see them (column 'stale'), or rerun.",
                          StaleResultsWarning, stacklevel=3)
        if not frames:
            return pd.DataFrame(columns=[*ID_COLUMNS, "run"] + _EMPTY_COLUMNS.get(kind, []))
        return pd.concat(frames, ignore_index=True)


_EMPTY_COLUMNS = {"loss": ["step", "loss", "diverged"],
                  "rmed": ["step", "layer_index", "layer", "numel", "r_med", "method", "lower", "upper"],
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


