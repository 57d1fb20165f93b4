"""Sweep specifications: a small YAML (or TOML) file naming a grid, turned into grid points.

A grid of training runs (each point is one :func:`rmed_core.runs.trainer.train` call into the store)::

    scale: ci                    # ci | book | paper (required)
    tasks: [ptb_lm, mnist_cnn]   # rmed_core.tasks.task_names()
    optimizers: [adam, sgdm]     # rmed_core.optim.optimizer_names()
    lrs: [tuned, 0.01]           # "tuned" (or null) = the task's tuned value; else numbers > 0;
                                 # or one list per optimizer: {adam: [0.001], sgdm: [0.1, 0.3]}
    seeds: [0, 1, 2]
    steps: 20                    # optional; default: the task's steps at this scale
    device: auto                 # optional; resolved on each worker (CUDA when it has one)
    config: {probe_every: 5}     # optional; any other TrainConfig field, the same for every point

A grid of notebook executions (each point is one papermill run, kept in ``<store>/notebooks/``)::

    scale: ci                    # injected as the notebook's `scale` parameter
    notebook: notebooks/theorem.py
    parameters: {opt: [gd, adam], seed: [0, 1]}

Every list may also be a single value. The grid is the Cartesian product of the lists, with
points that map to the same store key (e.g. ``lrs: [tuned, 0.01]`` when 0.01 is the tuned value)
kept once. :func:`load_spec` checks everything before anything is scheduled and raises
:class:`SpecError` naming the file and the key.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import math
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import yaml

from ..optim import optimizer_names
from ..provenance import repo_root
from .store import ResultStore
from .code_version import code_version
from ..tasks import SCALES, task_names
from .config import TrainConfig

__all__ = ["SpecError", "RunPoint", "NotebookPoint", "Sweep", "load_spec", "parse_spec"]

RUN_KEYS = ("tasks", "optimizers", "lrs", "seeds", "steps", "config")
NOTEBOOK_KEYS = ("notebook", "parameters")
COMMON_KEYS = ("scale", "device", "name")
KEYS = COMMON_KEYS + RUN_KEYS + NOTEBOOK_KEYS
_GRID_FIELDS = {"task", "opt", "lr", "seed", "scale", "steps", "device"}  # set by the grid, not `config`


class SpecError(ValueError):
    """A sweep specification that cannot be run; the message names the file and the key."""

    def __init__(self, path: str | Path, key: str | None, message: str):
        self.path, self.key = str(path), key
        super().__init__(f"{path}: {f'{key}: ' if key else ''}{message}")


@dataclass(frozen=True)
class RunPoint:
    """One training run of a sweep. ``config`` has ``device="auto"``: the device is ``device``,
    applied on the worker (a client without CUDA can send ``device: cuda`` runs to GPU workers)."""

    config: TrainConfig
    device: str
    key: str
    """The Dask task key: the run's store folder relative to the store root, e.g.
    ``ptb_lm/ci/adam-s0-<hash>`` (two points with the same key are the same run)."""

    @property
    def label(self) -> str:
        c = self.config
        return f"{c.task}/{c.scale} {c.opt} lr={'tuned' if c.lr is None else f'{c.lr:g}'} s{c.seed}"


@dataclass(frozen=True)
class NotebookPoint:
    """One papermill execution of ``notebook`` with ``parameters``; its executed notebook is kept
    as ``<store>/<key>`` (``key = notebooks/<stem>-<hash>.ipynb``, the hash over the notebook's
    source, the parameters and :func:`rmed_core.runs.code_version.code_version` of the whole package)."""

    notebook: Path
    parameters: dict[str, Any]
    device: str
    key: str

    @property
    def label(self) -> str:
        return f"{self.notebook.stem} " + " ".join(f"{k}={v}" for k, v in self.parameters.items())


@dataclass(frozen=True)
class Sweep:
    """A checked specification: its file, name and grid points (deduplicated by key)."""

    path: Path
    name: str
    kind: str  # "runs" | "notebook"
    points: tuple[RunPoint | NotebookPoint, ...] = field(default=())


def load_spec(path: str | Path) -> Sweep:
    """Read and check a ``.yaml``/``.yml``/``.toml`` sweep specification (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(path, None, "no such file")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            raw = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            raw = yaml.safe_load(text)
        else:
            raise SpecError(path, None, f"unknown format {path.suffix!r}; use .yaml, .yml or .toml")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as e:
        raise SpecError(path, None, f"cannot parse: {e}") from None
    return parse_spec(raw, path)


def parse_spec(raw: Any, path: str | Path = "<spec>") -> Sweep:
    """Check a parsed specification (a mapping) and expand its grid."""
    if not isinstance(raw, dict):
        raise SpecError(path, None, f"expected a mapping of keys ({', '.join(KEYS)}), got {type(raw).__name__}")
    for k in raw:
        if k not in KEYS:
            close = difflib.get_close_matches(str(k), KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; valid keys: {', '.join(KEYS)}"
            raise SpecError(path, str(k), f"unknown key{hint}")
    if "scale" not in raw:
        raise SpecError(path, "scale", f"missing; one of {', '.join(SCALES)}")
    scale = raw["scale"]
    if scale not in SCALES:
        raise SpecError(path, "scale", f"{scale!r} is not a known scale; valid scales: {', '.join(SCALES)}")
    device = raw.get("device", "auto")
    if not (isinstance(device, str) and (device in ("auto", "cpu", "cuda") or device.startswith("cuda:"))):
        raise SpecError(path, "device", f"{device!r} is not a device; use auto, cpu, cuda or cuda:N")
    name = str(raw.get("name") or Path(path).stem)
    if "notebook" in raw:
        extra = [k for k in RUN_KEYS if k in raw]
        if extra:
            raise SpecError(path, extra[0], "a notebook sweep takes its grid from `parameters`, not from run keys")
        points = _notebook_points(raw, path, scale, device)
        kind = "notebook"
    else:
        if "parameters" in raw:
            raise SpecError(path, "parameters", "only a notebook sweep has `parameters`; name the `notebook`")
        points = _run_points(raw, path, scale, device)
        kind = "runs"
    unique = tuple({p.key: p for p in reversed(points)}.values())[::-1]  # first occurrence wins, order kept
    if not unique:
        raise SpecError(path, None, "the grid is empty")
    return Sweep(Path(path), name, kind, unique)


def _as_list(path: str | Path, key: str, value: Any, default: Any = None) -> list[Any]:
    if value is None:
        if default is None:
            raise SpecError(path, key, "missing")
        value = default
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise SpecError(path, key, "is empty: the grid would have no points")
    return values


def _check_names(path: str | Path, key: str, values: list[Any], valid: list[str]) -> None:
    for v in values:
        if v not in valid:
            close = difflib.get_close_matches(str(v), valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SpecError(path, key, f"{v!r} is not known{hint}; valid: {', '.join(valid)}")


def _parse_lrs(path: str | Path, key: str, value: Any) -> list[float | None]:
    lrs: list[float | None] = []
    for lr in _as_list(path, key, value, default=["tuned"]):
        if lr is None or lr == "tuned":
            lrs.append(None)
        elif isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0:
            lrs.append(float(lr))
        else:
            raise SpecError(path, key, f"{lr!r}: a learning rate must be a positive number or 'tuned'")
    return lrs


def _run_points(raw: dict[str, Any], path: str | Path, scale: str, device: str) -> list[RunPoint]:
    tasks = _as_list(path, "tasks", raw.get("tasks"))
    _check_names(path, "tasks", tasks, task_names())
    opts = _as_list(path, "optimizers", raw.get("optimizers"))
    _check_names(path, "optimizers", opts, optimizer_names())
    raw_lrs = raw.get("lrs")
    if isinstance(raw_lrs, dict):  # one list per optimizer: {adam: [0.001, 0.003], sgdm: [0.1, 0.3]}
        _check_names(path, "lrs", list(raw_lrs), opts)
        missing = [o for o in opts if o not in raw_lrs]
        if missing:
            raise SpecError(path, "lrs", f"no learning rates for {', '.join(missing)} (a mapping needs every optimizer)")
        lrs = {o: _parse_lrs(path, f"lrs.{o}", raw_lrs[o]) for o in opts}
    else:
        lrs = dict.fromkeys(opts, _parse_lrs(path, "lrs", raw_lrs))
    seeds = _as_list(path, "seeds", raw.get("seeds"), default=[0])
    for s in seeds:
        if not (isinstance(s, int) and not isinstance(s, bool) and s >= 0):
            raise SpecError(path, "seeds", f"{s!r}: a seed must be a non-negative integer")
    steps = _as_list(path, "steps", raw.get("steps"), default=["default"])
    for s in steps:
        if s != "default" and not (isinstance(s, int) and not isinstance(s, bool) and s > 0):
            raise SpecError(path, "steps", f"{s!r}: steps must be a positive integer")
    extra = raw.get("config") or {}
    if not isinstance(extra, dict):
        raise SpecError(path, "config", "expected a mapping of TrainConfig fields")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for k in extra:
        if k in _GRID_FIELDS:
            raise SpecError(path, f"config.{k}", "is set by the grid keys (tasks, optimizers, lrs, seeds, scale, "
                                                 "steps, device), not under `config`")
        if k not in fields:
            close = difflib.get_close_matches(str(k), sorted(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SpecError(path, f"config.{k}", f"not a TrainConfig field{hint}")
    extra = {k: tuple(v) if isinstance(v, list) else v for k, v in extra.items()}
    points = []
    # seed-major: the optimizers of one seed are neighbours, so a sweep stopped part-way leaves
    # complete comparisons (both optimizers of its first seeds) rather than one optimizer's runs
    combos = [(t, o, lr, sd, n) for t in tasks for sd in seeds for n in steps for o in opts for lr in lrs[o]]
    for task, opt, lr, seed, n in combos:
        try:
            cfg = TrainConfig(task=task, opt=opt, lr=lr, seed=seed, scale=scale,
                              steps=None if n == "default" else n, device="auto", **extra)
            key_dict = cfg.key_dict()  # resolves the tuned lr: fails here, not on a worker
        except (TypeError, ValueError) as e:
            where = "lrs" if lr is None and "tuned" in str(e) else "config"
            raise SpecError(path, where, f"{task} {opt} lr={lr} seed={seed}: {e}") from None
        key = ResultStore(".").run_dir(key_dict).as_posix()  # the store's own layout, relative
        points.append(RunPoint(cfg, device, key))
    return points


def _find_notebook(path: str | Path, value: Any) -> Path:
    if not isinstance(value, str) or not value:
        raise SpecError(path, "notebook", f"{value!r}: expected the path of a .py, .md or .ipynb notebook")
    p = Path(value).expanduser()
    tried = [p] if p.is_absolute() else [Path(path).parent / p, Path.cwd() / p, repo_root() / p]
    for t in tried:
        if t.is_file():
            return t.resolve()
    raise SpecError(path, "notebook", f"{value!r} not found (looked in {', '.join(str(t) for t in tried)})")


def notebook_parameters(notebook: Path) -> dict[str, Any]:
    """The names and default values of a notebook's ``parameters`` cell (papermill's inference)."""
    import papermill

    from ..book.papermill_io import read_notebook

    with tempfile.TemporaryDirectory() as d:  # papermill inspects a path, not a NotebookNode
        tmp = Path(d) / "nb.ipynb"
        nbformat.write(read_notebook(notebook), tmp)
        return {k: v.get("default") for k, v in papermill.inspect_notebook(str(tmp)).items()}


def _notebook_points(raw: dict[str, Any], path: str | Path, scale: str, device: str) -> list[NotebookPoint]:
    nb = _find_notebook(path, raw["notebook"])
    params = raw.get("parameters") or {}
    if not isinstance(params, dict):
        raise SpecError(path, "parameters", "expected a mapping of parameter names to values or lists")
    known = notebook_parameters(nb)
    if not known:
        raise SpecError(path, "notebook", f"{nb} has no cell tagged 'parameters'")
    for k in params:
        if k not in known:
            raise SpecError(path, f"parameters.{k}", f"not a parameter of {nb.name}; its parameters: {', '.join(known)}")
    if "scale" in params:
        raise SpecError(path, "parameters.scale", "set the top-level `scale` instead")
    names = list(params)
    grids = [_as_list(path, f"parameters.{k}", params[k]) for k in names]
    source = hashlib.sha256(nb.read_bytes()).hexdigest()
    points = []
    for values in itertools.product(*grids):
        p = dict(zip(names, values))
        if "scale" in known:
            p = {"scale": scale, **p}
        # every module: an executed notebook also draws and judges (plots, analysis)
        text = json.dumps({"source": source, "parameters": p, "code": code_version("all")}, sort_keys=True,
                          default=str)
        h = hashlib.sha256(text.encode()).hexdigest()[:16]
        points.append(NotebookPoint(nb, p, device, f"notebooks/{nb.stem}-{h}.ipynb"))
    return points
