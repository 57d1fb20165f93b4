"""The R_med table: its columns, the entries a tensor's statistic is taken over, and one row
from an exactly known diagonal (the rule for undefined values is :func:`rmed_core.stats.undefined_reason`)."""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from ..stats import median, ratio, undefined_reason
from ._forward import run_model
from ._guards import preserved_buffers
from ._validate import Batch, LossFn

__all__ = ["COLUMNS", "embedding_rows", "used_entries", "summary_row"]

COLUMNS = ["layer", "numel", "n_used", "r_med", "undefined", "method", "lower", "upper", "confidence", "h_max",
           "h_median", "n_zero", "h_median_active"]


def embedding_rows(model: nn.Module, batch: Batch, names: Iterable[str], loss_fn: LossFn = None) -> dict[str, torch.Tensor]:
    """For each named ``nn.Embedding`` weight used by no other module, the rows the batch looks up
    (sorted ids; ``padding_idx`` left out). The other rows receive no gradient from this batch, so
    their Hessian diagonal is zero by construction and they are not entries of the statistic.
    One forward pass without gradients (the model called as the loss calls it, :mod:`._forward`),
    with hooks recording the embeddings' inputs."""
    names = set(names)
    owners: dict[int, int] = {}
    for _, m in model.named_modules(remove_duplicate=False):
        for p in m.parameters(recurse=False):
            owners[id(p)] = owners.get(id(p), 0) + 1
    wanted = {}
    for mname, m in model.named_modules():
        pname = f"{mname}.weight" if mname else "weight"
        if type(m) is nn.Embedding and pname in names and owners.get(id(m.weight)) == 1:
            wanted[m] = pname
    if not wanted:
        return {}
    seen: dict[str, list[torch.Tensor]] = {}

    def hook(m, inp, out):
        seen.setdefault(wanted[m], []).append(inp[0].detach().flatten())

    handles = [m.register_forward_hook(hook) for m in wanted]
    try:
        with torch.no_grad(), preserved_buffers(model):
            run_model(model, batch, loss_fn)
    finally:
        for h in handles:
            h.remove()
    out = {}
    for m, pname in wanted.items():
        if pname not in seen:
            continue
        ids = torch.unique(torch.cat(seen[pname])).cpu()
        if m.padding_idx is not None:
            ids = ids[ids != m.padding_idx]
        out[pname] = ids
    return out


def used_entries(h: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    """The entries of ``h`` the statistic is taken over: all of them, or the ``rows`` of an embedding."""
    return (h if rows is None else h[rows.to(h.device)]).flatten()


def summary_row(name: str, h: torch.Tensor, rows: torch.Tensor | None, scale: float, method: str) -> dict:
    r"""One row of the R_med table for an exactly known diagonal ``h`` (``scale``: the largest
    ``|h|`` of the tensors measured together; the undefined rule of :func:`rmed_core.stats.undefined_reason`).

    Beside R_med it counts the used entries that are exactly zero (``n_zero``: under ReLU, the
    weights of a unit inactive on every input of the batch -- a dead unit -- have a zero gradient and
    a zero diagonal) and gives the median of the others (``h_median_active``, NaN when all are
    zero), so that :math:`h_{\max} / h_{\mathrm{med,active}}` is R_med over the active entries."""
    a = used_entries(h.detach().abs(), rows)
    top, mid = float(a.max()), float(median(a))
    why = undefined_reason(top, mid, scale, h.dtype)
    r = math.nan if why else ratio(top, mid)
    active = a[a != 0]
    return dict(layer=name, numel=h.numel(), n_used=a.numel(), r_med=r, undefined=why, method=method, lower=r,
                upper=r, confidence=math.nan, h_max=top, h_median=mid, n_zero=int(a.numel() - active.numel()),
                h_median_active=float(median(active)) if active.numel() else math.nan)
