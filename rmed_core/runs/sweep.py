"""Run a sweep (a grid of training runs or notebook executions) on a Dask cluster, resumably.

``run_sweep(load_spec("sweeps/ci.yaml"))`` starts a :class:`distributed.LocalCluster` (one
single-threaded worker process per core, or ``workers``) or connects to ``scheduler``
(``"tcp://HOST:PORT"``), submits every grid point that the store does not already hold, shows a
progress bar (done / running / failed / skipped) and returns a :class:`SweepReport`.

Guarantees:

* **Nothing is computed twice.** A point whose result is in the store is skipped before
  submission. Points are deduplicated by store key (:mod:`rmed_core.runs.sweep_spec`), and the Dask
  task key *is* the store key, so the scheduler never holds two tasks for one run (also across two
  clients of one cluster). On the worker, the run's exclusive lock
  (:meth:`rmed_core.runs.store.ResultStore.writing`, taken by the trainer; for a notebook, a ``flock``
  on ``<store>/.locks/<key>.lock``) serialises any two processes that still reach the same point
  (two clusters on one store, a worker declared lost that is still running): the second waits,
  then loads the stored result.
* **Resumable.** A lost worker's task is resubmitted by the scheduler (up to ``retries`` times on
  a local cluster: the scheduler's ``allowed-failures``) and the trainer resumes from the run's
  last checkpoint; the store writes every file atomically with its ``COMPLETE`` marker last. A
  sweep interrupted (Ctrl-C, killed) and started again runs only what is missing.
* **Failures are isolated.** A run that raises is recorded as ``failed`` with its error (the
  report, and ``<store>/sweeps/<name>-failures.csv``); the others go on. A diverged run is a
  result (``diverged``), not a failure.
* **Corrupt runs are failures.** A stored run whose files fail the content check of its
  ``COMPLETE`` record (:meth:`ResultStore.status`) is reported ``failed`` with the damaged file
  named, and is not resubmitted; ``recompute_corrupt=True`` (``rmed sweep --recompute-corrupt``)
  deletes it and computes it again, under the run's lock.
* **Devices.** ``device: auto`` is resolved on each worker (CUDA when the worker has it).
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import io
import json
import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
from tqdm.auto import tqdm

from ..provenance import repo_root
from .store import ResultStore
from .files import atomic_write_text
from .sweep_spec import NotebookPoint, RunPoint, Sweep

__all__ = ["SweepReport", "plan", "is_stored", "point_status", "run_point", "run_sweep", "start_client", "OUTCOMES"]

_STARTED = "rmed-sweep-started"  # worker event topic: a point began to compute
OUTCOMES = ("finished", "diverged", "skipped", "failed", "interrupted")
_COLUMNS = ["key", "label", "outcome", "error", "note", "device", "worker", "wall_s"]


@dataclass
class SweepReport:
    """What a sweep did: one row per grid point (``key, label, outcome, error, note, device,
    worker, wall_s``); ``outcome`` is one of :data:`OUTCOMES`."""

    sweep: Sweep
    table: pd.DataFrame
    failures_file: Path | None = None

    @property
    def counts(self) -> dict[str, int]:
        return {o: int((self.table["outcome"] == o).sum()) for o in OUTCOMES}

    @property
    def failures(self) -> pd.DataFrame:
        """The failed points and why (``label, error``)."""
        return self.table.loc[self.table["outcome"] == "failed", ["label", "error"]].reset_index(drop=True)

    @property
    def ok(self) -> bool:
        """No point failed or was left unfinished."""
        return not self.table["outcome"].isin(["failed", "interrupted"]).any()

    def summary(self) -> str:
        c = self.counts
        text = f"{self.sweep.name}: " + ", ".join(f"{v} {k}" for k, v in c.items() if v or k in ("finished", "failed"))
        if c["failed"]:
            with pd.option_context("display.max_colwidth", 120, "display.width", 200):
                text += "\n\nFailed:\n" + self.failures.to_string(index=False)
            if self.failures_file:
                text += f"\n\n(tracebacks in {self.failures_file})"
        return text


def point_status(point: RunPoint | NotebookPoint, store: ResultStore) -> tuple[str, str | None]:
    """``("stored" | "missing" | "corrupt", why)``: a finished run of the current code whose files
    pass their content check, none, or one that fails it (``why`` names the file); for a
    notebook point, whether the executed notebook exists."""
    if isinstance(point, RunPoint):
        return store.status(point.config.key_dict())
    return ("stored" if (store.root / point.key).is_file() else "missing"), None


def is_stored(point: RunPoint | NotebookPoint, store: ResultStore) -> bool:
    """Whether the store already holds the point's result, intact (:func:`point_status`)."""
    return point_status(point, store)[0] == "stored"


def plan(sweep: Sweep, store: ResultStore | None = None) -> pd.DataFrame:
    """The grid as a table (``label, key, stored, corrupt``): what a sweep would run, what it would
    skip, and which stored runs fail their content check (``corrupt``: reported as failed, unless
    recomputed on request)."""
    store = store if store is not None else ResultStore()
    rows = []
    for p in sweep.points:
        state, _ = point_status(p, store)
        rows.append(dict(label=p.label, key=p.key, stored=state == "stored", corrupt=state == "corrupt"))
    return pd.DataFrame(rows, columns=["label", "key", "stored", "corrupt"])


# -- on the worker ---------------------------------------------------------------------------------
@contextlib.contextmanager
def _point_lock(root: Path, key: str) -> Iterator[None]:
    """An exclusive ``flock`` held while a point computes; the kernel drops it when the process dies."""
    locks = root / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / (key.replace("/", "__") + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _train_point(point: RunPoint, root: Path, recompute_corrupt: bool = False) -> dict[str, Any]:
    from .trainer import train

    cfg = dataclasses.replace(point.config, device=point.device)  # validated here, on the worker's hardware
    r = train(cfg, ResultStore(root), progress=False, recompute_corrupt=recompute_corrupt)
    return {"outcome": "skipped" if r.from_store else r.status, "note": r.provenance.get("reason"),
            "device": r.provenance.get("device")}


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _notebook_point(point: NotebookPoint, root: Path) -> dict[str, Any]:
    """Execute the notebook with papermill into a temporary file beside its final name, then move
    it into place (``os.replace``): a notebook is present only once it ran to the end. A failed
    execution is kept as ``*.failed.ipynb`` to read the error in."""
    import papermill

    from ..book.papermill_io import read_notebook

    out = root / point.key
    if out.is_file():
        return {"outcome": "skipped"}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{os.getpid()}.ipynb")
    env = {"RMED_RESULTS": str(root), "RMED_NOTEBOOK_SOURCE": str(point.notebook)}
    if point.device != "auto":
        env["RMED_DEVICE"] = point.device
    try:
        with _environ(**env):  # the kernel inherits them: its runs go to this store, on this device
            papermill.execute_notebook(read_notebook(point.notebook), str(tmp), parameters=point.parameters,
                                       kernel_name="python3", language="python", cwd=str(repo_root()),
                                       progress_bar=False, log_output=False)
    except BaseException:
        if tmp.is_file():
            os.replace(tmp, out.with_suffix(".failed.ipynb"))
        raise
    os.replace(tmp, out)
    return {"outcome": "finished"}


def run_point(point: RunPoint | NotebookPoint, root: str | Path, recompute_corrupt: bool = False) -> dict[str, Any]:
    """Compute one grid point into the store at ``root`` (this is the Dask task). Never raises for
    a failing run: returns ``{"outcome": "failed", "error", "traceback"}`` so that a deterministic
    error is not retried; only a lost worker makes the scheduler resubmit the task.
    ``recompute_corrupt``: a stored run that fails its content check is computed again."""
    root = Path(root)
    t0 = time.perf_counter()
    out: dict[str, Any] = {"worker": f"{socket.gethostname()}:{os.getpid()}"}
    with contextlib.suppress(ValueError):  # ValueError: not on a Dask worker
        from distributed import get_worker
        get_worker().log_event(_STARTED, {"key": point.key})
    try:
        if isinstance(point, RunPoint):  # the trainer holds the run's own lock (ResultStore.writing)
            out.update(_train_point(point, root, recompute_corrupt))
        else:
            with _point_lock(root, point.key):
                out.update(_notebook_point(point, root))
    except Exception as e:  # noqa: BLE001 - every error of one point is that point's failure
        out.update(outcome="failed", error=f"{type(e).__name__}: {e}".strip(), traceback=traceback.format_exc())
    out["wall_s"] = round(time.perf_counter() - t0, 2)
    return out


# -- on the client ---------------------------------------------------------------------------------
def start_client(workers: int | None = None, scheduler: str | None = None, retries: int = 3):
    """A :class:`distributed.Client` of the cluster at ``scheduler``, or of a new
    :class:`distributed.LocalCluster` with ``workers`` single-threaded worker processes (default:
    one per core). Returns ``(client, cluster)``; ``cluster`` is ``None`` for an existing one."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    cores = os.cpu_count() or 1
    n = workers or cores
    # Each worker runs one point at a time with the machine's cores shared out among the workers
    # (Dask's nanny would give torch one thread: OMP_NUM_THREADS=1). CPU results are bit-identical
    # only at equal thread counts; each run records its count in provenance.json ("threads").
    threads = str(max(1, cores // n))
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    # A task whose worker died is resubmitted `retries` times before it fails (KilledWorker).
    with dask.config.set({"distributed.scheduler.allowed-failures": retries}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None, env=env)
    return Client(cluster), cluster


def _failed_row(point: RunPoint | NotebookPoint, error: str) -> dict[str, Any]:
    return dict(key=point.key, label=point.label, outcome="failed", error=error)


def run_sweep(sweep: Sweep, store: ResultStore | None = None, *, workers: int | None = None,
              scheduler: str | None = None, client: Any = None, retries: int = 3,
              progress: bool = True, poll_s: float = 0.25, recompute_corrupt: bool = False,
              held: set[str] | None = None) -> SweepReport:
    """Run every point of ``sweep`` that ``store`` lacks, in parallel, and report on each.

    Args:
        sweep: from :func:`rmed_core.runs.sweep_spec.load_spec`.
        store: where results go (default: ``$RMED_RESULTS`` or ``<repository>/results``); the
            workers must see the same folder (a shared file system on a multi-machine cluster).
        workers: worker processes of the local cluster (default: one per core).
        scheduler: ``"tcp://HOST:PORT"`` of a running cluster to use instead.
        client: an existing :class:`distributed.Client` to use instead (kept open).
        retries: resubmissions of a task whose worker died (local cluster only).
        progress: show the tqdm bar.
        recompute_corrupt: compute again the stored runs that fail their content check (default:
            report them as ``failed``, naming the damaged file).
        held: configurations a results bundle already holds
            (:func:`~rmed_core.runs.bundle.bundle_configs`): skipped, for a study committed in parts.
    """
    store = store if store is not None else ResultStore()
    root = store.root.resolve()
    rows: list[dict[str, Any]] = []
    todo = []
    for p in sweep.points:  # checked before submitting: nothing stored is sent again
        state, why = point_status(p, store)
        if held and isinstance(p, RunPoint) and json.dumps(p.config.key_dict(), sort_keys=True) in held:
            rows.append(dict(key=p.key, label=p.label, outcome="skipped", note="in the bundle"))
        elif state == "stored":
            rows.append(dict(key=p.key, label=p.label, outcome="skipped", note="in the store"))
        elif state == "corrupt" and not recompute_corrupt:
            rows.append({**_failed_row(p, f"CorruptRunError: {why}"),
                         "note": "stored run is corrupt; rerun with --recompute-corrupt to compute it again"})
        else:
            todo.append(p)
    bar = tqdm(total=len(sweep.points), initial=len(rows), disable=not progress, unit="point",
               desc=sweep.name, dynamic_ncols=True)
    counts = {"done": 0, "running": 0, "failed": sum(r["outcome"] == "failed" for r in rows),
              "skipped": sum(r["outcome"] == "skipped" for r in rows)}
    bar.set_postfix(counts, refresh=True)
    own_client = client is None and bool(todo)
    cluster = None
    futures: dict[Any, RunPoint | NotebookPoint] = {}
    try:
        if todo:
            if own_client:
                client, cluster = start_client(workers, scheduler, retries)
            started: set[str] = set()  # filled from the workers' events (in the client's thread)
            lock = threading.Lock()

            def on_start(event: tuple[float, dict[str, str]]) -> None:
                with lock:
                    started.add(event[1]["key"])

            client.subscribe_topic(_STARTED, on_start)
            for p in todo:
                futures[client.submit(run_point, p, str(root), recompute_corrupt, key=p.key, pure=False)] = p
            while futures:
                finished = [f for f in futures if f.done()]
                for f in finished:
                    p = futures.pop(f)
                    row = _collect(f, p)
                    rows.append(row)
                    key = {"failed": "failed", "skipped": "skipped"}.get(row["outcome"], "done")
                    counts[key] += 1
                    bar.update(1)
                with lock:
                    counts["running"] = len(started & {p.key for p in futures.values()})
                bar.set_postfix(counts, refresh=bool(finished))
                if not finished:
                    time.sleep(poll_s)
    except KeyboardInterrupt:  # report what is done; the rest resumes on the next invocation
        for f, p in futures.items():
            if f.done():
                rows.append(_collect(f, p))
                continue
            f.cancel()
            rows.append(dict(key=p.key, label=p.label, outcome="interrupted",
                             note="run the sweep again to finish it (runs resume from their checkpoints)"))
        futures.clear()
    finally:
        bar.close()
        if client is not None and todo:
            with contextlib.suppress(Exception):
                client.unsubscribe_topic(_STARTED)
        if own_client and client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    order = {p.key: i for i, p in enumerate(sweep.points)}
    table = pd.DataFrame(rows, columns=_COLUMNS + ["traceback"])
    table = table.sort_values("key", key=lambda k: k.map(order)).reset_index(drop=True)
    failures_file = _write_failures(store, sweep, table)
    return SweepReport(sweep, table.drop(columns="traceback"), failures_file)


def _collect(f: Any, p: RunPoint | NotebookPoint) -> dict[str, Any]:
    if f.status == "finished":
        return dict(key=p.key, label=p.label, **f.result())
    if f.status == "error":  # not raised by run_point: a lost worker (KilledWorker) or a Dask error
        exc = f.exception()
        tb = "".join(traceback.format_exception(exc))
        return {**_failed_row(p, f"{type(exc).__name__}: {exc}"), "traceback": tb}
    return _failed_row(p, f"the task was {f.status} (scheduler or client lost?)")


def _write_failures(store: ResultStore, sweep: Sweep, table: pd.DataFrame) -> Path | None:
    """``<store>/sweeps/<name>-failures.csv`` (written atomically) when a point failed; removed
    when none did, so that the file always describes the latest invocation."""
    path = store.root / "sweeps" / f"{sweep.name}-failures.csv"
    failed = table[table["outcome"] == "failed"]
    if failed.empty:
        path.unlink(missing_ok=True)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    failed[["key", "label", "error", "worker", "traceback"]].to_csv(buf, index=False)
    atomic_write_text(path, buf.getvalue())
    return path
