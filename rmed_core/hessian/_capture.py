"""Capturing the sites of one forward pass: which parameters the structured path can treat.

A forward hook on every module owning a requested parameter records its input and output (a
:class:`._sites.Site`) and adds a zero tensor ``delta`` to the output, through which z-space
products enter. A parameter goes to brute force instead, with the reason, when its module has no
structured rule (or, for a module of another type, what it computes is not verified:
:func:`._sites.verify`), carries user hooks, is called more than once, or when the parameter is
used more than once in the graph (edges into its ``AccumulateGrad`` node are counted: a module
called twice, a functional re-use) -- with one exception: a weight shared by two dense sites, each
called once (a token embedding tied to the output layer), is a *tied* weight (:mod:`._tied`). Its
later use also adds ``A dW[n]^T`` to its output, ``dW`` a zero per-sample weight offset, through
which the products of the earlier use see the curvature between the two.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._forward import Forward
from ._graph import leaf_uses
from ._guards import ForwardReference, check_custom_functions, hooked_forward
from ._sites import CANDIDATE, RULES, Site, make_site, unsupported_reason, verify
from ._validate import Batch, LossFn

__all__ = ["Capture", "capture_sites"]


@dataclass
class Capture:
    """The sites of one forward pass (each with its requested ``weight``/``bias`` names), the
    forward pass (loss and model output, with their graph), the parameters left to brute force
    with the reason (``fallback``), the parameters behind a custom ``autograd.Function``
    (``custom``), and the tied weights (name -> the earlier of its two sites, whose ``tie`` is the
    later)."""

    sites: list[Site]
    forward: Forward
    fallback: dict[str, str]
    custom: set[str]
    tied: dict[str, Site]


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
    pairs: dict[str, list[int]] = {}               # tied weight -> ids of its two modules
    partner: dict[int, int] = {}                   # id(module) -> id(the other module of its tied weight)
    for name, p in params.items():
        own = list({id(m): (mn, m, a) for mn, m, a in owners.get(id(p), [])}.values())
        if not own:
            fallback[name] = "not owned by a module"
            continue
        if len(own) > 2 or (len(own) == 2 and any(a != "weight" for _, _, a in own)):
            fallback[name] = f"shared by {len(own)} modules"
            continue
        why = next((f"{mn or type(m).__name__}: {w}" for mn, m, a in own
                    for w in [unsupported_reason(m) or (None if a in ("weight", "bias") else f"attribute {a}")] if w),
                   None)
        if why:
            fallback[name] = why
            continue
        for mn, m, a in own:
            wanted[id(m)] = (mn, m)
            by_module.setdefault(id(m), {})[a] = name
        if len(own) == 2:
            pairs[name] = [id(m) for _, m, _ in own]
            partner[pairs[name][0]], partner[pairs[name][1]] = pairs[name][1], pairs[name][0]
    calls: dict[int, int] = {}
    sites: dict[int, Site] = {}
    order: list[int] = []  # modules in the order of their first call

    def hook(m: nn.Module, args, kwargs, out):
        calls[id(m)] = calls.get(id(m), 0) + 1
        if calls[id(m)] > 1 or not isinstance(out, torch.Tensor) or not args:
            return None
        rule = RULES.get(type(m), CANDIDATE)
        if rule == CANDIDATE and (kwargs or len(args) != 1):
            return None
        s = make_site(wanted[id(m)][0], m, rule, args[0], out)
        if s is None:
            return None
        if rule == CANDIDATE:
            s.out = out.detach()
        s.delta = torch.zeros_like(out, requires_grad=True)
        sites[id(m)] = s
        order.append(id(m))
        z = out + s.delta
        first = sites.get(partner.get(id(m)))
        if first is not None and s.kind == first.kind == "dense" and "conv2d" not in (s.rule, first.rule):
            # the later use of a tied weight: a per-sample weight offset (zero) through the features
            s.dW = torch.zeros(s.N, s.K, s.features().shape[-1], dtype=out.dtype, device=out.device,
                               requires_grad=True)
            first.tie = s
            z = z + s.native(torch.einsum("ntj,nkj->ntk", s.features(), s.dW)[None])[0]
        return z

    ref = ForwardReference(model, loss_fn, batch)  # refuses a random forward pass
    fw = hooked_forward(model, loss_fn, batch, [m.register_forward_hook(hook, with_kwargs=True)
                                                for _, m in wanted.values()])
    ref.check(fw.loss)
    #: parameters behind a custom autograd.Function: no shortcut is certified through one
    custom = check_custom_functions(fw.loss, params, (model, loss_fn, batch))
    uses = leaf_uses([fw.loss], list(params.values()))
    bad: dict[int, str] = {}  # id(module) -> why it is not a site
    for key, (mname, m) in wanted.items():
        s = sites.get(key)
        if calls.get(key, 0) != 1:
            bad[key] = f"{mname}: called {calls.get(key, 0)} times in the forward pass"
        elif s is None:
            bad[key] = f"{mname}: its call is not of a form the rules cover (a tensor in, one positional " \
                       "argument for a module of another type, a tensor out)"
        elif s.rule == CANDIDATE:
            why = verify(s)
            if why:
                bad[key] = f"{mname}: {why}"
    tied: dict[str, Site] = {}
    for name, ids in pairs.items():
        first, later = (None, None)
        if all(i in order for i in ids):
            first, later = (sites[i] for i in sorted(ids, key=order.index))
        why = bad.get(ids[0]) or bad.get(ids[1])
        if not why and (first is None or first.tie is not later or later.dW is None):
            why = "tied between two modules that are not both dense layers called once"
        if not why and uses[id(params[name])] != 2:
            why = f"{name} is used {uses[id(params[name])]} times in the graph"
        if why:
            fallback[name] = why
            if first is not None:
                first.tie = None
            continue
        tied[name] = first
    found: list[Site] = []
    for key, (mname, m) in wanted.items():
        s = sites.get(key)
        for attr, pname in by_module[key].items():
            if pname in fallback:
                continue
            if key in bad:
                fallback[pname] = bad[key]
            elif pname not in tied and uses[id(params[pname])] != 1:
                fallback[pname] = f"{pname} is used {uses[id(params[pname])]} times in the graph"
            else:
                setattr(s, attr, pname)
        if s is not None and (s.weight or s.bias):
            found.append(s)
    return Capture(found, fw, fallback, custom, tied)
