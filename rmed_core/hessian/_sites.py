"""Layers whose output ``z`` is linear in their parameters ("sites" of the structured method).

Each site describes its output in a canonical layout ``(N, T, K)`` -- ``N`` independent samples
(or 1 when samples turn out coupled), ``T`` positions sharing the parameter (tokens, pixels),
``K`` output units -- and its input features ``A`` of shape ``(N, T, J)`` such that

* ``kind == "dense"``: ``z[n, t, i] = sum_j A[n, t, j] W[i, j] + b[i]``;
* ``kind == "diag"`` (``J == K``): ``z[n, t, i] = A[n, t, i] w[i] + b[i]``.

``W`` is the weight viewed as ``(K, J)``; :meth:`Site.matrix_to_param` maps such a matrix back to
the parameter's shape. The rule (``Site.rule``) says how the module computes:

============== ===================================================== =========================
rule           module                                                features ``A``
============== ===================================================== =========================
``linear``     ``nn.Linear``, or any module verified to compute       the input
               ``x W^T + b`` with its weight ``W`` of shape (K, J)
``transposed`` a module verified to compute ``x W + b``, ``W`` of     the input
               shape (J, K): Hugging Face's ``Conv1D`` (GPT-2)
``conv2d``     ``nn.Conv2d`` (zero padding, no groups)                unfolded patches
``embedding``  ``nn.Embedding`` (plain lookups)                       one-hot rows
``layernorm``  ``nn.LayerNorm`` over the last dimension               the normalised input
``affine``     a module verified to compute ``a * w + b`` elementwise the module's output at
               (a LayerNorm or RMSNorm written by hand)               ``w = 1, b = 0``
============== ===================================================== =========================

The first column's torch types are taken by exact type, in the configurations listed in
:func:`unsupported_reason`. A module of any other type (a subclass too: its ``forward`` may
differ) is a site only when what it computes is verified on the call the forward pass made
(:func:`verify`): its own parameters are exactly ``weight`` (2-D, or 1-D for elementwise) and
optionally ``bias``, it was called once on one positional tensor, and

1. rerun on the same input with fresh copies of its weight and bias (the only leaves; its buffers
   restored afterwards), it gives bitwise the output it gave in the forward pass;
2. that rerun's graph is affine in the copies (:func:`._graph.not_affine`: every node above them
   linear, or a product with a single factor depending on them) -- so the curvature of ``z`` in
   the parameters is an exact zero and its derivative a constant linear map;
3. that derivative is the rule's: at a Gaussian cotangent ``v`` the gradients of ``<v, z>`` are
   ``v^T x`` (or its transpose) and ``sum v`` for the bias (elementwise: ``sum v * a``, with
   ``a = z(w=1, b=0) - z(w=0, b=0)``), within the rounding of the sums; another linear map agrees
   at a random cotangent with probability zero. (Values are not enough: ``x @ (2W - W.detach()).T``
   has the value of a Linear and twice its derivative.)

No module carrying forward hooks or forward pre-hooks (on the module, or global ones: a hook can
change what the module computes) is a site; anything that is not goes to brute force, with the
reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ._graph import not_affine
from ._guards import preserved_buffers

SUPPORTED = (nn.Linear, nn.Conv2d, nn.Embedding, nn.LayerNorm)
#: the rule of each exactly supported type
RULES = {nn.Linear: "linear", nn.Conv2d: "conv2d", nn.Embedding: "embedding", nn.LayerNorm: "layernorm"}
#: rules whose weight is stored ``(J, K)``, the transpose of the ``(K, J)`` matrix of the module docstring
TRANSPOSED = ("transposed", "embedding")
#: the rule of a module of another type until :func:`verify` decides it
CANDIDATE = "candidate"


def hook_reason(m: nn.Module) -> str | None:
    """A forward hook or forward pre-hook on ``m`` (or on every module, globally) can change what
    the module computes, which the structured rules cannot see: say so, or None."""
    from torch.nn.modules import module as _module

    if _module._global_forward_hooks or _module._global_forward_pre_hooks:
        return "a global forward hook is registered (nn.modules.module.register_module_forward_hook)"
    if m._forward_hooks or m._forward_pre_hooks:
        return "it has a forward hook or forward pre-hook"
    return None


def own_parameters(m: nn.Module) -> dict[str, torch.Tensor]:
    return dict(m.named_parameters(recurse=False))


def unsupported_reason(m: nn.Module) -> str | None:
    """Why module ``m`` cannot be a site, or None if it can (a module of another type: if
    :func:`verify` confirms what it computes)."""
    t = type(m)
    hooked = hook_reason(m)
    if t not in SUPPORTED:
        own = own_parameters(m)
        w = own.get("weight")
        if set(own) - {"weight", "bias"} or w is None or w.dim() not in (1, 2) or \
                ("bias" in own and own["bias"].dim() != 1):
            return f"module type {t.__name__} has no structured rule (parameters {sorted(own)}; a module " \
                   "whose own parameters are a weight and a bias is recognised by what it computes)"
        return hooked
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
    rule: str                      # module docstring's table, or CANDIDATE until verified
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
    out: torch.Tensor | None = None     # the output (detached), kept for verify()
    #: the later use of this site's weight, when it is tied to another site (:mod:`._tied`)
    tie: Site | None = field(default=None, repr=False)
    #: on the later use of a tied weight: a zero ``(N, K, J)`` per-sample weight offset added to the
    #: output through the features, ``z += A dW[n]^T`` (its gradient: the per-sample weight gradient)
    dW: torch.Tensor | None = None
    _A: torch.Tensor | None = field(default=None, repr=False)

    @property
    def transposed(self) -> bool:
        """Is the weight stored ``(J, K)``?"""
        return self.rule in TRANSPOSED

    def canon(self, z: torch.Tensor) -> torch.Tensor:
        """Native ``(P, *z_shape)`` -> canonical ``(P, N, T, K)``."""
        P = z.shape[0]
        if self.rule == "conv2d":
            z = z.flatten(2).transpose(1, 2) if z.dim() == 4 else z.flatten(3).transpose(2, 3)
        return z.reshape(P, self.N, self.T, self.K)

    def native(self, c: torch.Tensor) -> torch.Tensor:
        """Canonical ``(P, N, T, K)`` -> native ``(P, *z_shape)``."""
        P = c.shape[0]
        if self.rule == "conv2d":
            n0, k, h, w = self.z_shape
            return c.reshape(P, n0, h * w, k).transpose(2, 3).reshape(P, n0, k, h, w)
        return c.reshape(P, *self.z_shape)

    def features(self) -> torch.Tensor:
        """Input features ``(N, T, J)`` with their graph (one-hot rows have none)."""
        m, x = self.module, self.x
        if self.rule == "conv2d":
            a = F.unfold(x, m.kernel_size, m.dilation, m.padding, m.stride).transpose(1, 2)
        elif self.rule == "embedding":
            a = F.one_hot(x, m.num_embeddings).to(m.weight.dtype)
        elif self.rule == "layernorm":
            a = F.layer_norm(x, m.normalized_shape, None, None, m.eps)
        elif self.rule == "affine":
            return self.A  # set by verify(): the module's output at w = 1, b = 0
        else:  # linear, transposed (and a candidate's dense input)
            a = x
        return a.reshape(self.N, self.T, -1)

    @property
    def A(self) -> torch.Tensor:
        """Input features ``(N, T, J)``, detached."""
        if self._A is None:
            self._A = self.features().detach()
        return self._A

    def merge_samples(self) -> None:
        """Treat the whole batch as one sample (used when the check finds samples coupled)."""
        A = self.A
        self.T, self.N, self.merged = self.N * self.T, 1, True
        self._A = A.reshape(1, self.T, -1)

    def matrix_to_param(self, Hw: torch.Tensor) -> torch.Tensor:
        """``(..., K, J)`` (dense) or ``(..., K)`` (diag) -> ``(..., *weight.shape)``."""
        w = self.module.weight
        lead = Hw.shape[:-2] if self.kind == "dense" else Hw.shape[:-1]
        if self.transposed:
            return Hw.transpose(-1, -2).contiguous()
        return Hw.reshape(*lead, *w.shape)

    def param_to_matrix(self, P: torch.Tensor) -> torch.Tensor:
        """``(..., *weight.shape)`` -> ``(..., K, J)``: the inverse of :meth:`matrix_to_param` (dense)."""
        w = self.module.weight
        lead = P.shape[:P.dim() - w.dim()]
        if self.transposed:
            return P.transpose(-1, -2)
        return P.reshape(*lead, self.K, -1)

    def flat_to_matrix(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat indices into the weight -> ``(i, j)`` in the ``(K, J)`` matrix (diag: ``(i, i)``)."""
        if self.kind == "diag":
            return flat, flat
        if self.transposed:
            return flat % self.K, flat // self.K
        J = self.module.weight.numel() // self.K
        return flat // J, flat % J


def make_site(module_name: str, m: nn.Module, rule: str, x: torch.Tensor, z: torch.Tensor) -> Site | None:
    """A site for one call of ``m`` on input ``x`` giving output ``z``, or None when the call is
    of a shape the rules do not cover (e.g. an unbatched Conv2d input)."""
    if rule == "conv2d":
        if x.dim() != 4:
            return None
        n, k = z.shape[0], z.shape[1]
        return Site(module_name, m, "dense", rule, x, z.shape, n, z.shape[2] * z.shape[3], k)
    if z.dim() < 1:
        return None
    k = z.shape[-1]
    lead = z.shape[:-1]
    n = lead[0] if len(lead) else 1
    t_ = int(torch.tensor(lead[1:]).prod()) if len(lead) > 1 else 1
    if rule == CANDIDATE:
        kind = "dense" if m.weight.dim() == 2 else "diag"
    else:
        kind = "diag" if rule == "layernorm" else "dense"
    return Site(module_name, m, kind, rule, x, z.shape, n, t_, k)


def verify(s: Site) -> str | None:
    """Decide the rule of a candidate site by what its module computed (module docstring, checks
    1-3): sets ``s.rule`` (and the features of an elementwise rule) and returns None, or returns
    why the module is not a site."""
    m, x, z = s.module, s.x, s.out
    own = own_parameters(m)
    W, b = own["weight"], own.get("bias")
    if not (isinstance(x, torch.Tensor) and x.is_floating_point() and x.dim() >= 1 and x.dtype == W.dtype):
        return f"module type {type(m).__name__}: its input is not a floating tensor of its weight's dtype"
    J, K = x.shape[-1], s.K
    if x.shape[:-1] != z.shape[:-1]:
        return f"module type {type(m).__name__}: its output {tuple(z.shape)} is not its input {tuple(x.shape)} " \
               "with the last dimension mapped"
    if s.kind == "dense":
        layouts = [r for r, shape in (("linear", (K, J)), ("transposed", (J, K))) if tuple(W.shape) == shape]
    else:
        layouts = ["affine"] if tuple(W.shape) == (K,) and J == K else []
    if not layouts or (b is not None and tuple(b.shape) != (K,)):
        return f"module type {type(m).__name__}: its weight {tuple(W.shape)} (bias " \
               f"{None if b is None else tuple(b.shape)}) does not map {J} input features to {K} outputs"
    xd = x.detach()

    def rerun(w: torch.Tensor, bias: torch.Tensor | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        leaves = {"weight": w.detach().clone().requires_grad_(True)}
        if bias is not None:
            leaves["bias"] = bias.detach().clone().requires_grad_(True)
        with torch.enable_grad(), preserved_buffers(m), torch.random.fork_rng(devices=[]):
            out = torch.func.functional_call(m, leaves, (xd,))
        return out, list(leaves.values())

    out, leaves = rerun(W, b)
    what = f"module type {type(m).__name__} is not a Linear or an elementwise affine map: "
    if not isinstance(out, torch.Tensor) or out.shape != z.shape or not torch.equal(out.detach(), z):
        return what + "rerun on its input with its own parameters, it does not give the output it gave"
    bad = not_affine(out, leaves)
    if bad:
        return what + f"its output is not affine in its parameters (its graph holds {bad})"
    # the derivative: at a Gaussian cotangent v, the gradients must be the rule's, e.g. v^T x for W
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(out)
    grads = torch.autograd.grad(out, leaves, v, allow_unused=True)
    eps, tiny = torch.finfo(W.dtype).eps, torch.finfo(W.dtype).tiny
    x2, v2 = xd.reshape(-1, J), v.reshape(-1, K)
    n_sum = x2.shape[0] + 1  # terms of each sum, for the rounding bound

    def matches(got: torch.Tensor | None, want: torch.Tensor, scale: torch.Tensor) -> bool:
        got = torch.zeros_like(want) if got is None else got
        return bool(((got - want).abs() <= 2 * n_sum * eps * scale + tiny).all())

    with torch.no_grad():
        bias_ok = b is None or matches(grads[1], v2.sum(0), v2.abs().sum(0))
        if s.kind == "diag":
            a = (rerun(torch.ones_like(W), torch.zeros_like(b) if b is not None else None)[0]
                 - rerun(torch.zeros_like(W), torch.zeros_like(b) if b is not None else None)[0]).detach()
            a2 = a.reshape(-1, K)
            if bias_ok and matches(grads[0], (v2 * a2).sum(0), (v2 * a2).abs().sum(0)):
                s.rule, s._A, s.out = "affine", a.reshape(s.N, s.T, s.K), None
                return None
        else:
            want, scale = v2.T @ x2, v2.abs().T @ x2.abs()           # (K, J): the rule's dL/dW
            for layout in layouts:
                w_want, w_scale = (want, scale) if layout == "linear" else (want.T, scale.T)
                if bias_ok and matches(grads[0], w_want, w_scale):
                    s.rule, s.out = layout, None
                    return None
    return what + "its parameters' gradient is not that of x W^T + b, x W + b or a * w + b (checked at a random " \
                  "cotangent)"
