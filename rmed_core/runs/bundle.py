"""Results bundles: a sweep's tidy tables, committed with their provenance, and the check that the
current code still reproduces them.

A study that takes hours on a 2-core CPU is computed once by ``rmed sweep`` into the result store
(:mod:`rmed_core.runs.store`) and exported as a *bundle*: a folder ``bundles/<name>/`` of small CSV
tables and one ``provenance.json``. The book reads bundles, never retrains them.

Layout::

    bundles/<name>/
        runs.csv          one row per run: its configuration (task, scale, opt, lr, seed, steps,
                          sizes of the model), wall time, device, threads, code version, commit
        loss.csv          training loss per step        (run columns + step, loss, diverged)
        rmed.csv          R_med per tensor and probe     (run columns + step, layer, r_med, ...)
        probe.csv eig.csv the probes' loss, cost, top eigenvalues
        provenance.json   the specifications, the commands, versions, device, wall time

A bundle is only as good as the code that reads it: :func:`check_reproduces` trains one stored run
again from scratch, up to a step, and compares its losses and R_med with the bundle's at stated
tolerances; ``make test`` runs it on a slice of the study (``tests/test_bundle_reproduces.py``).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .._version import __version__
from ..provenance import git_commit, repo_root
from .code_version import code_version
from .files import atomic_write_text
from .store import ID_COLUMNS, ResultStore

__all__ = ["BUNDLES", "TABLES", "export_bundle", "read_bundle", "bundle_provenance", "bundle_names",
           "check_reproduces", "ReproductionError", "find_run", "bundle_configs"]

#: Where results bundles live (committed with the code); ``$RMED_BUNDLES`` points elsewhere.
BUNDLES = Path(os.environ.get("RMED_BUNDLES") or repo_root() / "bundles")
#: The tables of a bundle.
TABLES = ("runs", "loss", "rmed", "probe", "eig")
#: Model sizes copied into ``runs.csv`` from the task's scale.
_SIZES = ("d_model", "n_layers", "n_heads", "seq_len", "vocab_size", "width")


class ReproductionError(AssertionError):
    """The current code does not reproduce a bundle's numbers (the sweep must be run again)."""


def _sizes(task: str, scale: str) -> dict[str, Any]:
    """The model and data sizes of ``task`` at ``scale`` (what a reader needs to know of a run)."""
    from ..tasks import get_task

    t = get_task(task)
    spec = t.spec(scale)
    out: dict[str, Any] = {k: v for k, v in spec.model.items() if k in _SIZES}
    out["seq_len"] = spec.data.get("seq_len")
    data = t.data(scale)
    out["vocab_size"] = getattr(data, "vocab_size", None)
    return out


def _runs_by_config(store: ResultStore) -> dict[str, tuple[Path, bool]]:
    """Every finished run of ``store`` by its configuration (canonical JSON): the one made by the
    current code if there is one, else the newest made by another code version (``stale``)."""
    found: dict[str, list[tuple[Path, bool]]] = {}
    for d, stale in store.finished_runs():
        try:
            config = json.loads((d / "config.json").read_text())
        except (OSError, ValueError):
            continue
        found.setdefault(json.dumps(config, sort_keys=True), []).append((d, stale))
    return {k: min(v, key=lambda x: (x[1], -(x[0] / "COMPLETE").stat().st_mtime)) for k, v in found.items()}


def export_bundle(name: str, specs: Sequence[str | Path], *, store: str | Path | None = None,
                  root: str | Path | None = None, command: str = "", partial: bool = False) -> Path:
    """Write bundle ``name`` from every run point of ``specs`` found in the store.

    Every point must be finished in the store (raises ``ValueError`` listing those that are not),
    unless ``partial``: then the finished points are exported, with the runs an earlier export of
    the same bundle held that the store lacks (a study committed in parts), and the missing ones are
    listed in ``provenance.json`` (``missing``), so that a reader sees what the study lacks. A run made by an older code version is taken when no current one
    exists, and its code version is recorded in ``runs.csv`` (``stale`` column) -- the
    reproduction check (:func:`check_reproduces`) is what says whether the current code agrees.
    """
    from .sweep_spec import load_spec

    st = ResultStore(store)
    commit = git_commit()  # before the bundle's own files change the tree
    rows: dict[str, list[pd.DataFrame]] = {k: [] for k in TABLES}
    stored = _runs_by_config(st)
    missing, spec_names = [], []
    earlier = _earlier_runs(name, root) if partial else {}
    for spec in specs:
        sweep = load_spec(spec)
        if sweep.kind != "runs":
            raise ValueError(f"specs: {spec} is a notebook sweep; a bundle holds training runs")
        spec_names.append(str(Path(spec)))
        for point in sweep.points:
            key = point.config.key_dict()
            hit = stored.get(json.dumps(key, sort_keys=True))
            if hit is None:
                kept = earlier.get(json.dumps(key, sort_keys=True))
                if kept is None:
                    missing.append(point.label)
                else:  # computed for an earlier part of this bundle: its rows are carried over
                    for kind, df in kept.items():
                        rows[kind].append(df)
                continue
            d, stale = hit
            run = st.read_run(d)
            prov = run["provenance"]
            ids = {**{k: key.get(k) for k in ID_COLUMNS}, "run": d.name}
            rows["runs"].append(pd.DataFrame([{
                **ids, "sweep": sweep.name, "steps": key["steps"], "batch_size": key["batch_size"],
                **_sizes(key["task"], key["scale"]), "hessian_batch": key["hessian_batch"],
                "probe_method": key["probe_method"],
                "probe_steps": " ".join(map(str, key["probe_steps"])), "status": prov.get("status"),
                "wall_time_s": prov.get("wall_time_s"), "probe_time_s": prov.get("probe_time_s"),
                "device": prov.get("device"), "threads": prov.get("threads"),
                "code_version": prov.get("code_version"), "git_commit": prov.get("git_commit"), "stale": stale,
                "config": json.dumps(key, sort_keys=True)}]))
            for kind in TABLES[1:]:
                df = run[kind]
                if not df.empty:
                    rows[kind].append(df.assign(**ids)[[*ids, *df.columns]])
    if missing and not partial:
        raise ValueError(f"bundle {name!r}: {len(missing)} run(s) of {', '.join(spec_names)} are not finished in "
                         f"{st.root}: {'; '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}; run the sweep first")
    out = (Path(root) if root is not None else BUNDLES) / name
    out.mkdir(parents=True, exist_ok=True)
    for kind, frames in rows.items():
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*ID_COLUMNS, "run"])
        if "index" in df.columns:  # the trainer's column: the tensor's position among the parameters
            df = df.rename(columns={"index": "layer_index"})
        atomic_write_text(out / f"{kind}.csv", df.to_csv(index=False, float_format="%.7g"))
    runs = (pd.concat(rows["runs"], ignore_index=True) if rows["runs"]
            else pd.DataFrame(columns=["code_version", "device", "wall_time_s"]))

    prov = {
        "bundle": name, "specs": spec_names, "command": command,
        "written_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "git_commit": commit, "code_version_now": code_version(),
        "code_versions_of_runs": sorted(runs.code_version.dropna().unique().tolist()),
        "rmed_core": __version__, "torch": torch.__version__, "numpy": np.__version__, "pandas": pd.__version__,
        "python": platform.python_version(), "devices": sorted(runs.device.dropna().astype(str).unique().tolist()),
        "runs": int(len(runs)), "wall_time_s_total": round(float(runs.wall_time_s.fillna(0).sum()), 1),
        "missing": missing,
    }
    atomic_write_text(out / "provenance.json", json.dumps(prov, indent=2, sort_keys=True) + "\n")
    return out


def _earlier_runs(name: str, root: str | Path | None) -> dict[str, dict[str, pd.DataFrame]]:
    """The runs the bundle ``name`` already holds, by their config JSON: each run's rows of every
    table (empty when there is no such bundle)."""
    folder = (Path(root) if root is not None else BUNDLES) / name
    if not (folder / "runs.csv").is_file():
        return {}
    tables = {kind: pd.read_csv(folder / f"{kind}.csv") for kind in TABLES if (folder / f"{kind}.csv").is_file()}
    out = {}
    for r in tables["runs"].itertuples():
        out[r.config] = {kind: df[df.run == r.run].rename(columns={"layer_index": "index"})
                         for kind, df in tables.items() if "run" in df}
    return out


def bundle_configs(name: str, *, root: str | Path | None = None) -> set[str]:
    """The configurations (``json.dumps(key, sort_keys=True)`` of each run's key) that bundle ``name``
    holds, whatever code version made them: a sweep run in parts skips them
    (``rmed sweep --skip-bundle NAME``)."""
    return set(read_bundle(name, "runs", root=root).config)


def find_run(config: Any, *, root: str | Path | None = None):
    """The run of ``config`` (a :class:`~rmed_core.runs.config.TrainConfig`) as a bundle holds it -- the
    same configuration, whatever code version made it -- as a
    :class:`~rmed_core.runs.config.RunResult` (``provenance["bundle"]`` names the bundle), or None."""
    from .config import RunResult

    key = json.dumps(config.key_dict(), sort_keys=True)
    for name in bundle_names(root):
        runs = read_bundle(name, "runs", root=root)
        hit = runs[runs.config == key]
        if hit.empty:
            continue
        row = hit.iloc[0]
        tables = {k: read_bundle(name, k, root=root, run=row.run).drop(columns=[*ID_COLUMNS, "run"])
                  for k in TABLES[1:]}
        prov = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()
                if k in ("status", "wall_time_s", "probe_time_s", "device", "threads", "code_version", "git_commit")}
        prov.update(bundle=name, from_bundle=True)
        return RunResult(config.resolved(), row.status, tables["loss"], tables["rmed"], tables["probe"],
                         tables["eig"], prov, None, True)
    return None


def check_reproduces(name: str, *, until: int, root: str | Path | None = None, loss_rtol: float = 1e-3,
                     rmed_rtol: float = 0.05, progress: bool = False, **run: Any) -> dict[str, float]:
    """Train bundle ``name``'s run named by ``run`` (columns of its ``runs`` table, e.g.
    ``sweep="study", opt="adam", seed=0``: exactly one run) again from scratch up to step ``until`` and
    compare with the bundle: the training loss at every step (relative tolerance ``loss_rtol``) and
    every defined R_med at every probe ``<= until`` (``rmed_rtol``; an undefined R_med must stay
    undefined). Raises :class:`ReproductionError` saying what moved and to rerun the sweep;
    returns the largest relative differences.

    The run is retrained with the thread count it was made with. Float32 training on another
    machine follows a slightly different path; the
    tolerances are this project's choice, wide enough for that and far narrower than any effect the
    book reads (the ratios it tests are between 1.4 and 3.5). On that path the sampled estimate
    (:mod:`rmed_core.hessian.sampled`) is a discontinuous function of the weights: which entries
    its proxies nominate for the maximum can change, moving one tensor's R_med by more than the
    drift (on the machine that made the study bundle the slice reproduces to 4e-7; on another CPU
    every tensor computed whole agreed within 4e-4 and the sampled ones within 3e-5 in the median,
    but the two attention keys' R_med moved by 7% and 10%, inside their intervals). So tensors
    computed whole must agree within ``rmed_rtol``
    each, and sampled tensors within ``rmed_rtol`` in the median over them, each inside its
    stored interval (the estimate's stated uncertainty).
    """
    from .config import TrainConfig
    from .trainer import train

    runs = read_bundle(name, "runs", root=root, **run)
    if len(runs) != 1:
        raise ValueError(f"bundle {name!r} holds {len(runs)} runs with {run}; name exactly one")
    key = json.loads(runs.config.iloc[0])
    if not (isinstance(until, int) and 0 < until <= key["steps"]):
        raise ValueError(f"until={until!r}: expected an integer in 1..{key['steps']}")
    cfg = TrainConfig.from_dict(key)
    # a rate schedule is a function of the run's length: such a run is trained at its own length and
    # stopped after `until` updates (only its losses are then compared), any other is trained to `until`
    scheduled = cfg.schedule != "constant" and until < cfg.steps
    if scheduled and any(s <= until for s in cfg.probe_steps):
        raise ValueError(f"until={until}: run {runs.run.iloc[0]} follows the {cfg.schedule!r} schedule, whose rates "
                         f"depend on its {cfg.steps} steps; its probes are checked only with until={cfg.steps} or "
                         f"with until below its first probe ({min(cfg.probe_steps)})")
    if scheduled:
        cfg = dataclasses.replace(cfg, checkpoint_every=0)
    else:
        cfg = dataclasses.replace(cfg, steps=until, probe_steps=tuple(s for s in cfg.probe_steps if s <= until),
                                  checkpoint_every=0)
    import tempfile

    seen: dict[int, float] = {}

    def stop_at_until(step: int, loss: float) -> None:
        seen[step] = loss
        if len(seen) >= until:
            raise _Stopped

    threads = torch.get_num_threads()
    recorded = runs.threads.iloc[0]
    try:  # the run's own thread count: float32 sums, and so the trajectory, depend on it
        if recorded == recorded and recorded:
            torch.set_num_threads(int(recorded))
        with tempfile.TemporaryDirectory() as tmp:
            try:
                res = train(cfg, ResultStore(tmp), progress=progress, callback=stop_at_until if scheduled else None)
            except _Stopped:
                res = None
    finally:
        torch.set_num_threads(threads)
    run_id = runs.run.iloc[0]
    old_loss = read_bundle(name, "loss", root=root, run=run_id)
    old_loss = old_loss[old_loss.step < until].set_index("step").loss
    seen_loss = pd.Series(seen, dtype=float) if res is None else res.loss.set_index("step").loss
    new_loss = seen_loss.reindex(old_loss.index)
    loss_diff = float(np.nanmax(np.abs(new_loss / old_loss - 1))) if len(old_loss) else 0.0
    old = read_bundle(name, "rmed", root=root, run=run_id)
    # stopped inside a scheduled run, or a run without probes: the losses only
    probed = res is not None and not old.empty
    rel, sampled, flips, outside = pd.Series(dtype=float), pd.Series(dtype=bool), 0, []
    if probed:
        old = old[old.step.isin(cfg.probe_steps)].set_index(["step", "layer"])
        new = res.rmed.set_index(["step", "layer"]).reindex(old.index)
        both = old.r_med.notna() & new.r_med.notna()
        flips = int((old.r_med.notna() != new.r_med.notna()).sum())
        rel = (new.r_med[both] / old.r_med[both] - 1).abs()
        # a tensor the sampled estimate samples (its stored interval has width) vs one it computed whole
        sampled = ((old.method == "sampled") & (old.lower < old.upper))[both] if "method" in old else rel < 0
        outside = [k for k in rel[sampled].index
                   if not (old.lower[k] * (1 - 1e-9) <= new.r_med[k] <= old.upper[k] * (1 + 1e-9))]
    rmed_diff = float(rel.max()) if len(rel) else 0.0
    whole_diff = float(rel[~sampled].max()) if (~sampled).any() else 0.0
    sampled_median = float(rel[sampled].median()) if sampled.any() else 0.0
    out = dict(loss_max_rel=loss_diff, rmed_max_rel=rmed_diff, rmed_whole_max_rel=whole_diff,
               rmed_sampled_median_rel=sampled_median, undefined_flips=flips, steps=until,
               probes=len(cfg.probe_steps) if probed else 0, tensors=int(len(rel)), sampled_tensors=int(sampled.sum()))
    bad = []
    if not math.isfinite(loss_diff) or loss_diff > loss_rtol:
        bad.append(f"training loss differs by up to {loss_diff:.2e} (tolerance {loss_rtol:g})")
    if whole_diff > rmed_rtol:
        worst = rel[~sampled].idxmax()
        bad.append(f"R_med of a tensor computed whole differs by up to {whole_diff:.2e} (tolerance {rmed_rtol:g}; "
                   f"worst {worst})")
    if sampled_median > rmed_rtol:
        bad.append(f"R_med of the sampled tensors differs by {sampled_median:.2e} in the median (tolerance "
                   f"{rmed_rtol:g})")
    if outside:
        bad.append(f"R_med of {len(outside)} sampled tensors left the stored interval (first: {outside[0]})")
    if flips:
        bad.append(f"{flips} R_med changed between defined and undefined")
    if bad:
        raise ReproductionError(f"bundle {name!r}, run {run} up to step {until}: the current code does not "
                                f"reproduce the stored numbers: {'; '.join(bad)}. If the change is intended, rerun "
                                f"the sweep ({'; '.join(bundle_provenance(name, root=root)['specs'])}) and export the "
                                f"bundle again.")
    if runs.stale.iloc[0]:
        warnings.warn(f"bundle {name!r}: run {runs.run.iloc[0]} was made by an older code version; the current code reproduces it "
                      f"within tolerance", stacklevel=2)
    return out


class _Stopped(Exception):
    """Raised by :func:`check_reproduces`'s callback to stop a scheduled run after ``until`` updates."""


# -- reading ---------------------------------------------------------------------------------------
def bundle_names(root: str | Path | None = None) -> list[str]:
    """The bundles under ``root`` (default :data:`BUNDLES`)."""
    root = Path(root) if root is not None else BUNDLES
    return sorted(p.parent.name for p in root.glob("*/provenance.json"))


def _folder(name: str, root: str | Path | None) -> Path:
    root = Path(root) if root is not None else BUNDLES
    d = root / name
    if not (d / "provenance.json").is_file():
        have = bundle_names(root)
        raise ValueError(f"bundle={name!r}: no such bundle under {root} (have: {', '.join(have) or 'none'}); "
                         f"it is made by `rmed bundle {name} SPEC...` after `rmed sweep SPEC`")
    return d


def read_bundle(name: str, kind: str, *, root: str | Path | None = None, **filters: Any) -> pd.DataFrame:
    """Table ``kind`` (one of :data:`TABLES`) of bundle ``name``, rows matching ``filters``
    (``opt="adam"``, ``seed=[0, 1]``), with the store's run columns first."""
    if kind not in TABLES:
        raise ValueError(f"kind={kind!r} is not a bundle table; use one of {', '.join(TABLES)}")
    d = _folder(name, root)
    df = pd.read_csv(d / f"{kind}.csv", keep_default_na=False, na_values=["", "NaN", "nan"])
    if "undefined" in df.columns:
        df["undefined"] = df["undefined"].fillna("")
    for k, v in filters.items():
        if k not in df.columns:
            raise ValueError(f"{k}={v!r}: bundle table {kind!r} has no column {k!r}")
        want = v if isinstance(v, (list, tuple, set)) else [v]
        df = df[df[k].isin(list(want))]
    return df.reset_index(drop=True)


def bundle_provenance(name: str, *, root: str | Path | None = None) -> dict[str, Any]:
    """The ``provenance.json`` record of bundle ``name``."""
    return json.loads((_folder(name, root) / "provenance.json").read_text())
