"""rmed_core: per-layer Hessian-diagonal geometry (R_med) along optimizer trajectories.

A reproduction of Jiang, Malik, Li, *How Does Adaptive Optimization Impact Local Neural Network
Geometry?* (NeurIPS 2023). The public API is re-exported here.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .devices import device_name, seed_everything, select_device
from .optim import make_optimizer, optimizer_names
from .stats import median, r_med

__all__ = [
    "__version__",
    "device_name",
    "make_optimizer",
    "median",
    "optimizer_names",
    "r_med",
    "seed_everything",
    "select_device",
]
