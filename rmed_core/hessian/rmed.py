"""``rmed_per_layer``: R_med of every parameter tensor, as a table."""
from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd
import torch
from torch import nn

from ..stats import median, r_med
from ._validate import Batch, LossFn

COLUMNS = ["layer", "numel", "r_med", "method", "lower", "upper", "confidence", "h_max", "h_median"]


def rmed_per_layer(model: nn.Module, loss_fn: LossFn, batch: Batch, *, params: Iterable[str] | None = None,
                   method: str = "exact", confidence: float = 0.95, seed: int = 0, **kw) -> pd.DataFrame:
    """R_med = max|h| / median|h| of the Hessian diagonal ``h`` of each parameter tensor
    (Jiang, Malik, Li, NeurIPS 2023, as quoted by Ahn et al. 2023).

    Args:
        model, loss_fn, batch, params: as for :func:`hessian_diagonal`.
        method: ``"exact"`` or ``"brute"`` (the whole diagonal, exact; ``lower == upper == r_med``
            and ``confidence`` is NaN), or ``"sampled"`` (:mod:`rmed_core.hessian.sampled`: an
            interval ``[lower, upper]`` that holds the exact R_med with probability at least
            ``confidence``; ``r_med`` is then the point estimate).
        confidence: for ``"sampled"`` only.
        seed: for ``"sampled"`` only (the random coordinates).
        **kw: passed to the method.

    Returns:
        One row per tensor with columns ``layer`` (name), ``numel``, ``r_med``, ``method``,
        ``lower``, ``upper``, ``confidence``, ``h_max`` (max |h|), ``h_median`` (median |h|; for
        ``"sampled"`` the estimates).
    """
    if method == "sampled":
        from .sampled import sampled_rmed
        return sampled_rmed(model, loss_fn, batch, params=params, confidence=confidence, seed=seed, **kw)
    from .diagonal import hessian_diagonal

    diag = hessian_diagonal(model, loss_fn, batch, params=params, method=method, **kw)
    rows = []
    for name, h in diag.items():
        a = h.detach().abs()
        r = r_med(a)
        rows.append(dict(layer=name, numel=a.numel(), r_med=r, method=method, lower=r, upper=r,
                         confidence=math.nan, h_max=float(a.max()), h_median=float(median(a))))
    return pd.DataFrame(rows, columns=COLUMNS)
