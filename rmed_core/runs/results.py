"""The one reader of stored results: :func:`load_results`, from the result store (every finished
run) or from a committed results bundle."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from .bundle import read_bundle
from .store import ResultStore

__all__ = ["load_results"]


def load_results(kind: str, *, root: str | Path | None = None, include_stale: bool = False,
                 bundle: str | None = None, **filters: Any) -> pd.DataFrame:
    """All finished runs' table ``kind`` as one tidy DataFrame.

    Args:
        kind: ``"loss"`` (``step, loss, diverged``: the mini-batch training loss before each
            update), ``"rmed"`` (``step, layer_index, layer, numel, r_med, method, lower, upper,
            ...``; ``layer_index`` is the tensor's position in ``model.named_parameters()``),
            ``"probe"`` (``step, loss`` on the fixed Hessian batch, probe time), ``"eig"``
            (``step, rank, eigenvalue``), or ``"runs"`` (one row per run: config and status).
        root: the store's folder (default ``$RMED_RESULTS``, else ``<repository>/results``).
        include_stale: also return runs made by other code versions (with a ``stale`` column).
            Otherwise they are left out with a :class:`StaleResultsWarning`.
        bundle: read the committed results bundle of this name instead of the store
            (:func:`read_bundle`; ``root`` is then the bundles' folder, default :data:`BUNDLES`).

    A run whose files fail the content check of its ``COMPLETE`` record is left out with a
    :class:`CorruptRunWarning` naming it (and how many were); the others are returned.
        **filters: config fields to match, a value or a list of values (``opt=["adam", "sgdm"]``).

    Every row carries ``task, scale, opt, lr, seed, run`` first.
    """
    if bundle is not None:
        return read_bundle(bundle, kind, root=root, **filters)
    return ResultStore(root).load(kind, include_stale=include_stale, **filters)
