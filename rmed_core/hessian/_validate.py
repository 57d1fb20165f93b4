"""Input checks shared by every Hessian routine: they run before any expensive work."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

#: ``(inputs, targets)``, or a dict of keyword inputs (:mod:`._forward`)
Batch = tuple[Any, Any] | dict[str, Any]
#: ``loss_fn(output, targets)`` -> the scalar mean loss; None: the model's own ``.loss``
LossFn = Callable[[Any, Any], torch.Tensor] | None


def leading(x: Any) -> int | None:
    """The sample dimension of a tensor, or of the first tensor of a sequence or dict (a dict's
    ``input_ids`` first): None when there is none."""
    if isinstance(x, torch.Tensor):
        return x.shape[0] if x.dim() > 0 else None
    if isinstance(x, dict):
        first = [x["input_ids"]] if "input_ids" in x else list(x.values())
        return next((n for n in map(leading, first) if n is not None), None)
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], torch.Tensor):
        return leading(x[0])
    return None


def tensors(x: Any) -> list[torch.Tensor]:
    """Every tensor in ``x`` (nested sequences and dicts)."""
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (list, tuple)):
        return [t for y in x for t in tensors(y)]
    if isinstance(x, dict):
        return [t for y in x.values() for t in tensors(y)]
    return []


def check_batch(batch: Batch, loss_fn: LossFn = None, *, needs_loss: bool = True) -> Batch:
    """``batch`` must be ``(inputs, targets)`` with the same leading (sample) dimension, or a dict
    of keyword inputs (:mod:`._forward`) holding ``labels`` when the loss is read from them
    (``loss_fn`` omitted: the model's own ``.loss``; or a ``loss_fn``: its targets)."""
    from ._forward import LABELS

    if isinstance(batch, dict):
        if not batch or not all(isinstance(k, str) for k in batch):
            raise ValueError("a dict batch holds the model's keyword inputs (e.g. input_ids, labels); got "
                             + ("an empty dict" if not batch else f"keys {list(batch)}"))
        if needs_loss and LABELS not in batch:
            use = ("loss_fn=None reads the model's own .loss, which a Hugging Face model computes only from "
                   "labels: add batch['labels'] (for a causal language model, the input ids: the model "
                   "shifts them), or give a loss_fn and the targets as batch['labels']") if loss_fn is None else                   "a loss_fn is called as loss_fn(output, batch['labels']): add batch['labels']"
            raise ValueError(f"the dict batch has no 'labels' (keys: {list(batch)}): {use}")
        n = leading(batch)
        if n == 0:
            raise ValueError("the batch is empty (0 samples): the loss of no data has no Hessian")
        return batch
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise ValueError(f"batch must be a pair (inputs, targets) or a dict of keyword inputs; got "
                         f"{type(batch).__name__}" + (f" of length {len(batch)}" if isinstance(batch, (tuple, list))
                                                      else ""))
    if loss_fn is None and needs_loss:
        raise ValueError("loss_fn=None reads the model's own .loss from a dict batch of keyword inputs with "
                         "labels (model(**batch).loss); with a batch (inputs, targets), give a loss_fn")
    inputs, targets = batch
    n_in, n_t = leading(inputs), leading(targets)
    if n_in is not None and n_t is not None and n_in != n_t:
        raise ValueError(f"batch size mismatch: inputs have {n_in} samples, targets have {n_t}")
    if n_in == 0 or n_t == 0:
        raise ValueError("the batch is empty (0 samples): the loss of no data has no Hessian")
    return batch


def select_params(model: nn.Module, params: Iterable[str] | str | None) -> dict[str, nn.Parameter]:
    """The named parameters to differentiate: ``params`` (names as in ``model.named_parameters()``)
    or, by default, all that require grad. Raises ``ValueError`` for unknown names (listing the
    valid ones), for a parameter that does not require grad, or when nothing is trainable."""
    named = dict(model.named_parameters())
    trainable = {k: p for k, p in named.items() if p.requires_grad}
    if params is None:
        if not trainable:
            raise ValueError(f"{type(model).__name__} has no trainable parameters (none requires grad)")
        return trainable
    if isinstance(params, str):
        params = [params]
    names = list(params)
    if not names:
        raise ValueError("params is empty: name at least one parameter")
    unknown = [n for n in names if n not in named]
    if unknown:
        raise ValueError(f"unknown parameter name(s) {unknown}; valid names: {sorted(named)}")
    frozen = [n for n in names if not named[n].requires_grad]
    if frozen:
        raise ValueError(f"parameter(s) {frozen} do not require grad")
    return {n: named[n] for n in dict.fromkeys(names)}


def check_loss(loss: torch.Tensor) -> torch.Tensor:
    """The loss must be a finite real scalar attached to the graph."""
    if not isinstance(loss, torch.Tensor):
        raise ValueError(f"loss_fn must return a torch.Tensor; got {type(loss).__name__}")
    if loss.numel() != 1:
        raise ValueError(f"loss_fn must return a scalar (the mean loss); got shape {tuple(loss.shape)}")
    if not torch.is_floating_point(loss):
        raise ValueError(f"the loss has dtype {loss.dtype}; a floating-point loss is needed")
    if not bool(torch.isfinite(loss)):
        raise ValueError(f"the loss is not finite ({float(loss.detach())}): the Hessian is undefined here")
    if not loss.requires_grad:
        raise ValueError("the loss does not depend on any parameter that requires grad")
    return loss.reshape(())


def check_dropout(model: nn.Module) -> None:
    """Active dropout makes the loss (and its Hessian) random: refuse it."""
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.training and m.p > 0:
            raise ValueError(f"module {name or type(model).__name__!r} ({type(m).__name__}, p={m.p}) is "
                             "active: the Hessian of a dropout loss is random. Call model.eval() first.")


def check_finite(diag: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for name, h in diag.items():
        if not bool(torch.isfinite(h).all()):
            bad = int((~torch.isfinite(h)).sum())
            raise ValueError(f"the Hessian diagonal of {name!r} has {bad} non-finite entries")
    return diag


def check_materialised(model: nn.Module, batch: Batch) -> None:
    """Parameters, buffers and inputs must hold data: a ``meta``-device tensor has only a shape."""
    for kind, named in (("parameter", model.named_parameters()), ("buffer", model.named_buffers())):
        for name, t in named:
            if t.is_meta:
                raise ValueError(f"{kind} {name!r} is on the meta device (a shape without values): the Hessian "
                                 "needs real weights; materialise the model first (model.to_empty(device=...) "
                                 "and load a state_dict)")
    for t in tensors(batch):
        if t.is_meta:
            raise ValueError("the batch is on the meta device (a shape without values); pass real tensors")
