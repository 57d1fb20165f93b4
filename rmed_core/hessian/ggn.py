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

* the residual is zero at the layers: either every autograd node between the layers and ``f``
  is of a kind whose second derivative autograd computes as an exact zero (linear maps, ReLU,
  max-pooling, products with one factor depending on the layers: a certificate read off the
  graph, :func:`structurally_residual_free`), or, numerically, with ``c = dL/df`` held fixed,
  ``R u`` -- the Hessian-vector product of ``<c, f(z)>`` -- is exactly zero for a Gaussian ``u``
  (a nonzero ``R`` has ``R u = 0`` with probability 0; no tolerance is involved);
* ``H_f`` and ``J`` do not couple samples (bit tests as in :mod:`.exact`; the test of ``J``
  rides in the same batched backward pass as the factor columns), so one backward pass serves all
  samples.

The shortcut is taken only for the layers that pass, and only when its ``P`` passes cost less than
the z-space probes those layers would need; everything else goes the structured way.
"""
from __future__ import annotations

import torch

from ._batched import BatchedGrad, bit_masks
from ._graph import LINEAR_NODES, PRODUCT_NODES, children, depends_on, leaf, topological
from ._sites import Site

#: largest per-sample output block (``T_f * C``) factored densely, and largest ``N * B^2`` (the
#: dense blocks of all samples held at once, in float64)
MAX_BLOCK = 4096
MAX_FACTOR_ENTRIES = 2**26


# Autograd nodes through which the residual is zero by construction (their second derivative, as
# autograd computes it, is an exact zero): linear maps (:data:`._graph.LINEAR_NODES`),
# piecewise-linear activations and pooling, and products in which only one factor depends on the
# layer outputs (:data:`._graph.PRODUCT_NODES`).
_PIECEWISE_NODES = frozenset("""ReluBackward0 ThresholdBackward0 LeakyReluBackward0 HardtanhBackward0
    MaxPool2DWithIndicesBackward0 MaxPool3DWithIndicesBackward0""".split())

# Nodes with a curvature of their own (a site behind one of them is not offered the shortcut:
# declining is always safe, the structured path is exact).
_CURVED_NODES = frozenset("""TanhBackward0 SigmoidBackward0 GeluBackward0 SiluBackward0 EluBackward0
    SoftplusBackward0 SoftmaxBackward0 LogSoftmaxBackward0 NativeLayerNormBackward0 NativeBatchNormBackward0
    CudnnBatchNormBackward0 ExpBackward0 LogBackward0 PowBackward0 PowBackward1 SqrtBackward0
    RsqrtBackward0 DivBackward0 ReciprocalBackward0""".split())


def structurally_residual_free(out: torch.Tensor, deltas: list[torch.Tensor]) -> list[bool | None]:
    """Per delta, read off the autograd graph between the ``deltas`` and ``out``: True when every
    node on every path from it to ``out`` is of a certified kind above (a product only with one
    factor depending on the deltas) -- then ``f`` is piecewise linear in it and the residual is
    exactly zero; False when it does not reach ``out``, or a path meets a curved node (a known
    curved kind, a custom ``autograd.Function``, or a product of two factors that depend on the
    deltas); None when undecided
    (a node of another kind): the numerical test decides."""
    order = topological([out])             # parents before children
    depends = depends_on(order, {id(d) for d in deltas})
    # worst verdict on any path from `out` down to each node: 0 clean, 1 undecided, 2 curved
    worst: dict = {}
    for fn in order:
        if not depends[fn]:
            continue
        kind = type(fn).__name__
        nexts = [n for n in children(fn) if depends.get(n, False)]
        if kind in PRODUCT_NODES:
            own = 2 if len(nexts) > 1 else 0
        elif kind in LINEAR_NODES or kind in _PIECEWISE_NODES:
            own = 0
        elif isinstance(fn, torch.autograd.function.BackwardCFunction):
            own = 2  # a custom autograd.Function: its derivatives are a claim, never certified through
        else:
            own = 2 if kind in _CURVED_NODES else 1
        w = max(worst.get(fn, 0), own)
        for n in nexts:
            worst[n] = max(worst.get(n, 0), w)
    leaves = {id(leaf(fn)): worst.get(fn, 0) for fn in order if depends[fn] and leaf(fn) is not None}
    verdict = {0: True, 1: None, 2: False}
    return [verdict[leaves[id(d)]] if id(d) in leaves else False for d in deltas]


class GaussNewton:
    """Verification and diagonal of the GGN shortcut for one captured forward pass.

    ``verify=False`` is a diagnostic only: the residual and sample-coupling checks are taken to
    pass (no products spent on them), to measure what they cost. Never correct in general."""

    def __init__(self, out: torch.Tensor, g_out: torch.Tensor | None, gen: torch.Generator, *, verify: bool = True):
        self.out, self.g_out, self._gen, self.verify = out, g_out, gen, verify
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
        zero? Decided from the graph's node kinds where possible
        (:func:`structurally_residual_free`); the undecided sites are tested numerically: ``R u``
        is the Hessian-vector product of ``phi = <c, f>`` with respect to their outputs ``z``
        jointly, at one Gaussian ``u``; site ``s`` passes when its block of
        ``R u`` is *exactly* zero (autograd propagates exact zeros through ReLU and max-pooling). A
        nonzero diagonal block ``R_ss`` gives a nonzero ``(R u)_s`` with probability 1; a nonzero
        off-diagonal block can only make a site fail that would have passed (never the reverse)."""
        if not self.verify:
            return [True] * len(sites)
        verdict = structurally_residual_free(self.out, [s.delta for s in sites])
        undecided = [i for i, v in enumerate(verdict) if v is None]
        if not undecided:
            return [bool(v) for v in verdict]
        deltas = [sites[i].delta for i in undecided]
        gphi = torch.autograd.grad(self.out, deltas, self.g_out.detach(), create_graph=True,
                                   allow_unused=True)
        self.n_vjp += 1
        reach = [g is not None for g in gphi]  # a z that does not reach the output cannot pass
        curved = [(g, d) for g, d in zip(gphi, deltas) if g is not None and g.requires_grad]
        if curved:
            us = [self._randn(g.shape, g) for g, _ in curved]
            ru = torch.autograd.grad([g for g, _ in curved], deltas, us, retain_graph=True, allow_unused=True)
            self.n_hvp += 1
            reach = [ok and (r is None or not bool((r != 0).any())) for ok, r in zip(reach, ru)]
        for i, ok in zip(undecided, reach):
            verdict[i] = ok
        return [bool(v) for v in verdict]

    def _bit_probes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Bit-test cotangents in output space: for each bit ``b`` of the sample index, a Gaussian
        ``v_b`` supported on the samples whose bit ``b`` is clear. Returns ``(keep, v)``,
        ``keep`` ``(bits, N)`` boolean, ``v`` ``(bits, *out.shape)``. A map that does not couple
        samples answers ``v_b`` with exact zeros on the samples where ``keep[b]`` is False; a
        coupled pair differs in some bit, and gives a nonzero response with probability 1."""
        n = self.out.shape[0]
        keep = bit_masks(n, self.out.device) if self.verify else torch.ones(0, n, dtype=torch.bool,
                                                                              device=self.out.device)
        shape = tuple(keep.shape) + (1,) * (self.out.dim() - 1)
        v = self._randn((len(keep), *self.out.shape), self.out) * keep.view(shape).to(self.out.dtype)
        return keep, v

    @staticmethod
    def _leaks(responses: list[torch.Tensor], keep: torch.Tensor) -> bool:
        """Does any response ``r[b]`` (one per bit probe) reach a sample outside ``keep[b]``?"""
        return any(bool((r[b][~keep[b]] != 0).any()) for r in responses for b in range(len(keep)))

    def _samples_separate(self, outputs: list[torch.Tensor], inputs: list[torch.Tensor]) -> bool:
        """The bit test (:meth:`_bit_probes`) of ``v -> grad(outputs, inputs, v)``."""
        keep, v = self._bit_probes()
        if not len(keep):
            return True
        leak = [False]
        bg = BatchedGrad(outputs, inputs)
        bg.map(len(keep), lambda a, e: [v[a:e]],
               lambda a, e, res: leak.__setitem__(0, leak[0] or self._leaks(res, keep[a:e])))
        self.n_hvp += bg.n_calls
        return not leak[0]

    # ---- the diagonal ------------------------------------------------------------------------
    def factor(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Per-sample loss Hessian blocks ``(N, B, B)`` -> ``(sqrt|lambda| U, sign(lambda))``, or
        None when the loss couples samples."""
        out, N, B = self.out, self.out.shape[0], self.block
        if not self._samples_separate([self.g_out], [out]):
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
        # One batched backward pass serves both the bit test that the network does not couple
        # samples (the first `nb` cotangents) and the B columns of the factors (the rest); the
        # columns' results are discarded if the test fails.
        keep, bits = self._bit_probes()
        nb = len(keep)
        cols = S.permute(2, 0, 1).reshape(B, *out.shape)
        leak = [False]
        bg = BatchedGrad([out], [s.delta for s in sites], chunk)

        def make(a: int, e: int) -> list[torch.Tensor]:
            return [torch.cat([bits[a:min(e, nb)], cols[max(a - nb, 0):max(e - nb, 0)]])]

        def post(a: int, e: int, res: list[torch.Tensor]) -> None:
            k = max(0, min(e, nb) - a)                            # bit probes in this chunk
            if k:
                leak[0] = leak[0] or self._leaks([r[:k] for r in res], keep[a:a + k])
            a, res = max(a, nb) - nb, [r[k:] for r in res]
            e = max(e - nb, 0)
            if e > a:
                accumulate(a, e, res)

        def accumulate(a: int, e: int, res: list[torch.Tensor]) -> None:
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

        bg.map(nb + B, make, post)
        self.n_vjp += bg.n_calls
        if leak[0]:
            return None
        result: dict[str, torch.Tensor] = {}
        for i, s in enumerate(sites):
            Hw, Hb = acc[i]
            if s.weight:
                result[s.weight] = s.matrix_to_param(Hw).detach()
            if s.bias:
                result[s.bias] = Hb.detach()
        return result
