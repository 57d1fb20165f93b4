"""Custom autograd Functions the engine must see through or refuse: imported by the tests of this
folder (pytest puts the folder on ``sys.path``)."""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


class Cube(torch.autograd.Function):
    """x -> x^3 with a backward that detaches: autograd sees no second derivative through it."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x.detach() ** 2 * g


class CubeOnce(Cube):
    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x ** 2 * g
