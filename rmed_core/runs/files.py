"""Files written atomically and checked by their SHA-256: what the store, the bundles, the sweeps
and the checkpoints write goes through here, so that a run killed half way never leaves a
half-written file under a final name."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "sha256_bytes"]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, fsync, ``os.replace``."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_bytes(data: bytes) -> str:
    """The SHA-256 of ``data`` as 64 hex digits."""
    return hashlib.sha256(data).hexdigest()
