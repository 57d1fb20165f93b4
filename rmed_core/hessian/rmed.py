"""``rmed_per_layer``: R_med of every parameter tensor, as a table."""
from __future__ import annotations

import time
from collections.abc import Iterable

import pandas as pd
from torch import nn

from ..validation import check_choice
from ._validate import Batch, LossFn
from .diagonal import hessian_diagonal
from .sampled import sampled_rmed
from .table import COLUMNS, embedding_rows, summary_row

#: The methods of :func:`rmed_per_layer` (the one registry; ``TrainConfig.probe_method`` checks
#: against it): the whole diagonal exactly (``exact``: structured; ``brute``: one product per
#: entry), or the sampled estimate with its interval.
METHODS = ("exact", "brute", "sampled")


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
        One row per tensor with columns ``layer`` (name), ``numel``, ``n_used`` (the entries the
        statistic is taken over: an embedding's rows of the tokens in the batch, else all),
        ``r_med`` (NaN when undefined), ``undefined`` (the reason, or ``""``), ``method``,
        ``lower``, ``upper``, ``confidence``, ``h_max`` (max |h|), ``h_median`` (median |h|; for
        ``"sampled"`` the estimates), and for the exact methods ``n_zero`` (used entries exactly
        zero: dead units under ReLU) and ``h_median_active`` (median |h| over the others; both NaN
        for ``"sampled"``).

    The table's ``attrs`` hold the probe's cost: ``products`` (Hessian-vector and z-space products)
    and ``seconds``.

    Undefined (:func:`rmed_core.stats.undefined_reason`): a tensor whose diagonal is zero in theory
    -- its largest entry is rounding noise relative to the largest entry of all tensors measured in
    the call -- or whose median is zero gets ``r_med = NaN`` and the reason, never a number.

    Least squares with inputs of scales 1, 2 and 4: the weight's diagonal is ``2 mean_n x_nj^2``,
    so its R_med is the largest over the median of those:

    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(64, 3, dtype=torch.float64) * torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    >>> model, y = torch.nn.Linear(3, 1).double(), torch.randn(64, 1, dtype=torch.float64)
    >>> table = rmed_per_layer(model, torch.nn.functional.mse_loss, (x, y))
    >>> s = (x ** 2).mean(0)
    >>> round(float(table.set_index("layer").r_med["weight"]), 6) == round(float(s.max() / s.median()), 6)
    True
    >>> table.set_index("layer").undefined["bias"]  # one entry: R_med = 1
    ''
    """
    check_choice("method", method, METHODS)
    if method == "sampled":
        return sampled_rmed(model, loss_fn, batch, params=params, confidence=confidence, seed=seed, **kw)
    t0 = time.perf_counter()
    info = kw.pop("info", None)
    info = {} if info is None else info
    diag = hessian_diagonal(model, loss_fn, batch, params=params, method=method, info=info, **kw)
    emb = embedding_rows(model, batch, diag, loss_fn)
    scale = max(float(h.detach().abs().max()) for h in diag.values())
    rows = [summary_row(name, h, emb.get(name), scale, method) for name, h in diag.items()]
    df = pd.DataFrame(rows, columns=COLUMNS)
    df.attrs.update(products=info.get("n_hvp", 0), seconds=time.perf_counter() - t0)
    return df
