"""Reading autograd graphs: the one walk over ``grad_fn.next_functions`` every check uses.

A graph is read, never run: which leaves a root reaches and by how many edges (a parameter used
twice), which nodes lie between a root and some leaves (custom ``autograd.Function`` nodes, nodes
that refuse a second derivative, node kinds that certify a map linear), all from
:func:`topological`.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

__all__ = ["topological", "leaf", "children", "leaf_uses", "depends_on", "not_affine", "LINEAR_NODES",
           "PRODUCT_NODES"]

Node = Any  # a torch.autograd.graph.Node

#: node kinds linear in every input (their second derivative, as autograd computes it, is an exact zero)
LINEAR_NODES = frozenset("""AddBackward0 AddBackward1 SubBackward0 SubBackward1 NegBackward0 ViewBackward0
    ReshapeAliasBackward0 UnsafeViewBackward0 TBackward0 TransposeBackward0 PermuteBackward0 ExpandBackward0
    SumBackward0 SumBackward1 MeanBackward0 MeanBackward1 CloneBackward0 SelectBackward0 SliceBackward0
    CatBackward0 StackBackward0 SqueezeBackward0 SqueezeBackward1 UnsqueezeBackward0 AvgPool2DBackward0
    AvgPool3DBackward0 MulBackward1 DivBackward1""".split())
#: node kinds bilinear in their factors: linear in any one of them when the others are held fixed
PRODUCT_NODES = frozenset("""AddmmBackward0 MmBackward0 BmmBackward0 MvBackward0 AddmvBackward0
    BaddbmmBackward0 ConvolutionBackward0 MulBackward0""".split())
#: the input slots that are factors of a product node (the others are added: the bias of ``addmm``,
#: of a convolution); a layer norm is affine in its weight (slot 1) and bias (slot 2) when its input
#: (slot 0) is held fixed
_FACTOR_SLOTS = {"AddmmBackward0": (1, 2), "AddmvBackward0": (1, 2), "BaddbmmBackward0": (1, 2),
                 "ConvolutionBackward0": (0, 1), "NativeLayerNormBackward0": (1,)}


def children(fn: Node) -> list[Node]:
    """The nodes ``fn`` passes gradients to (its ``next_functions`` without the ``None`` slots)."""
    return [n for n, _ in fn.next_functions if n is not None]


def leaf(fn: Node) -> torch.Tensor | None:
    """The leaf tensor of an ``AccumulateGrad`` node, else None."""
    return getattr(fn, "variable", None)


def topological(roots: Iterable[torch.Tensor | Node | None], stop: set | None = None) -> list[Node]:
    """Every node reachable from ``roots`` (tensors, whose ``grad_fn`` is taken, or nodes), each
    once, parents before children. Nodes in ``stop`` are listed but not expanded. Iterative (a deep
    network's graph is deeper than Python's recursion limit)."""
    stop = stop or set()
    starts = [r.grad_fn if isinstance(r, torch.Tensor) else r for r in roots]
    order: list[Node] = []
    seen: set = set()
    stack = [(fn, False) for fn in starts if fn is not None]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)
            continue
        if fn in seen:
            continue
        seen.add(fn)
        stack.append((fn, True))
        if fn not in stop:
            stack.extend((n, False) for n in children(fn) if n not in seen)
    order.reverse()  # post-order reversed: parents before children
    return order


def leaf_uses(roots: Iterable[torch.Tensor], leaves: Iterable[torch.Tensor]) -> dict[int, int]:
    """How many graph edges lead from the graphs of ``roots`` into each leaf (by ``id``): a
    parameter used once in a forward pass has one."""
    count = {id(p): 0 for p in leaves}
    for fn in topological(roots):
        for n in children(fn):
            var = leaf(n)
            if var is not None and id(var) in count:
                count[id(var)] += 1
    return count


def depends_on(order: list[Node], targets: set[int]) -> dict[Node, bool]:
    """For nodes in topological ``order`` (parents first): does the node lie above a leaf whose
    ``id`` is in ``targets``?"""
    dep: dict[Node, bool] = {}
    for fn in reversed(order):  # children before parents
        var = leaf(fn)
        dep[fn] = id(var) in targets if var is not None else any(dep.get(n, False) for n in children(fn))
    return dep


def not_affine(root: torch.Tensor, leaves: list[torch.Tensor]) -> str | None:
    """Why ``root`` is not certified affine in ``leaves`` -- the kind of a node above them that is
    neither linear nor a product with a single factor depending on them -- or None when every
    such node is (then ``root`` is affine in the leaves jointly, by composition)."""
    order = topological([root])
    dep = depends_on(order, {id(t) for t in leaves})
    for fn in order:
        if not dep[fn] or leaf(fn) is not None:
            continue
        kind = type(fn).__name__
        if kind in LINEAR_NODES:
            continue
        slots = _FACTOR_SLOTS.get(kind, range(len(fn.next_functions)) if kind in PRODUCT_NODES else None)
        if slots is None:
            return kind
        nf = fn.next_functions
        if kind == "NativeLayerNormBackward0" and nf[0][0] is not None and dep.get(nf[0][0], False):
            return kind + " (its input depends on them)"
        if sum(1 for i in slots if i < len(nf) and nf[i][0] is not None and dep.get(nf[i][0], False)) > 1:
            return kind + " (a product of two factors that depend on them)"
    return None
