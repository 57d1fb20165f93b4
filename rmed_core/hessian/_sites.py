"""Layers whose output ``z`` is linear in their parameters ("sites" of the structured method).

Each site describes its output in a canonical layout ``(N, T, K)`` -- ``N`` independent samples
(or 1 when samples turn out coupled), ``T`` positions sharing the parameter (tokens, pixels),
``K`` output units -- and its input features ``A`` of shape ``(N, T, J)`` such that

* ``kind == "dense"`` (Linear, Conv2d via unfolded patches, Embedding via one-hot rows):
  ``z[n, t, i] = sum_j A[n, t, j] W[i, j] + b[i]``;
* ``kind == "diag"`` (LayerNorm's affine; ``J == K``): ``z[n, t, i] = A[n, t, i] w[i] + b[i]``.

``W`` is the weight viewed as ``(K, J)`` (``weight_view`` maps such a matrix back to the
parameter's shape). Only exact module types are accepted (no subclasses: their ``forward`` may
differ) in the configurations listed in :func:`make_site`, and only without forward hooks or
forward pre-hooks (on the module, or global ones: a hook can change what the module computes);
anything else goes to brute force, with the reason (:func:`unsupported_reason`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

SUPPORTED = (nn.Linear, nn.Conv2d, nn.Embedding, nn.LayerNorm)


def hook_reason(m: nn.Module) -> str | None:
    """A forward hook or forward pre-hook on ``m`` (or on every module, globally) can change what
    the module computes, which the structured rules cannot see: say so, or None."""
    from torch.nn.modules import module as _module

    if _module._global_forward_hooks or _module._global_forward_pre_hooks:
        return "a global forward hook is registered (nn.modules.module.register_module_forward_hook)"
    if m._forward_hooks or m._forward_pre_hooks:
        return "it has a forward hook or forward pre-hook"
    return None


def unsupported_reason(m: nn.Module) -> str | None:
    """Why module ``m`` cannot be a site, or None if it can."""
    t = type(m)
    if t not in SUPPORTED:
        return f"module type {t.__name__} has no structured rule"
    hooked = hook_reason(m)
    if hooked:
        return hooked
    if t is nn.Conv2d:
        if m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str):
            return "Conv2d with groups, non-zero padding mode or string padding"
    if t is nn.Embedding and (m.padding_idx is not None or m.max_norm is not None or m.sparse
                              or m.scale_grad_by_freq):
        return "Embedding with padding_idx, max_norm, scale_grad_by_freq or sparse gradients"
    if t is nn.LayerNorm and (len(m.normalized_shape) != 1 or not m.elementwise_affine):
        return "LayerNorm over more than one dimension"
    return None


@dataclass
class Site:
    """One module call, captured by a forward hook."""
    module_name: str
    module: nn.Module
    kind: str                      # "dense" | "diag"
    x: torch.Tensor                # the module's input
    z_shape: torch.Size            # the module's output shape (native)
    N: int
    T: int
    K: int
    weight: str | None = None      # parameter names (None if not requested)
    bias: str | None = None
    delta: torch.Tensor | None = None   # zero tensor added to the output
    g: torch.Tensor | None = None       # dL/dz (with graph)
    merged: bool = False                # samples were found coupled and merged into T
    positions_independent: bool | None = None  # d^2L/dz^2 block-diagonal over positions (once checked)
    _A: torch.Tensor | None = field(default=None, repr=False)

    def canon(self, z: torch.Tensor) -> torch.Tensor:
        """Native ``(P, *z_shape)`` -> canonical ``(P, N, T, K)``."""
        P = z.shape[0]
        if type(self.module) is nn.Conv2d:
            z = z.flatten(2).transpose(1, 2) if z.dim() == 4 else z.flatten(3).transpose(2, 3)
        return z.reshape(P, self.N, self.T, self.K)

    def native(self, c: torch.Tensor) -> torch.Tensor:
        """Canonical ``(P, N, T, K)`` -> native ``(P, *z_shape)``."""
        P = c.shape[0]
        if type(self.module) is nn.Conv2d:
            n0, k, h, w = self.z_shape
            return c.reshape(P, n0, h * w, k).transpose(2, 3).reshape(P, n0, k, h, w)
        return c.reshape(P, *self.z_shape)

    @property
    def A(self) -> torch.Tensor:
        """Input features ``(N, T, J)``."""
        if self._A is None:
            m, x = self.module, self.x
            if type(m) is nn.Linear:
                a = x
            elif type(m) is nn.Conv2d:
                a = F.unfold(x, m.kernel_size, m.dilation, m.padding, m.stride).transpose(1, 2)
            elif type(m) is nn.Embedding:
                a = F.one_hot(x, m.num_embeddings).to(m.weight.dtype)
            else:  # LayerNorm: the normalised input
                a = F.layer_norm(x, m.normalized_shape, None, None, m.eps)
            self._A = a.detach().reshape(self.N, self.T, -1)
        return self._A

    def merge_samples(self) -> None:
        """Treat the whole batch as one sample (used when the check finds samples coupled)."""
        A = self.A
        self.T, self.N, self.merged = self.N * self.T, 1, True
        self._A = A.reshape(1, self.T, -1)

    def weight_matrix_to_param(self, Hw: torch.Tensor) -> torch.Tensor:
        """``(K, J)`` (dense) or ``(K,)`` (diag) -> the weight's shape."""
        w = self.module.weight
        if type(self.module) is nn.Embedding:
            return Hw.T.contiguous()
        return Hw.reshape(w.shape)


def make_site(module_name: str, m: nn.Module, x: torch.Tensor, z: torch.Tensor) -> Site | None:
    """A site for one call of ``m`` on input ``x`` giving output ``z``, or None when the call is
    of a shape the rules do not cover (e.g. an unbatched Conv2d input)."""
    t = type(m)
    if t is nn.Conv2d:
        if x.dim() != 4:
            return None
        n, k = z.shape[0], z.shape[1]
        return Site(module_name, m, "dense", x, z.shape, n, z.shape[2] * z.shape[3], k)
    if z.dim() < 1:
        return None
    k = z.shape[-1]
    lead = z.shape[:-1]
    n = lead[0] if len(lead) else 1
    t_ = int(torch.tensor(lead[1:]).prod()) if len(lead) > 1 else 1
    kind = "diag" if t is nn.LayerNorm else "dense"
    return Site(module_name, m, kind, x, z.shape, n, t_, k)
