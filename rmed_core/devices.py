"""Device selection and seeding, in one place."""
from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["select_device", "seed_everything", "device_name"]

_ALLOWED = ("auto", "cpu", "cuda")


def select_device(device: str | torch.device | None = "auto") -> torch.device:
    """The device to compute on: CUDA when present, the CPU otherwise.

    Args:
        device: ``"auto"`` (or ``None``) picks ``cuda`` when ``torch.cuda.is_available()``, else
            ``cpu``; ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` force one. The environment variable
            ``RMED_DEVICE`` overrides ``"auto"``.

    Raises:
        ValueError: for a name that is none of these, or ``cuda`` on a machine without CUDA.
    """
    if device is None or device == "auto":
        device = os.environ.get("RMED_DEVICE", "auto")
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        dev = device
    else:
        name = str(device)
        if name.split(":")[0] not in _ALLOWED[1:]:
            raise ValueError(f"device={device!r} is not allowed; use one of {_ALLOWED} or 'cuda:N'")
        dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r}: CUDA is not available on this machine; use 'cpu' or 'auto'")
    return dev


def device_name(device: torch.device) -> str:
    """A human-readable name of ``device`` (the GPU model for CUDA) for provenance records."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices) and return a CPU ``torch.Generator`` seeded
    with ``seed`` for code that should not depend on global state."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r}: expected a non-negative integer")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
