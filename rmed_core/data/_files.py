"""Checked file access: every data file is size- or checksum-checked before it is read.

A missing or corrupt file raises :class:`DataFileError`, whose message names the file, what was
expected, and the command (or setting) that provides it.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["DataFileError", "data_home", "sha256_file", "check_file", "user_path"]


class DataFileError(FileNotFoundError):
    """A data file is missing, has the wrong size or checksum, or is malformed."""


def data_home() -> Path:
    """The cache folder for fetched data: ``$RMED_DATA`` when set, else ``~/.cache/rmed``."""
    env = os.environ.get("RMED_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rmed"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """The SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def check_file(path: str | Path, *, how_to_get: str, size: int | None = None, min_size: int | None = None,
               sha256: str | None = None) -> Path:
    """Return ``path`` if it exists and matches the expected ``size`` (bytes), ``min_size`` and/or
    ``sha256``; otherwise raise :class:`DataFileError` naming the file and ``how_to_get`` it."""
    p = Path(path)
    if not p.is_file():
        raise DataFileError(f"data file {str(p)!r} is missing. {how_to_get}")
    n = p.stat().st_size
    if size is not None and n != size:
        raise DataFileError(f"data file {str(p)!r} has {n} bytes, expected {size} (truncated or a different "
                            f"version?). {how_to_get}")
    if min_size is not None and n < min_size:
        raise DataFileError(f"data file {str(p)!r} has {n} bytes, expected at least {min_size} "
                            f"(truncated?). {how_to_get}")
    if sha256 is not None:
        got = sha256_file(p)
        if got != sha256:
            raise DataFileError(f"data file {str(p)!r} has SHA-256 {got[:16]}..., expected {sha256[:16]}... "
                                f"(corrupt or a different version). {how_to_get}")
    return p


def user_path(path: str | Path | None, env: str, what: str, how_to_get: str) -> Path:
    """A folder the user provides for data that is never downloaded: the ``path`` argument, else
    the environment variable ``env``. Raises :class:`DataFileError` when neither is given or the
    folder does not exist."""
    if path is None:
        path = os.environ.get(env)
    if not path:
        raise DataFileError(f"no {what} folder given: pass path=... or set the environment variable {env}. "
                            f"{how_to_get}")
    p = Path(path).expanduser()
    if not p.is_dir():
        raise DataFileError(f"{what} folder {str(p)!r} does not exist. {how_to_get}")
    return p
