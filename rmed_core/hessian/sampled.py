"""The sampled estimate of R_med: exact entries at well-chosen coordinates (``method="sampled"``).

At the study size the exact diagonal of a token-shared layer costs about ``min(T, J) K``
products (:mod:`.exact`), as much as brute force once ``T >= J``. This estimate spends a small,
fixed number of exact entries per tensor instead, chosen so that both parts of
``R_med = max|h| / median|h|`` are accurate, and says what it guarantees.

For one tensor with diagonal ``h`` (the entries the statistic is taken over, ``n`` of them; an
embedding's rows of the tokens in the batch) and confidence ``1 - alpha``:

* **Cheap tensors are exact.** A layer whose exact diagonal costs at most ``exact_below`` products
  once its structure is checked (:meth:`.StructuredHessian.site_cost`: ``K`` when positions are
  independent, as for most layers of a causal model's last block; ``2K`` for a LayerNorm) is
  computed whole, and so is every layer whose positions are independent and whose ``K`` is at most
  ``proxy_below`` (its ``K`` products are what the row-sum proxy below would cost).
* **Two proxies rank every entry.** The ``K`` products ``u_i = 1 (x) e_i`` give the row sums
  ``R_{nti} = sum_t' B_{n,i}[t,t']`` of each unit's block -- and with them the bias diagonal
  exactly, ``H_b[i] = sum_{n,t} R_{nti}`` -- and ``p_{ij} = sum_{n,t} |R_{nti}| A_{ntj}^2`` ranks
  the weight entries (it would be the diagonal if positions did not interact). The per-position
  squared gradients give a second, free ranking ``q_{ij} = sum_{n,t} g_{nti}^2 A_{ntj}^2``
  (``g = dL/dz``; for an output layer under cross-entropy its expectation under labels drawn from
  the model is the diagonal). ``p`` orders the bulk better (Spearman 0.72 against 0.67 on the study
  model's first attention query), ``q`` finds the largest entries where ``p`` misses them (the
  study model's token embedding after 750 Adam iterations: the largest entry is 7th by ``q``, 26th
  by ``p``). A layer wider than ``proxy_below`` units (a 10k vocabulary's output layer) is ranked
  by ``q`` alone, and its bias is sampled like its weight. With ``gauss_newton_draws > 0`` a third
  ranking is the sampled Gauss-Newton diagonal (:meth:`.StructuredHessian.sampled_gauss_newton`:
  labels drawn from the model, one batched first-order backward pass for every tensor together),
  whose top entries are verified too; it stratifies the median of a layer too wide for ``p``
  (an output layer, where the Gauss-Newton matrix *is* the Hessian). For a layer whose output
  feeds an elementwise activation (an MLP's first layer) the activation's own curvature term
  ``sum_{n,t} dL/dy sigma''(z) A^2`` -- exact, the residual the Gauss-Newton matrix leaves out --
  is added to it on the Hessian's scale (:mod:`._activation`; one more backward pass), and this
  ranking stratifies that layer's median. Proxies only *choose* coordinates, never give a value.
* **Maximum.** The ``n_candidates`` entries with the largest ``p`` and the ``n_candidates`` with the
  largest ``q`` are computed exactly, as are the samples below; the largest verified entry is a
  hard lower bound and the point estimate.
  An upper bound (``bound_steps > 0``): with ``B_n`` sample ``n``'s block of ``d^2L/dz^2`` and
  ``a_{nj}`` the feature column, ``|H_{ij}| = |sum_n a_{nj}^T B_{n,i} a_{nj}| <= sum_n ||B_n||_2
  ||a_{nj}||^2``; ``||B_n||_2`` is bounded by Lanczos on ``B_n^2`` (all samples in lockstep,
  ``2 bound_steps`` products a layer; Kuczynski & Wozniakowski 1992), holding with probability
  ``>= 1 - alpha/2`` for all tensors together (union bound). A norm bound: valid, not tight.
* **Median.** ``n_samples`` coordinates drawn uniformly with replacement and computed exactly.
  The distribution-free order-statistic interval (Conover, *Practical Nonparametric Statistics*,
  3.2) ``P(x_(l) <= median <= x_(u)) >= 1 - P(B < l) - P(B >= u)``, ``B ~ Bin(m, 1/2)``, with
  each tail ``<= alpha/4`` per tensor. The point estimate is *post-stratified* (e.g. Cochran,
  *Sampling Techniques*, 5A.9): the proxy's quantiles cut the tensor into ``strata`` cells of known
  size ``w_s``, and the median of ``F(c) = sum_s w_s F_s(c)`` (``F_s`` the empirical distribution of
  the draws that fell in cell ``s``) removes most of the sampling noise the proxy explains.
* **Union bound.** Median interval and maximum bound fail with probability at most ``alpha/2``
  each, so ``R_med in [max_lower / x_(u), max_upper / x_(l)]`` with probability ``>= 1 - alpha``.

Parameters without a structured site (unsupported modules) and tied weights get their entries
by one Hessian-vector product each and the block-norm bound of the parameter-space Hessian; a
tied weight's coordinates are chosen by the proxies of its two uses, summed (never a brute force
over the whole tensor). Sample sizes that cannot deliver the confidence asked for are refused
(:func:`min_samples`). The measured accuracy against the exact method is in
``benchmarks/results/study_accuracy.md`` and, on Adam's and SGD-M's checkpoints, in
``benchmarks/results/probe_accuracy.md``.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import torch
from scipy.stats import binom
from torch import nn

from ..stats import median, ratio, undefined_reason
from ..validation import check_bool, check_positive
from ._activation import activation_terms
from ._hvp import HessianOperator
from ._validate import Batch, LossFn, check_batch, check_dropout, select_params
from .exact import StructuredHessian
from .lanczos import norm_upper_bounds
from .table import COLUMNS, embedding_rows, summary_row

__all__ = ["sampled_rmed", "order_statistic_ranks", "min_samples", "post_stratified_median"]


def min_samples(confidence: float) -> int:
    """The fewest draws for which the order-statistic interval of the median can hold with
    probability ``confidence``: each tail is ``P(B < 1) = 2^-m <= alpha/4`` at best."""
    return math.ceil(math.log2(4 / (1 - confidence)))


def order_statistic_ranks(m: int, tail: float) -> tuple[int, int]:
    """1-based ranks ``l <= u`` with ``P(Bin(m,1/2) < l) <= tail`` and ``P(Bin(m,1/2) >= u) <= tail``.

    Raises ``ValueError`` when ``m`` is too small for any such pair (``2^-m > tail``)."""
    if 0.5 ** m > tail:
        raise ValueError(f"n_samples={m} draws cannot bound the median with tail probability {tail:g}: "
                         f"need at least {math.ceil(math.log2(1 / tail))}")
    l = max(int(binom.ppf(tail, m, 0.5)), 1)  # P(B <= l-1) <= tail  <=>  P(B < l) <= tail
    while l > 1 and binom.cdf(l - 1, m, 0.5) > tail:
        l -= 1
    return l, m + 1 - l


def post_stratified_median(x: torch.Tensor, cell: torch.Tensor, weights: torch.Tensor) -> float:
    """The median of ``F(c) = sum_s w_s F_s(c)``: draws ``x`` that fell in cells ``cell`` (ints),
    cells of known population shares ``weights``. Cells without a draw pass their share to the
    nearest cell that has one (so ``F`` stays a distribution)."""
    x, cell = x.double().cpu(), cell.cpu()
    S = len(weights)
    have = torch.zeros(S, dtype=torch.bool)
    have[cell] = True
    idx = torch.nonzero(have).flatten()
    w = torch.zeros(S, dtype=torch.float64)
    for s in range(S):  # reassign empty cells' shares to the nearest filled cell
        w[idx[(idx - s).abs().argmin()]] += float(weights[s])
    counts = torch.bincount(cell, minlength=S).double()
    mass = w[cell] / counts[cell]  # each draw carries its cell's share equally
    order = torch.argsort(x)
    cum = torch.cumsum(mass[order], 0)
    k = int(torch.searchsorted(cum, torch.tensor(0.5, dtype=torch.float64) - 1e-12))
    k = min(k, len(x) - 1)
    lo = float(x[order[k]])
    if abs(float(cum[k]) - 0.5) < 1e-12 and k + 1 < len(x):  # F reaches 1/2 exactly: average
        return (lo + float(x[order[k + 1]])) / 2
    return lo


def _weighted(s, attr: str, W: torch.Tensor) -> torch.Tensor:
    """``sum_{n,t} W_{nti} A_{ntj}^2`` (bias: ``sum_{n,t} W_{nti}``) for weights ``W`` of shape
    ``(N, T, K)``, flattened like the parameter: the form both rankings share."""
    W = W.double()
    if attr == "bias":
        return W.sum((0, 1))
    A2 = s.A.double() ** 2
    if s.kind == "diag":
        return (W * A2).sum((0, 1))
    w = torch.einsum("ntk,ntj->kj", W, A2)
    return (w.T if s.transposed else w).flatten()


def _proxy(s, attr: str, R: torch.Tensor) -> torch.Tensor:
    """``p_{ij} = sum_{n,t} |R_{nti}| A_{ntj}^2`` from the unit responses ``R`` (the row sums of
    ``B_{n,i}``), flattened like the parameter (module doc)."""
    return _weighted(s, attr, R.abs())


def _fisher_proxy(s, attr: str) -> torch.Tensor:
    """``q_{ij} = sum_{n,t} g_{nti}^2 A_{ntj}^2`` from the per-position gradients ``g = dL/dz``
    (free: the gradient is already there), flattened like the parameter. For an output layer under
    cross-entropy ``E[q]`` under labels drawn from the model is its diagonal; elsewhere it only ranks."""
    return _weighted(s, attr, s.canon(s.g.detach()[None])[0].double() ** 2)


def sampled_rmed(model: nn.Module, loss_fn: LossFn, batch: Batch, *, params=None, confidence: float = 0.95,
                 seed: int = 0, n_samples: int = 192, n_candidates: int = 16, strata: int = 8,
                 exact_below: int = 256, proxy_below: int = 1024, bound_steps: int = 10,
                 gauss_newton_draws: int = 0, activation_curvature: bool = True, chunk: int | None = None,
                 progress: bool | None = None) -> pd.DataFrame:
    """R_med per tensor: a point estimate and an interval holding the exact value with
    probability ``>= confidence`` (module docstring). Columns as :func:`rmed_per_layer`; the
    table's ``attrs`` hold the cost (``products``: Hessian-vector products and z-space products,
    ``seconds``) and the tensors computed whole (``exact``).

    Args:
        n_samples: uniform draws per tensor for the median (at least :func:`min_samples`).
        n_candidates: entries computed exactly for the maximum, from each proxy's top.
        strata: proxy cells of the post-stratified median.
        exact_below: layers whose exact diagonal costs at most this many products once their
            structure is known (:meth:`StructuredHessian.site_cost`) are computed whole (a sampled
            layer's bias is exact anyway, from the row-sum proxy's products).
        proxy_below: the row-sum proxy (``K`` products) is used for layers with at most this many
            output units; wider layers (a large vocabulary's output layer) are ranked by the free
            gradient proxy alone and their bias is sampled like the weight.
        bound_steps: Lanczos steps of the upper bound on the maximum; 0 skips it (``upper = inf``).
        gauss_newton_draws: label draws of the sampled Gauss-Newton ranking (0: not used); needs a
            categorical loss (class-index targets, one per row of the output's last dimension).
        activation_curvature: with the Gauss-Newton ranking, add to it the own curvature term of the
            elementwise activation a layer feeds (module docstring; one backward pass); False ranks
            by the Gauss-Newton diagonal alone.
        progress: a tqdm bar over tensors (default: when stderr is a terminal).

    On a small MLP with every tensor sampled (``exact_below=0``), each 95% interval holds the
    exact R_med:

    >>> import torch
    >>> from rmed_core.hessian import rmed_per_layer
    >>> from rmed_core.hessian.testing import make_case
    >>> model, loss, batch = make_case("mlp_tanh", torch.float64)
    >>> exact = rmed_per_layer(model, loss, batch).set_index("layer").r_med
    >>> est = rmed_per_layer(model, loss, batch, method="sampled", seed=0, n_samples=40,
    ...                      exact_below=0).set_index("layer")
    >>> bool(((est.lower <= exact * (1 + 1e-9)) & (exact <= est.upper * (1 + 1e-9))).all())
    True
    """
    if not (isinstance(confidence, float | int) and 0 < confidence < 1):
        raise ValueError(f"confidence={confidence!r}: must be a number in (0, 1)")
    check_bool("activation_curvature", activation_curvature)
    for name, v in dict(n_samples=n_samples, strata=strata).items():
        check_positive(name, v, integer=True)
    for name, v in dict(n_candidates=n_candidates, exact_below=exact_below, proxy_below=proxy_below,
                        bound_steps=bound_steps, gauss_newton_draws=gauss_newton_draws).items():
        if not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
            raise ValueError(f"{name}={v!r}: expected a non-negative integer")
    if n_samples < min_samples(confidence):
        raise ValueError(f"n_samples={n_samples} cannot give confidence={confidence}: the median's interval needs "
                         f"at least {min_samples(confidence)} draws (more for a useful width)")
    check_batch(batch, loss_fn)
    chosen = select_params(model, params)
    check_dropout(model)
    t0 = time.perf_counter()
    alpha = 1 - confidence
    gen = torch.Generator().manual_seed(seed)
    sh = StructuredHessian(model, loss_fn, batch, chosen, chunk=chunk, seed=seed, gauss_newton=False)
    sh.site_grads()
    emb = embedding_rows(model, batch, chosen, loss_fn)
    on_sites = {getattr(s, a) for s in sh.sites for a in ("weight", "bias") if getattr(s, a)}
    # tensors without a site, and tied weights: entries by one Hessian-vector product each
    in_params = [n for n in chosen if n not in on_sites or n in sh.tied]
    n_tensors = len(chosen)
    delta = alpha / 2 / max(n_tensors, 1)  # each tensor's share of the maximum's failure probability
    brute_hvp = 0

    from tqdm.auto import tqdm
    bar = tqdm(total=n_tensors, desc="sampled R_med", unit="tensor", leave=False,
               disable=(not progress) if progress is not None else None)
    rows: dict[str, dict] = {}
    exact_diag: dict[str, torch.Tensor] = {}
    tied_proxies: dict[str, list[list[torch.Tensor]]] = {n: [[], []] for n in sh.tied}  # [row-sum, gradient]
    ggn: dict = {}
    extra_passes = 0
    if gauss_newton_draws:
        ranked = [s for s in sh.sites if s.g is not None and s.weight not in sh.tied]
        ggn = {(ranked[k].module_name, a): v for (k, a), v in
               sh.sampled_gauss_newton(ranked, batch[1], gauss_newton_draws).items()}
        # a layer that feeds an elementwise activation: add that activation's own curvature, on the
        # Hessian's scale (R label rows of a mean loss: sampled_gauss_newton returns G / R)
        terms = activation_terms(model, loss_fn, batch, {s.module_name: s.module for s in ranked}) \
            if activation_curvature else {}
        extra_passes = int(activation_curvature)
        rows_R = sh.output[..., 0].numel()
        for s in ranked:
            if s.module_name in terms:
                W = s.canon(terms[s.module_name][None].to(s.A.dtype))[0]
                for a in ("weight", "bias"):
                    if getattr(s, a) and (s.module_name, a) in ggn:
                        ggn[(s.module_name, a)] = rows_R * ggn[(s.module_name, a)] + _weighted(s, a, W)

    for s in sh.sites:
        wanted = [a for a in ("weight", "bias") if getattr(s, a) and getattr(s, a) not in sh.tied]
        if s.weight in sh.tied and s.g is not None:  # the tied weight's proxies: its two uses' summed
            tied_proxies[s.weight][1].append(_fisher_proxy(s, "weight"))
            if s.K <= proxy_below:
                tied_proxies[s.weight][0].append(_proxy(s, "weight", sh.unit_responses(s)))
        if not wanted:
            continue
        whole = s.g is None or sh.site_cost(s) <= exact_below
        # a layer whose positions are independent costs K products whole -- what the row-sum proxy
        # costs -- so it is exact when that proxy is affordable (K <= proxy_below)
        whole = whole or (s.positions_independent and s.K <= proxy_below)
        if whole:
            d = sh.site_diagonal(s)
            exact_diag.update({getattr(s, a): d[getattr(s, a)] for a in wanted})
            bar.update(len(wanted))
            continue
        norms = sh.sample_norm_bounds(s, bound_steps, delta) if bound_steps else None
        proxies = {a: [_fisher_proxy(s, a)] for a in wanted}
        for a in wanted:  # the Gauss-Newton ranking stratifies where the row sums are not computed
            if (s.module_name, a) in ggn:
                proxies[a].insert(0, ggn[(s.module_name, a)].abs())
        if s.K <= proxy_below:
            R = sh.unit_responses(s)  # K products: the row-sum proxy of every weight entry, the bias exactly
            if s.bias:
                exact_diag[s.bias] = R.sum((0, 1))
                wanted.remove("bias")
                bar.update()
            for a in wanted:
                proxies[a].insert(0, _proxy(s, a, R))
        for a in wanted:
            name = getattr(s, a)
            bound = _max_bound(s, a, norms, emb.get(name)) if norms is not None else math.inf
            rows[name] = _estimate(getattr(s.module, a), emb.get(name), lambda f, s=s, a=a: sh.entries(s, a, f),
                                   gen, proxies[a], n_samples, n_candidates, strata, alpha, bound) | {"layer": name}
            bar.update()
    if in_params:
        proxies = {n: [sum(q) for q in tied_proxies[n] if q] for n in in_params if n in sh.tied}
        brute_hvp, est = _estimates_in_parameter_space(model, loss_fn, batch, {n: chosen[n] for n in in_params}, emb,
                                                       gen, proxies, n_samples, n_candidates, strata, alpha,
                                                       bound_steps, delta, chunk, seed)
        rows.update(est)
        bar.update(len(in_params))
    # the undefined rule needs the largest entry seen anywhere
    scale = max([float(h.abs().max()) for h in exact_diag.values()] + [r["h_max"] for r in rows.values()] + [0.0])
    for name, h in exact_diag.items():
        rows[name] = summary_row(name, h, emb.get(name), scale, "sampled")
    bar.close()
    out = []
    for name in chosen:
        r = rows[name]
        why = undefined_reason(r["h_max"], r["h_median"], scale, chosen[name].dtype)
        if why:
            r.update(r_med=math.nan, lower=math.nan, upper=math.nan, undefined=why)
        r["method"] = "sampled"
        r["confidence"] = confidence
        out.append(r)
    df = pd.DataFrame(out, columns=COLUMNS)
    df.attrs.update(products=sh.n_hvp + brute_hvp, backward_passes=sh.n_grad + extra_passes,
                    seconds=time.perf_counter() - t0,
                    exact=sorted(exact_diag))
    return df


def _population(p: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
    """Flat indices of the entries the statistic is taken over (an embedding's looked-up rows)."""
    if rows is None:
        return torch.arange(p.numel())
    return (rows[:, None] * p.shape[1] + torch.arange(p.shape[1])[None]).flatten()


def _interval(x: torch.Tensor, max_lo: float, max_hi: float, alpha: float) -> tuple[float, float]:
    xs = torch.sort(x).values
    l, u = order_statistic_ranks(len(x), alpha / 4)
    med_lo, med_hi = float(xs[l - 1]), float(xs[u - 1])
    lower = max_lo / med_hi if med_hi > 0 else math.inf
    upper = max_hi / med_lo if med_lo > 0 else math.inf
    return lower, upper


def _estimate(p: torch.Tensor, rows: torch.Tensor | None, entries, gen: torch.Generator,
              proxies: list[torch.Tensor], m: int, n_cand: int, strata: int, alpha: float, bound: float) -> dict:
    """One tensor's row of the table (module docstring): ``m`` uniform draws and the ``n_cand``
    top entries of each proxy (flattened like ``p``), computed by ``entries(flat)``; the median
    post-stratified by the first proxy (plain without one); ``bound`` an upper bound on the
    maximum (``inf``: none)."""
    numel = p.numel()
    pop = _population(p, rows)
    n = len(pop)
    # uniform draws (with replacement) and the proxy's top entries, each computed once
    draw = pop[torch.randint(0, n, (m,), generator=gen)]
    top = [pop[torch.topk(q[pop], min(n_cand, n)).indices] for q in proxies if n_cand]
    uniq, inv = torch.unique(torch.cat([draw, *top]), return_inverse=True)
    vals = entries(uniq).abs().double().cpu()
    x = vals[inv[:m]]
    max_lo = float(vals.max())
    if proxies:  # post-stratified median: cells by the first proxy's quantiles over the population
        rank = torch.empty(n, dtype=torch.long)
        rank[torch.argsort(proxies[0][pop].cpu(), stable=True)] = torch.arange(n)
        cell_of = (rank * strata) // n
        weights = torch.bincount(cell_of, minlength=strata).double() / n
        pos = torch.searchsorted(pop, draw) if rows is not None else draw
        med = post_stratified_median(x, cell_of[pos], weights)
    else:
        med = float(median(x))
    lower, upper = _interval(x, max_lo, max(bound, max_lo), alpha)
    return dict(layer="", numel=numel, n_used=n, r_med=ratio(max_lo, med),
                lower=lower, upper=upper, h_max=max_lo, h_median=med, undefined="")


def _max_bound(s, attr: str, norms: torch.Tensor, rows: torch.Tensor | None) -> float:
    """``max_{ij} sum_n ||B_n|| ||a_{nj}||^2`` (bias: ``a = 1``), module docstring."""
    A = s.A.double().cpu() if attr == "weight" else torch.ones(s.N, s.T, 1, dtype=torch.float64)
    col = torch.einsum("n,nj->j", norms, (A ** 2).sum(1))
    if rows is not None and attr == "weight":
        col = col[rows]
    return float(col.max())


def _estimates_in_parameter_space(model, loss_fn, batch, params: dict, emb: dict, gen, proxies: dict, m: int,
                                  n_cand: int, strata: int, alpha: float, bound_steps: int, delta: float, chunk,
                                  seed: int) -> tuple[int, dict]:
    """Entries by one Hessian-vector product each, and the parameter-space block-norm bound, for
    tensors without a structured site and for tied weights (these with the ranking ``proxies`` of
    their two uses)."""
    from .brute import brute_entries

    n_hvp, out = 0, {}
    norm = {n: math.inf for n in params}
    if bound_steps:
        op = HessianOperator(model, loss_fn, batch, list(params), chunk=chunk)
        offs = np.cumsum([0] + op.sizes)

        def blockwise(vs):
            V = torch.zeros(op.dim, len(vs), dtype=torch.float64)
            for b, v in enumerate(vs):
                V[offs[b]:offs[b + 1], b] = torch.from_numpy(v)
            Y = op.matmat(V).double().cpu().numpy()
            return [Y[offs[b]:offs[b + 1], b] for b in range(len(vs))]

        rng = np.random.default_rng(seed)
        bounds = norm_upper_bounds(blockwise, [rng.standard_normal(n) for n in op.sizes], bound_steps, delta)
        norm = dict(zip(params, bounds))
        n_hvp += op.n_hvp
    for name, p in params.items():
        spent = [0]

        def entries(flat, name=name, p=p):
            spent[0] += len(flat)
            return brute_entries(model, loss_fn, batch, name, p, flat, chunk=chunk)

        out[name] = _estimate(p, emb.get(name), entries, gen, proxies.get(name, []), m, n_cand, strata, alpha,
                              norm[name]) | {"layer": name}
        n_hvp += spent[0]
    return n_hvp, out
