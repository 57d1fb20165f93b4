"""The Gauss-Newton shortcut: an exact diagonal in a few first-order backward passes when the
network downstream of a layer is piecewise linear.

With ``f`` the network output and ``L = loss(f)``, the Hessian in a layer's output space splits
into the generalized Gauss-Newton part and a residual (Schraudolph 2002; Martens 2020, sec. 8):

.. math::

    \\frac{\\partial^2 L}{\\partial z^2} = J^\\top H_f J
      + \\sum_m \\frac{\\partial L}{\\partial f_m} \\frac{\\partial^2 f_m}{\\partial z^2},
    \\qquad J = \\frac{\\partial f}{\\partial z},\\; H_f = \\frac{\\partial^2 L}{\\partial f^2}.

When everything between ``z`` and ``f`` is piecewise linear (Linear, Conv, ReLU, max-pooling,
flattening...) the residual is zero and the Hessian *is* the GGN. Factor the loss Hessian of each
sample, ``H_f[n] = U_n diag(lambda_n) U_n^T``, and write ``s_{n,k} = sqrt|lambda_{n,k}| U_n[:, k]``;
then for ``z[n,t,i] = sum_j A[n,t,j] W[i,j] + b[i]``

.. math::

    \\frac{\\partial^2 L}{\\partial W_{ij}^2}
      = \\sum_{n,k} \\operatorname{sign}(\\lambda_{n,k})
        \\Big(\\sum_t A_{ntj}\\, V_k[n,t,i]\\Big)^2, \\qquad V_k = J^\\top s_{\\cdot,k},

so ``P = T_f C`` first-order backward passes (one per column ``k`` of the per-sample factor, all
samples at once) give the diagonal of *every* such layer together -- the construction behind
BackPACK's ``DiagGGNExact`` (Dangel, Kunstner & Hennig 2020), here for any module graph.

Nothing is assumed, everything used is verified:

* the residual is zero at the layers: with ``c = dL/df`` held fixed, ``R u`` is the
  Hessian-vector product of ``<c, f(z)>``, and it must be exactly zero for a Gaussian ``u`` (a
  nonzero ``R`` has ``R u = 0`` with probability 0; autograd's second derivative of ReLU and
  max-pooling is an exact zero, so no tolerance is involved);
* ``H_f`` and ``J`` do not couple samples (bit tests as in :mod:`.exact`), so one backward pass
  serves all samples.

The shortcut is taken only for the layers that pass, and only when its ``P`` passes cost less than
the z-space probes those layers would need; everything else goes the structured way.
"""
from __future__ import annotations

import math

import torch

from ._batched import BatchedGrad
from ._sites import Site

#: largest per-sample output block (``T_f * C``) factored densely, and largest ``N * B^2`` (the
#: dense blocks of all samples held at once, in float64)
MAX_BLOCK = 4096
MAX_FACTOR_ENTRIES = 2**26


class GaussNewton:
    """Verification and diagonal of the GGN shortcut for one captured forward pass."""

    def __init__(self, out: torch.Tensor, g_out: torch.Tensor | None, gen: torch.Generator):
        self.out, self.g_out, self._gen = out, g_out, gen
        self.n_hvp = 0  # second-order products (checks, loss Hessian)
        self.n_vjp = 0  # first-order backward passes

    # ---- availability ------------------------------------------------------------------------
    @property
    def block(self) -> int:
        """Size ``T_f * C`` of one sample's output block."""
        return self.out[0].numel() if self.out.dim() > 0 else 0

    def usable(self) -> bool:
        o = self.out
        return (self.g_out is not None and self.g_out.requires_grad and o.dim() >= 1 and o.shape[0] >= 1
                and 0 < self.block <= MAX_BLOCK and o.shape[0] * self.block ** 2 <= MAX_FACTOR_ENTRIES)

    def _randn(self, shape, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(shape, generator=self._gen, dtype=torch.float64).to(like.dtype).to(like.device)

    def residual_free(self, sites: list[Site]) -> list[bool]:
        """Per site: is the residual ``R = sum_m c_m d^2 f_m / dz^2`` (``c = dL/df`` held fixed)
        zero? ``R u`` is the Hessian-vector product of ``phi = <c, f>`` with respect to the outputs
        ``z`` of all ``sites`` jointly, at one Gaussian ``u``; site ``s`` passes when its block of
        ``R u`` is *exactly* zero (autograd propagates exact zeros through ReLU and max-pooling). A
        nonzero diagonal block ``R_ss`` gives a nonzero ``(R u)_s`` with probability 1; a nonzero
        off-diagonal block can only make a site fail that would have passed (never the reverse)."""
        deltas = [s.delta for s in sites]
        gphi = torch.autograd.grad(self.out, deltas, self.g_out.detach(), create_graph=True,
                                   allow_unused=True)
        self.n_vjp += 1
        reach = [g is not None for g in gphi]  # a z that does not reach the output cannot pass
        curved = [(g, d) for g, d in zip(gphi, deltas) if g is not None and g.requires_grad]
        if not curved:  # no second-order path at all
            return reach
        us = [self._randn(g.shape, g) for g, _ in curved]
        ru = torch.autograd.grad([g for g, _ in curved], deltas, us, retain_graph=True, allow_unused=True)
        self.n_hvp += 1
        return [ok and (r is None or not bool((r != 0).any())) for ok, r in zip(reach, ru)]

    def _samples_separate(self, outputs: list[torch.Tensor], inputs: list[torch.Tensor], second: bool) -> bool:
        """Bit test: a random cotangent on the samples whose index has bit ``b`` clear gives an
        exactly zero response on the samples where it is set, for every bit ``b``."""
        n = self.out.shape[0]
        bits = math.ceil(math.log2(n)) if n > 1 else 0
        if bits == 0:
            return True
        idx = torch.arange(n, device=self.out.device)
        keep = torch.stack([((idx >> b) & 1) == 0 for b in range(bits)])          # (bits, n)
        shape = (bits, n) + (1,) * (self.out.dim() - 1)
        v = self._randn((bits, *self.out.shape), self.out) * keep.view(shape).to(self.out.dtype)
        ok = [True]

        def post(a: int, e: int, res: list[torch.Tensor]) -> None:
            for r in res:
                for b in range(a, e):
                    if bool((r[b - a][~keep[b]] != 0).any()):
                        ok[0] = False

        bg = BatchedGrad(outputs, inputs)
        bg.map(bits, lambda a, e: [v[a:e]], post)
        if second:
            self.n_hvp += bg.n_calls
        else:
            self.n_vjp += bg.n_calls
        return ok[0]

    # ---- the diagonal ------------------------------------------------------------------------
    def factor(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Per-sample loss Hessian blocks ``(N, B, B)`` -> ``(sqrt|lambda| U, sign(lambda))``, or
        None when the loss couples samples."""
        out, N, B = self.out, self.out.shape[0], self.block
        if not self._samples_separate([self.g_out], [out], second=True):
            return None
        cols = torch.zeros(N, B, B, dtype=out.dtype, device=out.device)
        bg = BatchedGrad([self.g_out], [out])

        def make(a: int, e: int) -> list[torch.Tensor]:
            v = torch.zeros(e - a, N, B, dtype=out.dtype, device=out.device)
            v[torch.arange(e - a), :, torch.arange(a, e)] = 1
            return [v.reshape(e - a, *out.shape)]

        def post(a: int, e: int, r: list[torch.Tensor]) -> None:
            cols[:, :, a:e] = r[0].reshape(e - a, N, B).permute(1, 2, 0)

        bg.map(B, make, post)
        self.n_hvp += bg.n_calls
        h = 0.5 * (cols + cols.transpose(1, 2)).double()
        lam, U = torch.linalg.eigh(h)
        S = (U * lam.abs().sqrt().unsqueeze(1)).to(out.dtype)   # columns s_{n,k}
        return S, torch.sign(lam).to(out.dtype)                 # (N, B, B), (N, B)

    def diagonals(self, sites: list[Site], chunk: int | None = None) -> dict[str, torch.Tensor] | None:
        """Diagonals of the weights and biases of ``sites`` (all verified residual-free), or None
        when a sample-coupling check fails."""
        if not self._samples_separate([self.out], [s.delta for s in sites], second=False):
            return None
        fac = self.factor()
        if fac is None:
            return None
        S, sign = fac
        out, N, B = self.out, self.out.shape[0], self.block
        acc: dict[int, list[torch.Tensor]] = {}
        for i, s in enumerate(sites):
            J = s.A.shape[-1]
            Hw = torch.zeros((s.K, J) if s.kind == "dense" else (s.K,), dtype=out.dtype, device=out.device)
            acc[i] = [Hw, torch.zeros(s.K, dtype=out.dtype, device=out.device)]
        bg = BatchedGrad([out], [s.delta for s in sites], chunk)

        def make(a: int, e: int) -> list[torch.Tensor]:
            return [S[:, :, a:e].permute(2, 0, 1).reshape(e - a, *out.shape)]

        def post(a: int, e: int, res: list[torch.Tensor]) -> None:
            sg = sign[:, a:e].T                                   # (P, N)
            for i, (s, r) in enumerate(zip(sites, res)):
                V = s.canon(r)                                    # (P, N, T, K)
                Hw, Hb = acc[i]
                if s.bias:
                    m = V.sum(2)
                    Hb += torch.einsum("pn,pnk->k", sg, m * m)
                if not s.weight:
                    continue
                A = s.A.to(V.dtype)
                if s.T == 1:  # (A_nj V_ni)^2 = A_nj^2 V_ni^2: no (N, K, J) tensor needed
                    w = torch.einsum("pn,pnk->nk", sg, V[:, :, 0] ** 2)
                    Hw += w.T @ (A[:, 0] ** 2) if s.kind == "dense" else (w * A[:, 0] ** 2).sum(0)
                    continue
                for p in range(e - a):
                    if s.kind == "dense":
                        M = torch.bmm(V[p].transpose(1, 2), A)    # (N, K, J): sum_t V A
                        Hw += torch.einsum("n,nij->ij", sg[p], M * M)
                    else:
                        M = (V[p] * A).sum(1)
                        Hw += sg[p] @ (M * M)

        bg.map(B, make, post)
        self.n_vjp += bg.n_calls
        result: dict[str, torch.Tensor] = {}
        for i, s in enumerate(sites):
            Hw, Hb = acc[i]
            if s.weight:
                result[s.weight] = s.weight_matrix_to_param(Hw).detach()
            if s.bias:
                result[s.bias] = Hb.detach()
        return result
