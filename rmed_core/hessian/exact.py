"""Structured exact Hessian diagonal: Hessian-vector products in each layer's output space.

For a layer whose output ``z`` (canonical ``(N, T, K)``, see :mod:`._sites`) is linear in its
weight, ``z[n,t,i] = sum_j A[n,t,j] W[i,j] + b[i]``, and whose weight is used nowhere else, the
loss depends on ``W`` only through ``z``, so (chain rule, ``z`` linear in ``W``)

.. math::

    \\frac{\\partial^2 L}{\\partial W_{ij}^2}
      = \\sum_{n} \\sum_{t,t'} A_{ntj} A_{nt'j} \\, B_{n,i}[t,t'],
    \\qquad B_{n,i}[t,t'] = \\frac{\\partial^2 L}{\\partial z_{nti}\\,\\partial z_{nt'i}} .

``B`` is reached with Hessian-vector products in ``z``-space: a zero tensor ``delta`` is added to
the layer's output by a forward hook, ``g = dL/d delta`` is built once (``create_graph=True``)
for all layers, and ``grad(g, delta, u)`` = ``(d^2 L / dz^2) u`` traverses only the network
downstream of the layer. Three exact probe sets, the cheapest applicable one is used:

(a) ``K`` probes ``u_i = 1 (x) e_i`` when ``d^2L/dz^2`` is block-diagonal over samples *and*
    positions (an output layer under a per-token loss; any layer with ``T == 1``): then
    ``(H u_i)[n,t,i] = B_{n,i}[t,t]`` and ``H_W[i,j] = sum_{n,t} A_{ntj}^2 B_{n,i}[t,t]``;
(b) ``T K`` probes ``e_t (x) e_i`` (shared by all samples): columns of every ``B_{n,i}``;
(c) ``J K`` probes ``A_{.,.,j} (x) e_i`` (each sample its own): ``H_W[i,j] = <u, H u>``.

Samples are only probed together when ``d^2L/dz^2`` is *verified* block-diagonal over samples
(positions, for (a)): for each bit ``b`` of the sample index, one Gaussian probe supported on the
samples whose bit ``b`` is 0 must give an exactly zero response on those whose bit is 1
(``ceil(log2 N)`` products; a coupled pair differs in some bit, and a nonzero block gives a
nonzero response with probability 1). Coupled samples (BatchNorm in training mode, a loss that
mixes samples) are merged into one sample of ``N T`` positions -- still exact, just more probes.

Capturing the sites (:mod:`._capture`): a parameter used more than once in the graph (a module
called twice, a functional re-use) is detected by counting the graph's edges into its
``AccumulateGrad`` node and goes to :mod:`.brute`, as do parameters of unsupported modules (reason
in ``info['fallback']``); a weight tied between two dense layers (a token embedding and the
output layer) is exact from the products of its two uses (:mod:`._tied`).
Bias: ``H_b[i] = sum_n 1^T B_{n,i} 1`` from the same products (or ``K`` probes ``1 (x) e_i``).

Nothing is certified through a custom ``autograd.Function`` (its derivatives are its own claim):
a layer whose loss passes through one gets neither the sample/position bit tests nor the
Gauss-Newton shortcut (its samples are merged), and a warning names the function; a
``@once_differentiable`` one raises (:func:`._guards.check_custom_functions`). The forward pass
is checked to be deterministic and the model's buffers are restored after it
(:class:`._guards.ForwardReference`, :func:`._guards.preserved_buffers`).

Before any of this, layers whose downstream network is verified piecewise linear (ReLU MLPs and
CNNs) take the Gauss-Newton shortcut of :mod:`.ggn` when it is cheaper: ``T_f C`` first-order
backward passes for all of them together instead of ``K`` or more products each.
"""
from __future__ import annotations

import torch
from torch import nn

from ._batched import BatchedGrad, bit_masks
from ._capture import capture_sites
from ._guards import check_twice_differentiable
from ._sites import Site
from ._tied import cross_entries, cross_rows
from ._validate import Batch, LossFn
from .brute import brute_diagonal
from .ggn import GaussNewton
from .lanczos import norm_upper_bounds


def probe_costs(s: Site, positions_independent: bool) -> dict[str, int]:
    """The one cost formula of the structured path: products each applicable probe set of the
    module docstring spends on site ``s`` (weight and bias together): ``a`` = ``K`` (positions
    independent, or only a bias), else ``b`` = ``T K`` and ``c`` = ``J K`` (``K`` for a LayerNorm)
    plus ``K`` for a bias. The earlier use of a tied weight has no (a) (:mod:`._tied`)."""
    if not s.weight or (positions_independent and s.tie is None):
        return {"a": s.K}
    J = s.A.shape[-1]
    return {"b": s.T * s.K, "c": (J * s.K if s.kind == "dense" else s.K) + (s.K if s.bias else 0)}


class StructuredHessian:
    """Captures the sites of one forward pass and answers diagonal (or entry) queries."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, batch: Batch, params: dict[str, torch.Tensor],
                 *, chunk: int | None = None, seed: int = 0, gauss_newton: bool = True,
                 verify_gauss_newton: bool = True):
        self.model, self.loss_fn, self.batch, self.chunk = model, loss_fn, batch, chunk
        self.use_gn = gauss_newton
        self.params = params
        self.n_hvp = 0
        self.n_grad = 0  # batched first-order backward passes (the sampled Gauss-Newton proxy)
        self._gen = torch.Generator().manual_seed(seed)
        cap = capture_sites(model, loss_fn, batch, params)
        self.sites, self.fallback, self.custom, self.tied = cap.sites, cap.fallback, cap.custom, cap.tied
        self.loss, output = cap.forward.loss, cap.forward.output
        self.output = output
        self._activations = cap.forward.activations
        self._have_g = False
        self.gn = None
        if self.sites and output is not None and output.requires_grad:
            g_out = torch.autograd.grad(self.loss, output, create_graph=True)[0]
            self.gn = GaussNewton(output, g_out, self._gen, verify=verify_gauss_newton)
        self.paths: dict[str, str] = {}
        self.site_grads()  # before any product: a graph that cannot be differentiated twice is refused here

    def site_grads(self) -> None:
        """``s.g = dL/dz`` with its graph for every site (one backward pass), refusing a graph
        that cannot be differentiated again (:func:`._guards.check_twice_differentiable`, naming
        the module). ``s.g`` is None where the loss is at most linear in ``z``."""
        if self._have_g or not self.sites:
            return
        gs = torch.autograd.grad(self.loss, [s.delta for s in self.sites], create_graph=True,
                                 retain_graph=True, allow_unused=True)
        check_twice_differentiable([(s.weight or s.bias, g) for s, g in zip(self.sites, gs)],
                                   (self.model, self.loss_fn, self.batch))
        for s, g in zip(self.sites, gs):
            s.g = g if (g is not None and g.requires_grad) else None
        self._have_g = True

    # ---- products in z-space ------------------------------------------------------------------
    def map(self, s: Site, n: int, make, post, tie: bool = False) -> None:
        """Products ``v -> (d^2L/dz^2) v`` of site ``s`` for probes ``0..n-1``: ``make(a, e)`` gives
        the canonical probes ``(P, N, T, K)``, ``post(a, e, r)`` receives the canonical responses
        -- with ``tie``, for the earlier use of a tied weight, ``post(a, e, r, rw)`` also the
        responses to the later use's per-sample weight offset ``dW`` (``(P, N, K2, J2)``,
        :mod:`._tied`)."""
        extra = [s.tie.dW] if tie and s.tie is not None else []
        bg = BatchedGrad([s.g], [s.delta] + extra, self.chunk, activations=self._activations)
        if extra:
            bg.map(n, lambda a, b: [s.native(make(a, b))], lambda a, b, r: post(a, b, s.canon(r[0]), r[1]))
        else:
            bg.map(n, lambda a, b: [s.native(make(a, b))], lambda a, b, r: post(a, b, s.canon(r[0])))
        self.n_hvp += bg.n_calls

    def _block_diagonal(self, s: Site, axis: int) -> bool:
        """Is d^2L/dz^2 block-diagonal over ``axis`` (1: samples, 2: positions)? See module doc.
        For the earlier use of a tied weight the samples' responses to ``dW`` are tested too."""
        size = (s.N, s.T)[axis - 1]
        if size == 1:
            return True
        masks = bit_masks(size)
        bits = len(masks)
        shape = (s.N, s.T, s.K)
        ok = [True]

        def mask(b: int) -> torch.Tensor:
            return masks[b].view(-1, 1, 1) if axis == 1 else masks[b].view(1, -1, 1)

        def make(a: int, e: int) -> torch.Tensor:
            v = torch.randn((e - a, *shape), generator=self._gen, dtype=torch.float64)
            v = torch.stack([v[i] * mask(a + i) for i in range(e - a)])
            return v.to(s.delta.dtype).to(s.delta.device)

        def post(a: int, e: int, r: torch.Tensor, rw: torch.Tensor | None = None) -> None:
            for i in range(e - a):
                other = (~mask(a + i)).to(r.device).expand(shape)
                if bool((r[i][other] != 0).any()):
                    ok[0] = False
                if rw is not None and axis == 1 and (rw.shape[1] != s.N or bool(
                        (rw[i][~masks[a + i].to(rw.device)] != 0).any())):
                    ok[0] = False

        self.map(s, bits, make, post, tie=axis == 1)
        return ok[0]

    def _structure(self, s: Site) -> bool:
        """Decide the layout (once per site); returns whether positions are independent (path (a)).
        Behind a custom autograd.Function nothing is certified: samples merged, positions coupled."""
        if s.positions_independent is None:
            if {s.weight, s.bias} & self.custom:
                if s.N > 1:
                    s.merge_samples()
                s.positions_independent = s.T == 1
            else:
                if not s.merged and not self._block_diagonal(s, 1):
                    s.merge_samples()
                # the earlier use of a tied weight takes (b) or (c) whatever the positions do
                s.positions_independent = s.tie is None and self._block_diagonal(s, 2)
        return s.positions_independent

    def site_cost(self, s: Site) -> int:
        """Products :meth:`site_diagonal` spends on ``s`` once its structure is known (checking it
        costs ``ceil(log2 N) + ceil(log2 T)`` products, spent here if not yet): the one cost formula
        of the structured path (module docstring)."""
        self.site_grads()
        if s.g is None:
            return 0
        return min(probe_costs(s, self._structure(s)).values())

    # ---- the diagonal of one site --------------------------------------------------------------
    def site_diagonal(self, s: Site) -> dict[str, torch.Tensor]:
        self.site_grads()
        m = s.module
        dt, dev = s.delta.dtype, s.delta.device
        out: dict[str, torch.Tensor] = {}
        if s.g is None:  # loss at most linear in z
            for attr in ("weight", "bias"):
                if getattr(s, attr):
                    out[getattr(s, attr)] = torch.zeros_like(getattr(m, attr)).detach()
            return out
        pos_indep = self._structure(s)
        N, T, K = s.N, s.T, s.K
        A = s.A.to(dt)
        J = A.shape[-1]
        Hb = torch.zeros(K, dtype=dt, device=dev)
        Hw = torch.zeros((K, J) if s.kind == "dense" else (K,), dtype=dt, device=dev)
        want_w = s.weight is not None
        ar = lambda e: torch.arange(e, device=dev)  # noqa: E731

        if pos_indep or not want_w:
            D = self.unit_responses(s)  # with independent positions, (H u_i)[n,t,i] = B_{n,i}[t,t]
            Hb = D.sum((0, 1))
            if want_w:
                Hw = torch.einsum("ntk,ntj->kj", D, A * A) if s.kind == "dense" else (D * A * A).sum((0, 1))
        else:
            costs = probe_costs(s, False)
            if costs["b"] <= costs["c"]:  # (b): e_t (x) e_i for all samples
                def make_b(a: int, e: int) -> torch.Tensor:
                    ps = torch.arange(a, e, device=dev)
                    v = torch.zeros(e - a, N, T, K, dtype=dt, device=dev)
                    v[ar(e - a), :, ps // K, ps % K] = 1
                    return v

                def post_b(a: int, e: int, r: torch.Tensor, rw: torch.Tensor | None = None) -> None:
                    ps = torch.arange(a, e, device=dev)
                    tp, ip = ps // K, ps % K
                    R = r[ar(e - a), :, :, ip]                       # (P, N, T)
                    Hb.index_add_(0, ip, R.sum((1, 2)))
                    if s.kind == "dense":
                        C = torch.einsum("pnt,ntj->pnj", R, A)
                        Hw.index_add_(0, ip, (A[:, tp, :].transpose(0, 1) * C).sum(1))
                        if rw is not None:  # twice the cross term of a tied weight (_tied)
                            Hw.index_add_(0, ip, 2 * cross_rows(s, rw, tp, ip, A))
                    else:
                        c = torch.einsum("pnt,ntp->pn", R, A[:, :, ip])
                        Hw.index_add_(0, ip, (A[:, tp, ip].T * c).sum(1))

                self.map(s, T * K, make_b, post_b, tie=True)
            else:  # (c): A_{.,.,j} (x) e_i, one exact entry per probe
                nw = J * K if s.kind == "dense" else K

                def make_c(a: int, e: int) -> torch.Tensor:
                    ps = torch.arange(a, e, device=dev)
                    ip, jp = (ps % K, ps // K) if s.kind == "dense" else (ps, ps)
                    v = torch.zeros(e - a, N, T, K, dtype=dt, device=dev)
                    v[ar(e - a), :, :, ip] = A[:, :, jp].permute(2, 0, 1)
                    return v

                def post_c(a: int, e: int, r: torch.Tensor, rw: torch.Tensor | None = None) -> None:
                    ps = torch.arange(a, e, device=dev)
                    ip, jp = (ps % K, ps // K) if s.kind == "dense" else (ps, ps)
                    val = (r[ar(e - a), :, :, ip] * A[:, :, jp].permute(2, 0, 1)).sum((1, 2))
                    if rw is not None:  # twice the cross term of a tied weight (_tied)
                        val = val + 2 * cross_entries(s, rw, ip, jp)
                    if s.kind == "dense":
                        Hw[ip, jp] = val
                    else:
                        Hw[ip] = val

                self.map(s, nw, make_c, post_c, tie=True)
                if s.bias:
                    Hb = self.unit_responses(s).sum((0, 1))
        if s.weight:
            out[s.weight] = s.matrix_to_param(Hw).detach()
        if s.bias:
            out[s.bias] = Hb.detach()
        return out

    # ---- queries for estimates -----------------------------------------------------------------
    def unit_responses(self, s: Site) -> torch.Tensor:
        """``R[n,t,i] = ((d^2L/dz^2) u_i)[n,t,i]`` for the ``K`` probes ``u_i = 1 (x) e_i``: the row
        sums ``sum_t' B_{n,i}[t,t']`` (the diagonal ``B_{n,i}[t,t]`` when positions are
        independent). ``K`` products; zeros where the loss is at most linear in ``z``."""
        self.site_grads()
        dt, dev = s.delta.dtype, s.delta.device
        R = torch.zeros(s.N, s.T, s.K, dtype=dt, device=dev)
        if s.g is None:
            return R
        ar = lambda e: torch.arange(e, device=dev)  # noqa: E731

        def make(a: int, e: int) -> torch.Tensor:
            v = torch.zeros(e - a, s.N, s.T, s.K, dtype=dt, device=dev)
            v[ar(e - a), :, :, ar(e - a) + a] = 1
            return v

        def post(a: int, e: int, r: torch.Tensor) -> None:
            R[..., a:e] = r.diagonal(offset=a, dim1=0, dim2=3)[..., : e - a]

        self.map(s, s.K, make, post)
        return R

    def entries(self, s: Site, attr: str, flat: torch.Tensor) -> torch.Tensor:
        """Exact diagonal entries ``flat`` (indices into the flattened parameter ``attr`` of site
        ``s``), one z-space probe each: ``u = A_{.,.,j} (x) e_i`` (weight) or ``1 (x) e_i`` (bias),
        ``h = <u, (d^2L/dz^2) u>`` -- valid whatever the sample/position structure (of one use
        only, for a tied weight)."""
        self.site_grads()
        dt, dev = s.delta.dtype, s.delta.device
        flat = flat.to(dev)
        if s.g is None:
            return torch.zeros(len(flat), dtype=dt, device=dev)
        A = s.A.to(dt)
        ip, jp = (flat, None) if attr == "bias" else s.flat_to_matrix(flat)
        out = torch.empty(len(flat), dtype=dt, device=dev)
        ar = lambda e: torch.arange(e, device=dev)  # noqa: E731

        def probe(a: int, e: int) -> torch.Tensor:
            v = torch.zeros(e - a, s.N, s.T, s.K, dtype=dt, device=dev)
            v[ar(e - a), :, :, ip[a:e]] = 1 if jp is None else A[:, :, jp[a:e]].permute(2, 0, 1)
            return v

        def post(a: int, e: int, r: torch.Tensor) -> None:
            out[a:e] = (r * probe(a, e)).sum((1, 2, 3))

        self.map(s, len(flat), probe, post)
        return out.detach()

    def sample_norm_bounds(self, s: Site, steps: int, delta: float) -> torch.Tensor:
        """Upper bounds ``beta_n >= ||B_n||_2`` on the norm of each sample's block of
        ``d^2L/dz^2`` (``T K`` square), all holding together with probability ``>= 1 - delta``:
        Lanczos on ``B_n^2`` from Gaussian starts, the ``N`` runs in lockstep (one product serves
        every sample, the samples being verified independent), ``2 steps`` products; the bound of
        :func:`.lanczos.norm_upper_bounds` at ``delta / N`` each."""
        import numpy as np

        self.site_grads()
        if s.g is None:
            return torch.zeros(s.N, dtype=torch.float64)
        self._structure(s)  # samples found coupled are merged into one
        N, dim = s.N, s.T * s.K
        rng = np.random.default_rng(int(torch.randint(0, 2**31, (1,), generator=self._gen)))
        dt, dev = s.delta.dtype, s.delta.device

        def apply(vs: list) -> list:
            V = torch.from_numpy(np.stack(vs)).to(dt).to(dev).reshape(1, N, s.T, s.K)
            out = []

            def post(a: int, e: int, r: torch.Tensor) -> None:
                out.append(r[0])

            self.map(s, 1, lambda a, e: V, post)
            return list(out[0].reshape(N, dim).double().cpu().numpy())

        bounds = norm_upper_bounds(apply, [rng.standard_normal(dim) for _ in range(N)], steps, delta / N)
        return torch.tensor(bounds, dtype=torch.float64)

    def sampled_gauss_newton(self, sites: list[Site], targets: torch.Tensor, draws: int) -> dict[tuple[int, str], torch.Tensor]:
        """A Monte-Carlo estimate of the Gauss-Newton diagonal of every site in ``sites``, from
        ``draws`` label vectors drawn from the model's own predictive distribution, for all sites
        together in one batched first-order backward pass (no Hessian-vector product).

        For a loss ``L = sum_r l(f_r, y_r) / R`` that is a categorical negative log-likelihood of
        the logits ``f`` (the last dimension of the output; cross-entropy), and labels
        ``y_r ~ softmax(f_r)`` drawn independently, the gradient ``c = dL_y/df`` has
        ``E[c c^T] = blockdiag(diag(p_r) - p_r p_r^T) / R^2``, so for every site
        ``E[sum_n (sum_t c_{nti} A_{ntj})^2] = G_{ij} / R`` with ``G = J^T (d^2L/df^2) J`` the
        Gauss-Newton matrix, position pairs included (the Fisher's equivalence with the Gauss-Newton matrix for a categorical
        likelihood: Martens 2014, *New insights and perspectives on the natural gradient method*). ``G`` differs from the Hessian by the
        second-order term of the network, so this is a proxy: it ranks entries and predicts their
        size up to that term; returned without the ``1/R`` (a constant factor). Keys ``(site
        index, "weight" | "bias")``, values flattened like the parameter. ``targets`` gives the
        labels' shape and dtype; the loss is called on the detached output with the drawn labels."""
        out = self.output
        if out is None or not out.requires_grad or out.dim() < 2 or targets.dtype not in (torch.int64, torch.int32) \
                or targets.numel() != out[..., 0].numel():
            raise ValueError("the sampled Gauss-Newton proxy needs a categorical loss: class-index targets with "
                             f"one label per row of the output's last dimension (output {tuple(out.shape) if out is not None else None}, "
                             f"targets {tuple(targets.shape)} {targets.dtype})")
        logits = out.detach().double().reshape(-1, out.shape[-1])
        y = torch.multinomial(torch.softmax(logits, -1), draws, replacement=True, generator=self._gen)
        cots = []
        for d in range(draws):
            o = out.detach().clone().requires_grad_(True)
            cots.append(torch.autograd.grad(self.loss_fn(o, y[:, d].reshape(targets.shape).to(targets.device)), o)[0])
        C = torch.stack(cots)
        acc: dict[tuple[int, str], torch.Tensor] = {}
        bg = BatchedGrad([out], [s.delta for s in sites], self.chunk, activations=self._activations)

        def post(a: int, e: int, r: list[torch.Tensor]) -> None:
            for k, (s, rk) in enumerate(zip(sites, r)):
                G = s.canon(rk).double()                                   # (P, N, T, K)
                if s.bias:
                    acc[(k, "bias")] = acc.get((k, "bias"), 0) + (G.sum(2) ** 2).sum((0, 1))
                if s.weight:
                    A = s.A.double()
                    if s.kind == "dense":
                        w = sum((torch.einsum("ntk,ntj->nkj", G[p], A) ** 2).sum(0) for p in range(G.shape[0]))
                    else:
                        w = ((G * A).sum(2) ** 2).sum((0, 1))
                    acc[(k, "weight")] = acc.get((k, "weight"), 0) + w

        bg.map(draws, lambda a, e: [C[a:e].to(out.dtype)], post)
        self.n_grad += draws
        res = {}
        for (k, attr), v in acc.items():
            v = v / draws
            res[(k, attr)] = (sites[k].matrix_to_param(v).flatten() if attr == "weight" else v).detach()
        return res

    @staticmethod
    def probe_estimate(s: Site) -> int:
        """z-space products the structured path needs for ``s`` before its structure checks
        (positions taken as coupled unless ``T == 1``)."""
        return min(probe_costs(s, s.T == 1).values())

    def gauss_newton(self, sites: list[Site]) -> dict[str, torch.Tensor]:
        """The diagonals of the sites where the GGN shortcut (:mod:`.ggn`) is verified exact and
        cheaper; the others are left to :meth:`site_diagonal`."""
        gn = self.gn
        if not self.use_gn or gn is None or not gn.usable():
            return {}
        n = gn.out.shape[0]
        cand = [s for s in sites if s.N == n and s.delta.shape[0] == n and not {s.weight, s.bias} & self.custom
                and s.weight not in self.tied]
        if gn.block >= sum(self.probe_estimate(s) for s in cand):
            return {}  # cannot pay off even if every layer passes
        n0 = gn.n_hvp + gn.n_vjp
        ok = [s for s, free in zip(cand, gn.residual_free(cand)) if free]
        out = None
        if ok and gn.block < sum(self.probe_estimate(s) for s in ok):
            out = gn.diagonals(ok, self.chunk)
        self.n_hvp += gn.n_hvp + gn.n_vjp - n0
        return out or {}

    def diagonal(self, progress: bool | None = None) -> dict[str, torch.Tensor]:
        """Every site's diagonal (Gauss-Newton shortcut where verified, else structured); a tqdm bar
        over the layers when ``progress`` (default: when stderr is a terminal)."""
        from tqdm.auto import tqdm

        out = self.gauss_newton(self.sites)
        self.paths.update({n: "gauss-newton" for n in out})
        todo = [s for s in self.sites if (s.weight and s.weight not in out) or (s.bias and s.bias not in out)]
        for s in tqdm(todo, desc="exact diagonal", unit="layer", leave=False,
                      disable=(not progress) if progress is not None else None):
            for n, h in self.site_diagonal(s).items():
                # a tied weight: the earlier use's diagonal with twice the cross term, plus the later's
                out[n] = out[n] + h if n in self.tied and n in out else h
                self.paths[n] = "tied" if n in self.tied else "structured"
        return out


def exact_diagonal(model: nn.Module, loss_fn: LossFn, batch: Batch, params: dict[str, torch.Tensor], *,
                   chunk: int | None = None, info: dict | None = None, seed: int = 0,
                   gauss_newton: bool = True, verify_gauss_newton: bool = True,
                   progress: bool | None = None) -> dict[str, torch.Tensor]:
    """The exact Hessian diagonal by the structured method (module docstring), with the verified
    Gauss-Newton shortcut (:mod:`.ggn`, unless ``gauss_newton=False``) and brute force for the
    parameters neither can treat. ``info`` receives ``n_hvp`` (products and backward passes),
    ``paths`` (``"gauss-newton"``, ``"structured"``, ``"tied"`` or ``"brute"`` per tensor),
    ``fallback``. ``verify_gauss_newton=False`` is a diagnostic of what the shortcut's checks cost
    (they are assumed to pass; :class:`.ggn.GaussNewton`): never correct in general."""
    sh = StructuredHessian(model, loss_fn, batch, params, chunk=chunk, seed=seed, gauss_newton=gauss_newton,
                           verify_gauss_newton=verify_gauss_newton)
    out = sh.diagonal(progress)
    info = {} if info is None else info
    info["n_hvp"] = info.get("n_hvp", 0) + sh.n_hvp
    info.setdefault("paths", {}).update(sh.paths)
    info["fallback"] = dict(sh.fallback)
    del sh
    rest = {n: p for n, p in params.items() if n not in out}
    if rest:
        out.update(brute_diagonal(model, loss_fn, batch, rest, chunk=chunk, info=info, verify=False))
    return out


def probe_plan(model: nn.Module, loss_fn: LossFn, batch: Batch, params=None) -> int:
    """The number of z-space products the structured method will spend (structure checks
    included; brute-force fallbacks counted as one product per entry), without doing them."""
    from ._validate import select_params

    chosen = select_params(model, params)
    sh = StructuredHessian(model, loss_fn, batch, chosen)
    sh.site_grads()
    total = 0
    for s in sh.sites:
        n0 = sh.n_hvp
        total += sh.site_cost(s) + sh.n_hvp - n0
    done = {n for s in sh.sites for n in (s.weight, s.bias) if n}
    total += sum(p.numel() for n, p in chosen.items() if n not in done)
    return total
