"""The reference: the Hessian diagonal by one Hessian-vector product per parameter entry.

For each requested tensor ``p`` the gradient ``g = dL/dp`` is built with ``create_graph=True``
and differentiated again along one-hot directions ``e_k`` (vmapped over chunks):

.. math::

    H_{kk} = e_k^\\top \\nabla_p (g^\\top e_k) = [\\nabla^2_p L\\, e_k]_k .

Cost: ``p.numel()`` HVPs per tensor (each about two gradients, over the part of the network that
depends on ``p``). Exact for any differentiable model (BatchNorm, shared weights, anything), which
is why the structured method falls back to it. See Pearlmutter (1994), *Fast exact
multiplication by the Hessian*.
"""
from __future__ import annotations

import torch
from torch import nn

from ._batched import BatchedGrad
from ._forward import forward
from ._guards import ForwardReference, check_custom_functions, check_twice_differentiable, preserved_buffers
from ._validate import Batch, LossFn


def brute_diagonal(model: nn.Module, loss_fn: LossFn, batch: Batch, params: dict[str, torch.Tensor],
                   *, chunk: int | None = None, info: dict | None = None,
                   verify: bool = True) -> dict[str, torch.Tensor]:
    """Exact Hessian diagonal of the loss (:mod:`._forward`) for each tensor in ``params`` (name -> parameter), by one-hot HVPs. ``info['n_hvp']`` counts the HVPs.

    ``verify`` (default): refuse a random forward pass (:class:`._guards.ForwardReference`) and
    check the graph for custom autograd.Functions (:func:`._guards.check_custom_functions`);
    the structured method, which has done both, passes False for its fallbacks. A gradient whose
    own graph holds a node that cannot be differentiated (torch's ``DelayedError``) raises torch's
    error naming the parameter; only a gradient with no graph at all means zero curvature."""
    where = (model, loss_fn, batch)
    ref = ForwardReference(*where) if verify else None
    with preserved_buffers(model):
        fw = forward(*where)
    loss, acts = fw.loss, fw.activations
    if ref is not None:
        ref.check(loss)
        check_custom_functions(loss, params, where)
    names, tensors = list(params), list(params.values())
    grads = torch.autograd.grad(loss, tensors, create_graph=True, allow_unused=True)
    check_twice_differentiable(dict(zip(names, grads)), where)
    out: dict[str, torch.Tensor] = {}
    n_hvp = 0
    for name, p, g in zip(names, tensors, grads):
        if g is None or not g.requires_grad:  # the loss is at most linear in p
            out[name] = torch.zeros_like(p, memory_format=torch.contiguous_format).detach()
            continue
        numel = p.numel()
        diag = torch.empty(numel, dtype=p.dtype, device=p.device)
        bg = BatchedGrad([g], [p], chunk, activations=acts)

        def make(s: int, e: int, numel: int = numel, p: torch.Tensor = p) -> list[torch.Tensor]:
            v = torch.zeros(e - s, numel, dtype=p.dtype, device=p.device)
            v[torch.arange(e - s), torch.arange(s, e)] = 1
            return [v.view(e - s, *p.shape)]

        def post(s: int, e: int, res: list[torch.Tensor], diag: torch.Tensor = diag, numel: int = numel) -> None:
            diag[s:e] = res[0].reshape(e - s, numel)[torch.arange(e - s), torch.arange(s, e)].detach()

        bg.map(numel, make, post)
        n_hvp += bg.n_calls
        out[name] = diag.view_as(p)
    if info is not None:
        info["n_hvp"] = info.get("n_hvp", 0) + n_hvp
        info.setdefault("paths", {}).update({n: "brute" for n in names})
    return out


def brute_entries(model: nn.Module, loss_fn: LossFn, batch: Batch, name: str, p: torch.Tensor,
                  flat: torch.Tensor, *, chunk: int | None = None) -> torch.Tensor:
    """Exact diagonal entries ``flat`` (flattened indices) of tensor ``p``: one HVP each."""
    with preserved_buffers(model):
        fw = forward(model, loss_fn, batch)
    (g,) = torch.autograd.grad(fw.loss, [p], create_graph=True, allow_unused=True)
    if g is None or not g.requires_grad:
        return torch.zeros(len(flat), dtype=p.dtype)
    check_twice_differentiable({name: g}, (model, loss_fn, batch))
    out = torch.empty(len(flat), dtype=p.dtype, device=p.device)
    flat = flat.to(p.device)

    def make(s: int, e: int) -> list[torch.Tensor]:
        v = torch.zeros(e - s, p.numel(), dtype=p.dtype, device=p.device)
        v[torch.arange(e - s), flat[s:e]] = 1
        return [v.view(e - s, *p.shape)]

    def post(s: int, e: int, res: list[torch.Tensor]) -> None:
        out[s:e] = res[0].reshape(e - s, -1)[torch.arange(e - s), flat[s:e]].detach()

    BatchedGrad([g], [p], chunk, activations=fw.activations).map(len(flat), make, post)
    return out

