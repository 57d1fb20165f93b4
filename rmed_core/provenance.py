"""Provenance of a run: what produced a number (code version, versions, device, time)."""
from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from functools import lru_cache
from pathlib import Path

import torch

from ._version import __version__
from .devices import device_name

__all__ = ["git_commit", "provenance", "repo_root"]


def repo_root() -> Path:
    """The folder that holds ``rmed_core`` (the repository root in an editable install)."""
    return Path(__file__).resolve().parent.parent


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The git commit of the repository, with ``-dirty`` when the tree has changes to tracked
    files; ``"unknown"`` outside a git checkout."""
    root = repo_root()
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def provenance(device: torch.device | None = None, *, seed: int | None = None,
               wall_time_s: float | None = None) -> dict[str, object]:
    """A flat record of what produced a result: package version, git commit, torch version,
    Python version, device, seed, wall time and the time it was written (UTC)."""

    return {
        "rmed_core": __version__,
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device_name(device) if device is not None else "cpu",
        "threads": torch.get_num_threads(),
        "seed": seed,
        "wall_time_s": None if wall_time_s is None else round(float(wall_time_s), 2),
        "finished_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
    }
