"""Training runs and what is stored of them: config → trainer (with its probes) → result store →
results bundle. Nothing here judges a result (that is :mod:`rmed_core.study`) or draws one
(:mod:`rmed_core.book`).

* :mod:`~rmed_core.runs.config` -- :class:`TrainConfig` (every field that changes a run's numbers)
  and :class:`RunResult`.
* :mod:`~rmed_core.runs.trainer` -- :func:`train`: the training loop, the probes of R_med and the
  top eigenvalues on a fixed batch, resumable from :mod:`~rmed_core.runs.checkpoint`.
* :mod:`~rmed_core.runs.tuning` -- the final-loss rule and :func:`tune_lr`.
* :mod:`~rmed_core.runs.store` -- :class:`ResultStore`: one folder per run, keyed by the config and
  the code version (:mod:`~rmed_core.runs.code_version`), files written atomically
  (:mod:`~rmed_core.runs.files`) and checked by SHA-256.
* :mod:`~rmed_core.runs.bundle` -- committed tables of a sweep's runs, read by the book; and the
  check that the current code reproduces them. :func:`load_results` (:mod:`~rmed_core.runs.results`)
  reads the store or a bundle.
* :mod:`~rmed_core.runs.sweep_spec`, :mod:`~rmed_core.runs.sweep` -- grids of runs from a YAML/TOML
  file, run on a Dask cluster.
"""
from __future__ import annotations

from .config import RunResult, TrainConfig
from .results import load_results
from .store import ResultStore
from .trainer import final_model, train
from .tuning import final_loss_of, tune_lr

__all__ = ["TrainConfig", "RunResult", "train", "final_model", "tune_lr", "final_loss_of", "ResultStore",
           "load_results"]
