"""Training along a trajectory with curvature probes, resumable and stored.

``train(TrainConfig(task="ptb_lm", opt="adam", scale="book"))`` trains the task's model with the
named optimizer and, on a schedule, *probes* the iterate ``w_t`` on a fixed batch ``B`` (drawn
once per seed from the training set, the same for every optimizer): the loss ``L_B(w_t)``, the
per-tensor ``R_med = max|diag H| / median|diag H|`` of ``H = ∇²L_B(w_t)`` (Jiang, Malik, Li 2023)
through :func:`rmed_core.hessian.rmed_per_layer`, and optionally the top Hessian eigenvalues.

Guarantees:

* Deterministic on the CPU: the same config gives bit-identical tables (batches are pure
  functions of ``(seed, step)``, see :mod:`rmed_core.data.batches`).
* Resumable: every ``checkpoint_every`` steps the model, optimizer, RNG states, step and tables go
  atomically to ``checkpoint.pt`` in the run's folder; a killed run restarts there and ends with
  exactly the numbers of an uninterrupted run, nothing counted twice.
* A non-finite loss stops the run cleanly, recorded as ``diverged`` (loss table and status).
* Stored: a run whose config and code version are in the :class:`~rmed_core.store.ResultStore`
  is loaded, not recomputed.
"""
from __future__ import annotations

import argparse
import io
import dataclasses
import math
import os
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .devices import select_device, seed_everything
from .hessian.rmed import METHODS as RMED_METHODS
from .optim import check_optimizer_name, make_optimizer
from .provenance import provenance
from .store import CorruptRunError, ResultStore
from .tasks import LR_GRID, check_scale, get_task
from .validation import check_bool, check_choice, check_positive, check_seed

__all__ = ["TrainConfig", "RunResult", "train", "tune_lr", "final_model", "FINAL_MODEL"]

#: The file of a stored run that holds the trained weights (a ``state_dict`` of tensors, read with
#: ``torch.load(weights_only=True)``).
FINAL_MODEL = "final_model.pt"

_NOT_IN_KEY = ("device", "checkpoint_every")  # how a run is computed, not what it computes


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``None`` fields take the task's value at ``scale`` (:meth:`resolved`)."""

    task: str = "ptb_lm"
    """Task name (:func:`rmed_core.tasks.task_names`)."""
    opt: str = "adam"
    """Optimizer name (:func:`rmed_core.optim.optimizer_names`)."""
    lr: float | None = None
    """Learning rate; ``None`` = the task's tuned value for ``opt`` at ``scale``."""
    seed: int = 0
    """Seeds the initialisation, the batches and the fixed Hessian batch."""
    scale: str = "ci"
    """``"ci"`` (seconds), ``"book"`` (minutes on a CPU) or ``"paper"`` (GPU)."""
    steps: int | None = None
    """Training iterations (optimizer updates)."""
    batch_size: int | None = None
    """Mini-batch size (sequences or examples)."""
    device: str = "auto"
    """``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``."""
    probe_every: int | None = None
    """Probe at steps ``0, k, 2k, ...`` and at the last step; ``0`` = no probes."""
    probe_steps: tuple[int, ...] | None = None
    """An explicit probe schedule (overrides ``probe_every``)."""
    probe_method: str | None = None
    """Hessian-diagonal method of the engine (``"exact"``, ``"brute"``, ``"sampled"``)."""
    probe_top_eig: bool = True
    """Also compute the ``top_eig_k`` largest-magnitude Hessian eigenvalues at each probe (Lanczos:
    tens of Hessian-vector products, small beside the diagonal's thousands)."""
    top_eig_k: int = 1
    """How many top eigenvalues (with ``probe_top_eig``)."""
    hessian_batch: int | None = None
    """Size of the fixed probe batch (sequences or examples)."""
    clip_grad: float | None = None
    """Clip the gradient's global 2-norm to this value; ``None`` = no clipping."""
    checkpoint_every: int | None = None
    """Steps between checkpoints; ``None`` = the probe interval (or steps/10); ``0`` = never."""

    def __post_init__(self) -> None:
        get_task(self.task)
        check_optimizer_name(self.opt)
        check_scale(self.scale)
        if self.device != "auto":
            select_device(self.device)
        check_positive("lr", self.lr, allow_none=True)
        check_seed("seed", self.seed)
        check_bool("probe_top_eig", self.probe_top_eig)
        for name in ("steps", "batch_size", "hessian_batch", "top_eig_k"):
            check_positive(name, getattr(self, name), integer=True, allow_none=True)
        for name in ("probe_every", "checkpoint_every"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
                raise ValueError(f"{name}={v!r}: expected a non-negative integer (0 = never)")
        if self.probe_steps is not None:
            if not all(isinstance(s, int) and s >= 0 for s in self.probe_steps):
                raise ValueError(f"probe_steps={self.probe_steps!r}: expected non-negative integers")
            object.__setattr__(self, "probe_steps", tuple(sorted(set(self.probe_steps))))
        if self.probe_method is not None:
            check_choice("probe_method", self.probe_method, RMED_METHODS)
        check_positive("clip_grad", self.clip_grad, allow_none=True)

    def resolved(self) -> "TrainConfig":
        """This config with every ``None`` replaced by the task's value at ``scale``."""
        task, spec = get_task(self.task), get_task(self.task).spec(self.scale)
        steps = self.steps or spec.steps
        every = spec.probe_every if self.probe_every is None else self.probe_every
        probes = self.probe_steps
        if probes is None:
            probes = tuple(sorted({*range(0, steps, every), steps})) if every else ()
        probes = tuple(s for s in probes if s <= steps)
        ckpt = self.checkpoint_every
        if ckpt is None:
            ckpt = every or max(1, steps // 10)
        lr = float(self.lr) if self.lr is not None else task.default_lr(self.opt, self.scale)
        return dataclasses.replace(self, lr=lr, steps=steps, batch_size=self.batch_size or spec.batch_size,
                                   probe_every=every, probe_steps=probes,
                                   probe_method=self.probe_method or spec.probe_method,
                                   hessian_batch=self.hessian_batch or spec.hessian_batch, checkpoint_every=ckpt)

    def key_dict(self) -> dict[str, Any]:
        """The fields that determine the numbers (the store's key): all but device and checkpointing."""
        d = dataclasses.asdict(self.resolved())
        d["probe_steps"] = list(d["probe_steps"])
        return {k: v for k, v in d.items() if k not in _NOT_IN_KEY}


@dataclass
class RunResult:
    """A finished run: its config, status (``"finished"`` or ``"diverged"``), tables and provenance."""

    config: TrainConfig
    status: str
    loss: pd.DataFrame
    rmed: pd.DataFrame
    probe: pd.DataFrame
    eig: pd.DataFrame
    provenance: dict[str, Any]
    dir: Path | None = None
    from_store: bool = False

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"


@dataclass
class _State:
    step: int = 0
    status: str = "running"
    elapsed: float = 0.0
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"loss": [], "rmed": [], "probe": [], "eig": []})


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": torch.from_numpy(np_state[1].astype(np.int64)), "numpy_pos": int(np_state[2]),
            "python": list(random.getstate()[1])}


def _set_rng_state(s: dict[str, Any]) -> None:
    torch.set_rng_state(s["torch"])
    if s["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])
    np.random.set_state(("MT19937", s["numpy"].numpy().astype(np.uint32), s["numpy_pos"], 0, 0.0))
    random.setstate((3, tuple(s["python"]), None))


def _save_checkpoint(path: Path, key: dict[str, Any], model: torch.nn.Module, opt: torch.optim.Optimizer,
                     state: _State) -> None:
    """``torch.save`` to a temporary file in the same folder, then ``os.replace`` (atomic)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save({"key": key, "model": model.state_dict(), "optimizer": opt.state_dict(), "rng": _rng_state(),
                "step": state.step, "elapsed": state.elapsed, "tables": state.tables}, tmp)
    os.replace(tmp, path)


def _why(e: BaseException) -> str:
    """A one-line reason why a torch file could not be read (torch's unpickling message advises
    ``weights_only=False``, which a damaged file does not need)."""
    import pickle

    if isinstance(e, pickle.UnpicklingError):
        return "UnpicklingError: not a readable torch file"
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}".rstrip(": ")


def _load_checkpoint(path: Path, key: dict[str, Any], model: torch.nn.Module, opt: torch.optim.Optimizer,
                     device: torch.device) -> _State:
    """Restore a run from ``path``; :class:`~rmed_core.store.CorruptRunError` naming the file
    when it cannot be read (truncated, garbled, another config's)."""
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(ck, dict) or ck.get("key") != key:
            raise ValueError("it belongs to another config" if isinstance(ck, dict) else "not a checkpoint")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        ck["rng"]["torch"] = ck["rng"]["torch"].cpu()
        _set_rng_state(ck["rng"])
        return _State(step=ck["step"], elapsed=ck["elapsed"], tables=ck["tables"])
    except Exception as e:  # noqa: BLE001 - any failure to read it means the file is damaged
        raise CorruptRunError(f"{path}: damaged checkpoint ({_why(e)}); delete it to restart the run from "
                              "step 0") from e


def _probe(cfg: TrainConfig, model: torch.nn.Module, loss_fn: Callable, batch: tuple, step: int,
           state: _State) -> str | None:
    """Probe ``w_step`` on the fixed batch; returns a reason when the iterate has diverged."""
    from .hessian import rmed_per_layer, top_eigenvalues  # the engine; imported only when probing

    t0 = time.perf_counter()
    model.eval()
    with torch.no_grad():
        loss = float(loss_fn(model(batch[0]), batch[1]))
    if not math.isfinite(loss):
        state.tables["loss"].append(dict(step=step, loss=loss, diverged=True))
        return f"non-finite probe loss {loss} at step {step}"
    try:
        df = rmed_per_layer(model, loss_fn, batch, method=cfg.probe_method, seed=cfg.seed)
        eig = top_eigenvalues(model, loss_fn, batch, k=cfg.top_eig_k, seed=cfg.seed) if cfg.probe_top_eig else None
    except ValueError as e:  # non-finite Hessian entries: the iterate has blown up
        if "non-finite" not in str(e) and "not finite" not in str(e):
            raise
        state.tables["loss"].append(dict(step=step, loss=math.nan, diverged=True))
        return f"step {step}: {e}"
    index = {name: i for i, (name, _) in enumerate(model.named_parameters())}
    df.insert(0, "index", df["layer"].map(index))
    df.insert(0, "step", step)
    state.tables["rmed"].extend(df.to_dict("records"))
    if eig is not None:
        state.tables["eig"].extend(dict(step=step, rank=i, eigenvalue=float(v)) for i, v in enumerate(eig.eigenvalues))
    state.tables["probe"].append(dict(step=step, loss=loss, time_s=time.perf_counter() - t0,
                                      products=int(df.attrs.get("products", 0))))
    return None


def _result(cfg: TrainConfig, run: dict[str, Any], from_store: bool) -> RunResult:
    return RunResult(cfg, run["provenance"].get("status", "finished"), run["loss"], run["rmed"], run["probe"],
                     run["eig"], run["provenance"], run.get("dir"), from_store)


def _stored(cfg: TrainConfig, store: ResultStore, key: dict[str, Any], discard_corrupt: bool) -> RunResult | None:
    """The stored run of ``key``, or None. A corrupt one raises :class:`CorruptRunError` (naming
    the file), or with ``discard_corrupt`` is deleted (with a warning) so that it is computed again
    -- only to be done while holding the run's lock."""
    if not store.has(key):
        return None
    try:
        return _result(cfg, store.get(key), from_store=True)
    except CorruptRunError as e:
        if not discard_corrupt:
            raise
        warnings.warn(f"recomputing a corrupt run: {e}", RuntimeWarning, stacklevel=3)
        store.discard(key)
        return None


def train(config: TrainConfig, store: ResultStore | None = None, *, progress: bool = True,
          callback: Callable[[int, float], None] | None = None, recompute_corrupt: bool = False) -> RunResult:
    """Run ``config`` (or load it from ``store`` when its config and code version are stored).

    Args:
        config: the run; validated on construction, resolved against its task here.
        store: where results go (default :class:`ResultStore` at ``$RMED_RESULTS`` or ``results/``).
        progress: show a tqdm progress bar.
        callback: called as ``callback(step, loss)`` after every update (an exception raised there
            interrupts the run; it resumes from its last checkpoint on the next call).
        recompute_corrupt: a stored run that fails its content check is deleted and computed
            again (default: :class:`~rmed_core.store.CorruptRunError` naming the damaged file).

    Returns:
        :class:`RunResult`; ``status == "diverged"`` when the loss became non-finite (training
        stopped there; the loss table's last row has ``diverged=True``).

    One writer per run: the run is computed while holding its lock
    (:meth:`~rmed_core.store.ResultStore.writing`); a second process asking for the same run waits
    and then returns the stored result. A damaged checkpoint of an unfinished run is discarded with
    a warning, and the run starts again from step 0. A probe batch whose Hessian cannot fit in
    memory is refused before training starts.
    """
    cfg = config.resolved()
    store = store if store is not None else ResultStore()
    key = cfg.key_dict()
    if not recompute_corrupt:  # the common case, without waiting for a lock
        done = _stored(cfg, store, key, discard_corrupt=False)
        if done is not None:
            return done
    with store.writing(key):
        done = _stored(cfg, store, key, discard_corrupt=recompute_corrupt)  # finished while we waited?
        return done if done is not None else _train(cfg, store, key, progress, callback)


def _check_probe_memory(cfg: TrainConfig, task: Any, data: Any, model: torch.nn.Module,
                        device: torch.device) -> None:
    """Refuse a probe batch whose Hessian cannot fit in memory, estimated from four samples."""
    from .hessian._guards import check_memory

    if not cfg.probe_steps:
        return
    n = cfg.hessian_batch
    if hasattr(data, "y"):  # a classification set: the probe batch has at most its size
        n = min(n, int(data.y.numel()))
    if n <= 4:
        return
    small = tuple(t.to(device) for t in data.hessian_batch(cfg.seed, 4))
    check_memory(model, task.loss_fn, small, n=n, what=f"hessian_batch={cfg.hessian_batch} (the probe batch)")


def _train(cfg: TrainConfig, store: ResultStore, key: dict[str, Any], progress: bool,
           callback: Callable[[int, float], None] | None) -> RunResult:
    task = get_task(cfg.task)
    device = select_device(cfg.device)
    data = task.data(cfg.scale)

    def fresh() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        seed_everything(cfg.seed)
        m = task.model(cfg.scale, data).to(device)
        return m, make_optimizer(cfg.opt, m.parameters(), lr=cfg.lr)

    model, optimizer = fresh()
    _check_probe_memory(cfg, task, data, model, device)
    run_dir = store.run_dir(key)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / "checkpoint.pt"
    state = _State()
    if ckpt.is_file():
        try:
            state = _load_checkpoint(ckpt, key, model, optimizer, device)
        except CorruptRunError as e:
            warnings.warn(f"{e}: discarded, the run starts again from step 0", RuntimeWarning, stacklevel=3)
            ckpt.unlink(missing_ok=True)
            model, optimizer = fresh()
    hbatch = tuple(t.to(device) for t in data.hessian_batch(cfg.seed, cfg.hessian_batch))
    probes, reason = set(cfg.probe_steps), None
    t0 = time.perf_counter() - state.elapsed
    bar = tqdm(total=cfg.steps, initial=state.step, disable=not progress, leave=False,
               desc=f"{cfg.task}/{cfg.scale} {cfg.opt} lr={cfg.lr:g} s{cfg.seed}")
    try:
        for step in range(state.step, cfg.steps + 1):
            if step in probes:
                reason = _probe(cfg, model, task.loss_fn, hbatch, step, state)
                if reason:
                    break
            if step == cfg.steps:
                break
            x, y = (t.to(device) for t in data.batch(step, cfg.seed, cfg.batch_size))
            model.train()
            optimizer.zero_grad(set_to_none=True)
            loss = task.loss_fn(model(x), y)
            value = float(loss.detach())
            if not math.isfinite(value):
                state.tables["loss"].append(dict(step=step, loss=value, diverged=True))
                reason = f"non-finite training loss {value} at step {step}"
                break
            loss.backward()
            if cfg.clip_grad is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            optimizer.step()
            state.tables["loss"].append(dict(step=step, loss=value, diverged=False))
            state.step = step + 1
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)
            if callback is not None:
                callback(step, value)
            if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0 and state.step < cfg.steps:
                state.elapsed = time.perf_counter() - t0
                _save_checkpoint(ckpt, key, model, optimizer, state)
    finally:
        bar.close()
    state.status = "diverged" if reason else "finished"
    wall = time.perf_counter() - t0
    prov = {**provenance(device, seed=cfg.seed, wall_time_s=wall), "status": state.status, "reason": reason,
            "probe_time_s": round(sum(r["time_s"] for r in state.tables["probe"]), 2)}
    cols = {"loss": ["step", "loss", "diverged"], "rmed": None, "probe": ["step", "loss", "time_s"],
            "eig": ["step", "rank", "eigenvalue"]}
    tables = {k: pd.DataFrame(v, columns=cols[k]) for k, v in state.tables.items()}
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    store.write_run(key, tables, prov, extra_files={FINAL_MODEL: buf.getvalue()})
    ckpt.unlink(missing_ok=True)
    return _result(cfg, store.get(key), from_store=False)


def tune_lr(task: str, opt: str, scale: str, *, grid: tuple[float, ...] = LR_GRID, seed: int = 0,
            steps: int | None = None, store: ResultStore | None = None, progress: bool = False
            ) -> tuple[float, pd.DataFrame]:
    """Pick ``opt``'s learning rate for ``task`` at ``scale`` from ``grid`` by the final training
    loss: the mean mini-batch loss over the last 10% of steps (seed ``seed``, no probes). A
    diverged run scores ``inf``. Returns ``(best_lr, table)`` with one row per learning rate."""
    rows = []
    for lr in grid:
        r = train(TrainConfig(task=task, opt=opt, lr=lr, seed=seed, scale=scale, steps=steps, probe_every=0),
                  store, progress=progress)
        tail = r.loss["loss"].iloc[-max(1, len(r.loss) // 10):]
        final = math.inf if r.diverged else float(tail.mean())
        rows.append(dict(task=task, opt=opt, scale=scale, lr=lr, final_loss=final, diverged=r.diverged,
                         wall_time_s=r.provenance.get("wall_time_s")))
    table = pd.DataFrame(rows)
    return float(table.loc[table["final_loss"].idxmin(), "lr"]), table


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="ptb_lm")
    p.add_argument("--opt", default=["adam"], nargs="+", help="one or more optimizer names (default: adam)")
    p.add_argument("--scale", default="ci")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--probe-every", type=int, default=None)
    p.add_argument("--tune", action="store_true", help="tune the learning rate on LR_GRID instead")
    return p


def main(argv: list[str] | None = None) -> None:
    """``python -m rmed_core.trainer --task ptb_lm --opt adam sgdm --scale book [--tune]``."""
    a = _parser().parse_args(argv)
    for opt in a.opt:
        if a.tune:
            best, table = tune_lr(a.task, opt, a.scale, seed=a.seed, steps=a.steps, progress=True)
            print(table.to_string(index=False), f"\nbest lr for {opt}: {best:g}", flush=True)
            continue
        r = train(TrainConfig(task=a.task, opt=opt, scale=a.scale, seed=a.seed, lr=a.lr, steps=a.steps,
                              probe_every=a.probe_every))
        print(f"{a.task}/{a.scale} {opt}: {r.status}, final loss {r.loss['loss'].iloc[-1]:.4f}, wall "
              f"{r.provenance['wall_time_s']} s (probes {r.provenance['probe_time_s']} s), from store: "
              f"{r.from_store}, {r.dir}", flush=True)
        if len(r.rmed):
            print(r.rmed.pivot_table(index="layer", columns="step", values="r_med").round(1).to_string(), flush=True)


if __name__ == "__main__":
    main()


def final_model(result: RunResult) -> tuple[torch.nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """The trained model of a stored run (on the CPU, in eval mode) and the run's fixed Hessian
    batch, for measurements after training (spectra, say).

    Raises:
        FileNotFoundError: when the run's folder holds no weights (a run stored by an older version).
        CorruptRunError: when the weights file cannot be read (named, with what to do).
    """
    if result.dir is None or not (Path(result.dir) / FINAL_MODEL).is_file():
        raise FileNotFoundError(f"no {FINAL_MODEL} in the run folder {result.dir}: rerun it to store its weights")
    cfg = result.config.resolved()
    task = get_task(cfg.task)
    data = task.data(cfg.scale)
    model = task.model(cfg.scale, data)
    f = Path(result.dir) / FINAL_MODEL
    try:
        model.load_state_dict(torch.load(f, weights_only=True))
    except Exception as e:  # noqa: BLE001 - unreadable weights: the run folder is damaged
        raise CorruptRunError(f"{f}: the stored weights cannot be read ({_why(e)}); delete "
                              f"{result.dir} to compute the run again") from e
    return model.eval(), data.hessian_batch(cfg.seed, cfg.hessian_batch)
