"""rmed_core: per-layer Hessian-diagonal geometry (R_med) along optimizer trajectories.

A reproduction of Jiang, Malik, Li, *How Does Adaptive Optimization Impact Local Neural Network
Geometry?* (NeurIPS 2023). The public API is re-exported here:

* the statistic: :func:`r_med`, :func:`median`;
* the curvature engine: :func:`hessian_diagonal`, :func:`rmed_per_layer`, :func:`top_eigenvalues`,
  :func:`hessian_trace`, :func:`spectral_density`, :func:`blockwise_spectra`;
* training and results: :class:`TrainConfig`, :func:`train`, :func:`load_results`,
  :class:`ResultStore`, :func:`make_optimizer`, :func:`optimizer_names`;
* devices and seeding: :func:`select_device`, :func:`seed_everything`.
"""
from __future__ import annotations

from ._version import __version__
from .devices import device_name, seed_everything, select_device
from .hessian import (blockwise_spectra, hessian_diagonal, hessian_trace, rmed_per_layer, spectral_density,
                      top_eigenvalues)
from .optim import make_optimizer, optimizer_names
from .stats import median, r_med
from .runs.store import ResultStore
from .runs.results import load_results
from .runs.config import TrainConfig
from .runs.trainer import train

__all__ = [
    "__version__",
    "ResultStore",
    "TrainConfig",
    "blockwise_spectra",
    "device_name",
    "hessian_diagonal",
    "hessian_trace",
    "load_results",
    "make_optimizer",
    "median",
    "optimizer_names",
    "r_med",
    "rmed_per_layer",
    "seed_everything",
    "select_device",
    "spectral_density",
    "top_eigenvalues",
    "train",
]
