"""Checks of user input, raised early with the parameter's name and what is allowed."""
from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

__all__ = ["SCALES", "check_choice", "check_positive", "check_bool", "check_seed", "MAX_SEED"]

#: Seeds are 64-bit signed integers in torch (``torch.manual_seed``): ``0 <= seed < MAX_SEED``.
MAX_SEED = 2**63

#: The sizes every notebook runs at: ``ci`` (seconds, for the tests), ``book`` (minutes on a 2-core
#: CPU, exact probes), ``study`` and ``study-10k`` (the word-level study of the paper's claim, hours on
#: a 2-core CPU; its results are stored, :mod:`rmed_core.runs.bundle`) and ``paper`` (larger sizes of this
#: project's choosing; for a GPU). Not every task has every scale (:meth:`rmed_core.tasks.Task.spec`).
SCALES = ("ci", "book", "study", "study-10k", "paper")


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise ``ValueError`` naming ``name``."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; choose one of: {', '.join(map(str, allowed))}")
    return value


def check_positive(name: str, value: Any, *, integer: bool = False, allow_none: bool = False) -> Any:
    """Return ``value`` if it is a positive finite number (an integer when ``integer``: of an integer
    type, so ``3.0`` is refused -- it would make another store key than ``3``), else raise
    ``ValueError`` naming ``name``."""
    if value is None and allow_none:
        return value
    if integer:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0
    else:
        ok = (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
              and value > 0)
    if not ok:
        kind = "a positive integer" if integer else "a positive number"
        got = f" (got a {type(value).__name__})" if integer and isinstance(value, float) else ""
        raise ValueError(f"{name}={value!r}: expected {kind}{got}")
    return int(value) if integer else value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool (``"no"``, ``0`` or ``None`` are refused: a string is
    always true), else raise ``ValueError`` naming ``name``."""
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r}: expected True or False (a {type(value).__name__} is not a bool)")
    return value


def check_seed(name: str, value: Any) -> int:
    """Return ``value`` if it is an integer in ``[0, MAX_SEED)``, else raise ``ValueError``."""
    if not (isinstance(value, numbers.Integral) and not isinstance(value, bool) and 0 <= value < MAX_SEED):
        raise ValueError(f"{name}={value!r}: expected an integer in [0, 2**63) (torch seeds are 64-bit)")
    return int(value)
