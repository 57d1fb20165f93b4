"""``hessian_diagonal``: the Hessian diagonal of a loss per parameter tensor, by method name."""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ._validate import Batch, LossFn, check_batch, check_dropout, check_finite, select_params
from .brute import brute_diagonal

METHODS = ("exact", "brute")


def hessian_diagonal(model: nn.Module, loss_fn: LossFn, batch: Batch, *, params: Iterable[str] | None = None,
                     method: str = "exact", chunk: int | None = None, info: dict | None = None,
                     **kw) -> dict[str, torch.Tensor]:
    """The diagonal of the Hessian of ``L = loss_fn(model(inputs), targets)`` restricted to each
    parameter tensor, ``h_k = d^2 L / d theta_k^2``.

    Args:
        model: any ``nn.Module``; dropout must be inactive (``model.eval()``). Attention through
            ``F.scaled_dot_product_attention`` (nanoGPT, ``nn.MultiheadAttention``,
            ``nn.TransformerEncoderLayer``, Hugging Face's default) runs on its twice-differentiable
            math backend during the engine's forward passes (:mod:`rmed_core.hessian._forward`).
        loss_fn: ``loss_fn(output, targets)`` must return the scalar (mean) loss; ``output`` is the
            model's output, or its ``logits`` when the model returns an output object (Hugging
            Face). ``None``: the model's own ``.loss`` (a dict batch with ``labels``).
        batch: ``(inputs, targets)`` (``inputs`` a tensor, or a dict of keyword inputs), or a dict
            of keyword inputs (Hugging Face: ``dict(input_ids=ids, labels=ids)``).
        params: parameter names as in ``model.named_parameters()`` (default: all requiring grad).
        method: ``"exact"`` -- structured exact method (:mod:`rmed_core.hessian.exact`): per layer,
            Hessian-vector products in the layer's *output* space, contracted with the layer's
            inputs; where the network downstream of a layer is verified piecewise linear, the
            Gauss-Newton shortcut (:mod:`rmed_core.hessian.ggn`, a few backward passes for all
            such layers; ``gauss_newton=False`` turns it off); falls back to ``"brute"`` for
            parameters it cannot treat exactly.
            ``"brute"`` -- one Hessian-vector product per entry (:mod:`rmed_core.hessian.brute`).
        chunk: products per vmapped backward pass (default: sized to free memory).
        info: if a dict, receives ``n_hvp`` (products spent), ``paths`` (how each tensor was done:
            ``"gauss-newton"``, ``"structured"``, ``"tied"`` -- a weight shared by two layers, as a
            tied head --, ``"brute"``) and, for ``"exact"``, ``fallback`` (why a tensor went to brute
            force: an unsupported or hooked module, a module whose computation is not verified to
            be a Linear layer, a weight used twice, ...).

    Returns:
        ``{name: tensor shaped like the parameter}`` (detached, the parameter's dtype/device).

    Raises:
        ValueError: bad batch (malformed, empty, on the meta device, too large for memory), a model
            on the meta device, unknown names, no trainable parameters, non-scalar or non-finite
            loss, a random forward pass (dropout modules, ``F.dropout(training=True)``, attention
            dropout in training mode, any draw from torch's generators, a loss that differs
            between two passes; the module named), non-finite Hessian entries.
        RuntimeError: a parameter whose loss passes through a ``@once_differentiable`` backward or
            a fused kernel whose backward has no derivative (no second derivative exists to
            compute); the module is named.

    Linear least squares, where the diagonal is known in closed form -- for
    ``L = mean_n (w . x_n + b - y_n)^2``, ``d^2 L / d w_j^2 = 2 mean_n x_nj^2`` and ``d^2 L / d b^2 = 2``:

    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Linear(3, 1).double()
    >>> x, y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
    >>> h = hessian_diagonal(model, torch.nn.functional.mse_loss, (x, y))
    >>> bool(torch.allclose(h["weight"], 2 * (x ** 2).mean(0, keepdim=True))), h["bias"].tolist()
    (True, [2.0])

    Warns:
        UserWarning: when the loss passes through a custom ``autograd.Function`` (its derivatives
            are its own claim; nothing is certified through it).

    The model is left as it was given: buffers a forward pass changes (BatchNorm's running
    statistics) are restored.
    """
    check_batch(batch, loss_fn)
    chosen = select_params(model, params)
    check_dropout(model)
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not known; use one of {METHODS} (the sampled estimate is "
                         "rmed_per_layer(..., method='sampled'): it estimates R_med, not the whole diagonal)")
    info = {} if info is None else info
    if method == "brute":
        out = brute_diagonal(model, loss_fn, batch, chosen, chunk=chunk, info=info)
    else:
        from .exact import exact_diagonal
        out = exact_diagonal(model, loss_fn, batch, chosen, chunk=chunk, info=info, **kw)
    return check_finite({n: out[n] for n in chosen})
