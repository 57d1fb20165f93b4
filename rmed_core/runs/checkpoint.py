"""A run's resumable state: step, tables and RNG states, saved atomically and read back only with
``torch.load(weights_only=True)``.

A killed run restarts from its last checkpoint and ends with exactly the numbers of an
uninterrupted run: the checkpoint holds the model, the optimizer, every RNG state (torch, CUDA,
NumPy, Python), the step, the elapsed time and the tables written so far.
"""
from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .files import atomic_write_bytes
from .store import CorruptRunError

__all__ = ["RunState", "save_checkpoint", "load_checkpoint", "unreadable_reason"]


@dataclass
class RunState:
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


def save_checkpoint(path: Path, key: dict[str, Any], model: torch.nn.Module, opt: torch.optim.Optimizer,
                     state: RunState) -> None:
    """``torch.save`` of the run's state, written atomically (:func:`.files.atomic_write_bytes`)."""
    buf = io.BytesIO()
    torch.save({"key": key, "model": model.state_dict(), "optimizer": opt.state_dict(), "rng": _rng_state(),
                "step": state.step, "elapsed": state.elapsed, "tables": state.tables}, buf)
    atomic_write_bytes(path, buf.getvalue())


def unreadable_reason(e: BaseException) -> str:
    """A one-line reason why a torch file could not be read (torch's unpickling message advises
    ``weights_only=False``, which a damaged file does not need)."""
    import pickle

    if isinstance(e, pickle.UnpicklingError):
        return "UnpicklingError: not a readable torch file"
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}".rstrip(": ")


def load_checkpoint(path: Path, key: dict[str, Any], model: torch.nn.Module, opt: torch.optim.Optimizer,
                     device: torch.device) -> RunState:
    """Restore a run from ``path``; :class:`~rmed_core.runs.store.CorruptRunError` naming the file
    when it cannot be read (truncated, garbled, another config's)."""
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(ck, dict) or ck.get("key") != key:
            raise ValueError("it belongs to another config" if isinstance(ck, dict) else "not a checkpoint")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        ck["rng"]["torch"] = ck["rng"]["torch"].cpu()
        _set_rng_state(ck["rng"])
        return RunState(step=ck["step"], elapsed=ck["elapsed"], tables=ck["tables"])
    except Exception as e:  # noqa: BLE001 - any failure to read it means the file is damaged
        raise CorruptRunError(f"{path}: damaged checkpoint ({unreadable_reason(e)}); delete it to restart the run from "
                              "step 0") from e
