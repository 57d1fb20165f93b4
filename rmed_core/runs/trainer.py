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
* Stored: a run whose config and code version are in the :class:`~rmed_core.runs.store.ResultStore`
  is loaded, not recomputed.
"""
from __future__ import annotations

import io
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from ..devices import select_device, seed_everything
from ..optim import make_optimizer, schedule_factor
from ..provenance import provenance
from ..tasks import get_task
from .checkpoint import RunState, load_checkpoint, save_checkpoint, unreadable_reason
from .config import RunResult, TrainConfig
from .store import CorruptRunError, ResultStore

__all__ = ["TrainConfig", "RunResult", "train", "final_model", "FINAL_MODEL"]

#: The file of a stored run that holds the trained weights (a ``state_dict`` of tensors, read with
#: ``torch.load(weights_only=True)``).
FINAL_MODEL = "final_model.pt"

def _probe(cfg: TrainConfig, model: torch.nn.Module, loss_fn: Callable, batch: tuple, step: int,
           state: RunState) -> str | None:
    """Probe ``w_step`` on the fixed batch; returns a reason when the iterate has diverged."""
    from ..hessian import rmed_per_layer, top_eigenvalues  # the engine; imported only when probing

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
            again (default: :class:`~rmed_core.runs.store.CorruptRunError` naming the damaged file).

    Returns:
        :class:`RunResult`; ``status == "diverged"`` when the loss became non-finite (training
        stopped there; the loss table's last row has ``diverged=True``).

    One writer per run: the run is computed while holding its lock
    (:meth:`~rmed_core.runs.store.ResultStore.writing`); a second process asking for the same run waits
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
    from ..hessian import check_memory

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
        m = task.model(cfg.scale, data, **{k: getattr(cfg, k) for k in task.model_options}).to(device)
        return m, make_optimizer(cfg.opt, m.parameters(), lr=cfg.lr)

    model, optimizer = fresh()
    _check_probe_memory(cfg, task, data, model, device)
    run_dir = store.run_dir(key)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / "checkpoint.pt"
    state = RunState()
    if ckpt.is_file():
        try:
            state = load_checkpoint(ckpt, key, model, optimizer, device)
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
            if cfg.schedule != "constant":  # set from the step, so a resumed run needs no scheduler state
                for group in optimizer.param_groups:
                    group["lr"] = cfg.lr * schedule_factor(cfg.schedule, step, cfg.steps)
            optimizer.step()
            state.tables["loss"].append(dict(step=step, loss=value, diverged=False))
            state.step = step + 1
            bar.update(1)
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)
            if callback is not None:
                callback(step, value)
            if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0 and state.step < cfg.steps:
                state.elapsed = time.perf_counter() - t0
                save_checkpoint(ckpt, key, model, optimizer, state)
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
    model = task.model(cfg.scale, data, **{k: getattr(cfg, k) for k in task.model_options})
    f = Path(result.dir) / FINAL_MODEL
    try:
        model.load_state_dict(torch.load(f, weights_only=True))
    except Exception as e:  # noqa: BLE001 - unreadable weights: the run folder is damaged
        raise CorruptRunError(f"{f}: the stored weights cannot be read ({unreadable_reason(e)}); delete "
                              f"{result.dir} to compute the run again") from e
    return model.eval(), data.hessian_batch(cfg.seed, cfg.hessian_batch)
