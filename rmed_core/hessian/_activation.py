"""The curvature a layer's own activation adds to its Hessian: the residual term the Gauss-Newton
proxy leaves out, exact and nearly free.

For a layer ``z = W a + b`` whose output feeds an elementwise activation ``y = sigma(z)``, the
Hessian in ``z``-space splits (Schraudolph 2002; Martens 2020, sec. 8) as

.. math::

    \\frac{\\partial^2 L}{\\partial z^2} = G_z
      + \\operatorname{diag}\\Big(\\frac{\\partial L}{\\partial y} \\odot \\sigma''(z)\\Big) + (\\text{terms of later nonlinearities}),

where ``G_z`` is the Gauss-Newton part and the diagonal term is the activation's own, exact for
every sample and position. On a weight entry it gives

.. math::

    r_{ij} = \\sum_{n,t} \\frac{\\partial L}{\\partial y_{nti}}\\, \\sigma''(z_{nti})\\, a_{ntj}^2,

one first-order backward pass and one elementwise second derivative for every such layer at
once. Beside the sampled Gauss-Newton diagonal (:meth:`.StructuredHessian.sampled_gauss_newton`)
it makes a proxy ``G + r`` of the diagonal; the terms of nonlinearities further downstream are
still missing, so it only *ranks* (never gives a value). On the study model's MLP's first layer
(the four checkpoints of ``benchmarks/results/probe_activation.md``) ``|G + r|`` has a Spearman
correlation of 0.98 to 0.99 with ``|h|``, where ``G`` alone has 0.24 to 0.41.

The activation is recognised as a module whose forward pass received the layer's output tensor
itself: one of :data:`ELEMENTWISE` (a functional call such as ``F.gelu`` inside ``forward`` is not
seen, and such a layer simply has no term).
"""
from __future__ import annotations

import torch
from torch import nn

from ._guards import hooked_forward

__all__ = ["ELEMENTWISE", "activation_terms"]

#: Modules known to act elementwise on their input (their second derivative is taken by autograd).
ELEMENTWISE: tuple[type[nn.Module], ...] = (nn.GELU, nn.Tanh, nn.Sigmoid, nn.SiLU, nn.Softplus, nn.ELU, nn.CELU,
                                            nn.SELU, nn.Mish, nn.Softsign, nn.LogSigmoid, nn.ReLU, nn.LeakyReLU)


def activation_terms(model: nn.Module, loss_fn, batch, modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    """``dL/dy * sigma''(z)`` (module docstring) for every module of ``modules`` (name -> module)
    whose output is the input of an :data:`ELEMENTWISE` module, in that module's output layout;
    modules without one are absent. One forward and one first-order backward pass."""
    outs: dict[int, str] = {}
    pairs: dict[str, tuple[nn.Module, torch.Tensor, torch.Tensor]] = {}
    ids = {id(m): name for name, m in modules.items()}

    def on_layer(m, args, out):
        if isinstance(out, torch.Tensor) and id(m) in ids:
            outs[id(out)] = ids[id(m)]
            keep.append(out)  # the ids stay valid while the tensors live

    def on_activation(m, args, out):
        if args and isinstance(args[0], torch.Tensor) and id(args[0]) in outs and isinstance(out, torch.Tensor):
            name = outs[id(args[0])]
            if name not in pairs:  # the first use; a module called twice keeps its first call
                pairs[name] = (m, args[0], out)

    keep: list[torch.Tensor] = []
    handles = [m.register_forward_hook(on_layer) for m in modules.values()]
    handles += [m.register_forward_hook(on_activation) for m in model.modules() if isinstance(m, ELEMENTWISE)]
    fw = hooked_forward(model, loss_fn, batch, handles)
    if not pairs:
        return {}
    names = list(pairs)
    grads = torch.autograd.grad(fw.loss, [pairs[n][2] for n in names], allow_unused=True)
    terms = {}
    for name, gy in zip(names, grads):
        act, z, _ = pairs[name]
        if gy is None:
            continue
        zc = z.detach().requires_grad_(True)
        with torch.enable_grad():
            d1 = torch.autograd.grad(act(zc).sum(), zc, create_graph=True)[0]
            d2 = torch.autograd.grad(d1.sum(), zc, allow_unused=True)[0] if d1.requires_grad else None
        terms[name] = (gy.detach() * d2).detach() if d2 is not None else torch.zeros_like(zc.detach())
    return terms
