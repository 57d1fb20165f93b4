"""A training run's configuration and its result.

:class:`TrainConfig` is a frozen dataclass of the fields that determine a run's numbers, each with
a docstring (``None`` fields take the task's value at ``scale``); :meth:`TrainConfig.key_dict` is
what the result store keys the run by, and :meth:`TrainConfig.from_dict` reads one back from a
stored ``config.json``. :class:`RunResult` is a finished run: its tables and provenance.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..devices import select_device
from ..hessian.rmed import METHODS as RMED_METHODS
from ..models import INITS
from ..optim import SCHEDULES, check_optimizer_name
from ..tasks import check_scale, get_task, task_names
from ..validation import check_bool, check_choice, check_positive, check_seed

__all__ = ["TrainConfig", "RunResult"]

_NOT_IN_KEY = ("device", "checkpoint_every")  # how a run is computed, not what it computes
#: Fields added after runs were stored: at these values they are left out of the key, so that the
#: runs made before the field existed (which all had this value) keep their keys.
_OMITTED_AT_DEFAULT = {"init": "normal", "output_bias": False, "schedule": "constant"}


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
    init: str = "normal"
    """The transformer's initialisation (:data:`rmed_core.models.INITS`): ``"normal"`` (N(0, 0.02) for
    every weight, zero biases) or ``"torch"`` (each module's PyTorch default). Tasks whose model is
    a transformer language model only."""
    output_bias: bool = False
    """Give the language model's output layer a bias. Tasks whose model is a transformer language model only."""
    schedule: str = "constant"
    """The learning-rate schedule (:data:`rmed_core.optim.SCHEDULES`): ``"constant"`` or
    ``"warmup-cosine"`` (linear warmup over 10% of the iterations, cosine decay to 10% of ``lr``)."""

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
        check_choice("init", self.init, INITS)
        check_bool("output_bias", self.output_bias)
        check_choice("schedule", self.schedule, SCHEDULES)
        for name, default in (("init", "normal"), ("output_bias", False)):
            if getattr(self, name) != default and name not in get_task(self.task).model_options:
                raise ValueError(f"{name}={getattr(self, name)!r}: task {self.task!r} has no such model option "
                                 f"(only transformer language models do: tasks "
                                 f"{', '.join(t for t in task_names() if name in get_task(t).model_options)})")

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
        return {k: v for k, v in d.items() if k not in _NOT_IN_KEY
                and not (k in _OMITTED_AT_DEFAULT and v == _OMITTED_AT_DEFAULT[k])}

    @classmethod
    def from_dict(cls, config: dict[str, Any], *, exclude: tuple[str, ...] = ()) -> "TrainConfig":
        """The config of a stored ``config.json`` (or a bundle's ``config`` column): the fields of
        this class found in ``config`` but ``exclude``, JSON lists read back as tuples."""
        fields = {f.name for f in dataclasses.fields(cls)} - set(exclude)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in fields})


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
