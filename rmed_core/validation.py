"""Checks of user input, raised early with the parameter's name and what is allowed."""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = ["SCALES", "check_choice", "check_positive"]

#: The sizes every notebook runs at: ``ci`` (seconds, for the tests), ``book`` (what the book
#: shows, minutes on a 2-core CPU) and ``paper`` (larger sizes of this project's choosing; for a GPU).
SCALES = ("ci", "book", "paper")


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise ``ValueError`` naming ``name``."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; choose one of: {', '.join(map(str, allowed))}")
    return value


def check_positive(name: str, value: Any, *, integer: bool = False, allow_none: bool = False) -> Any:
    """Return ``value`` if it is a positive finite number (an integer when ``integer``), else raise
    ``ValueError`` naming ``name``."""
    if value is None and allow_none:
        return value
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if integer:
        ok = ok and float(value).is_integer()
    if not ok:
        kind = "a positive integer" if integer else "a positive number"
        raise ValueError(f"{name}={value!r}: expected {kind}")
    return int(value) if integer else value
