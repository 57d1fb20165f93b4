"""Capturing the sites of one forward pass: which parameters the structured path can treat.

A forward hook on every module owning a requested parameter records its input and output (a
:class:`._sites.Site`) and adds a zero tensor ``delta`` to the output, through which z-space
products enter. A parameter goes to brute force instead, with the reason, when it is shared by
several modules or used more than once in the graph (edges into its ``AccumulateGrad`` node are
counted: tied weights, a module called twice, a functional re-use), when its module has no
structured rule, or when the module carries user hooks (:mod:`._sites`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._guards import ForwardReference, check_custom_functions, preserved_buffers
from ._sites import Site, make_site, unsupported_reason
from ._validate import Batch, LossFn, check_loss

__all__ = ["Capture", "capture_sites", "leaf_uses"]


def leaf_uses(root: torch.Tensor, leaves: list[torch.Tensor]) -> dict[int, int]:
    """How many graph edges lead from ``root``'s graph into each leaf (by ``id``)."""
    ids = {id(p) for p in leaves}
    count = {i: 0 for i in ids}
    seen, stack = set(), [root.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        for nxt, _ in fn.next_functions:
            if nxt is None:
                continue
            var = getattr(nxt, "variable", None)
            if var is not None and id(var) in ids:
                count[id(var)] += 1
            stack.append(nxt)
    return count


@dataclass
class Capture:
    """The sites of one forward pass (each with its requested ``weight``/``bias`` names), the
    loss and model output with their graph, the parameters left to brute force with the reason
    (``fallback``), and the parameters behind a custom ``autograd.Function`` (``custom``)."""

    sites: list[Site]
    loss: torch.Tensor
    output: object
    fallback: dict[str, str]
    custom: set[str]


def capture_sites(model: nn.Module, loss_fn: LossFn, batch: Batch, params: dict[str, torch.Tensor]) -> Capture:
    """One forward pass with hooks on the modules owning ``params`` (module docstring); the
    forward pass is checked deterministic and the model's buffers are restored."""
    fallback: dict[str, str] = {}
    owners: dict[int, list[tuple[str, nn.Module, str]]] = {}
    for mname, m in model.named_modules(remove_duplicate=False):
        for pname, p in m.named_parameters(recurse=False):
            owners.setdefault(id(p), []).append((mname, m, pname))
    wanted: dict[int, tuple[str, nn.Module]] = {}  # id(module) -> (module name, module)
    by_module: dict[int, dict[str, str]] = {}      # id(module) -> {"weight": param name, ...}
    for name, p in params.items():
        own = owners.get(id(p), [])
        if len({id(m) for _, m, _ in own}) != 1:
            fallback[name] = f"shared by {len(own)} modules" if own else "not owned by a module"
            continue
        mname, m, attr = own[0]
        why = unsupported_reason(m) or (None if attr in ("weight", "bias") else f"attribute {attr}")
        if why:
            fallback[name] = f"{mname or type(m).__name__}: {why}"
            continue
        wanted[id(m)] = (mname, m)
        by_module.setdefault(id(m), {})[attr] = name
    calls: dict[int, int] = {}
    sites: dict[int, Site] = {}

    def hook(m: nn.Module, inp, out):
        calls[id(m)] = calls.get(id(m), 0) + 1
        if calls[id(m)] > 1 or not isinstance(out, torch.Tensor) or not inp:
            return None
        s = make_site(wanted[id(m)][0], m, inp[0], out)
        if s is None:
            return None
        s.delta = torch.zeros_like(out, requires_grad=True)
        sites[id(m)] = s
        return out + s.delta

    ref = ForwardReference(model, loss_fn, batch)  # refuses a random forward pass
    handles = [m.register_forward_hook(hook) for _, m in wanted.values()]
    try:
        inputs, targets = batch
        with preserved_buffers(model):
            output = model(inputs)
            loss = check_loss(loss_fn(output, targets))
    finally:
        for h in handles:
            h.remove()
    ref.check(loss)
    #: parameters behind a custom autograd.Function: no shortcut is certified through one
    custom = check_custom_functions(loss, params)
    uses = leaf_uses(loss, list(params.values()))
    found: list[Site] = []
    for key, (mname, m) in wanted.items():
        names = by_module[key]
        s = sites.get(key)
        for attr, pname in names.items():
            if s is None or calls.get(key, 0) != 1:
                fallback[pname] = f"{mname}: called {calls.get(key, 0)} times in the forward pass"
            elif uses[id(params[pname])] != 1:
                fallback[pname] = f"{pname} is used {uses[id(params[pname])]} times in the graph"
            else:
                setattr(s, attr, pname)
        if s is not None and (s.weight or s.bias):
            found.append(s)
    return Capture(found, loss, output, fallback, custom)
