"""A certified estimate of R_med from a few exact diagonal entries (``method="sampled"``).

For one parameter tensor with diagonal ``h`` (``n`` entries) and confidence ``1 - alpha``:

* **Median.** ``m`` coordinates are drawn uniformly *with replacement*; their entries ``|h|`` are
  computed exactly (one z-space probe each, :func:`.exact.site_entries`; one HVP each for
  brute-force parameters). With sorted sample ``x_(1) <= ... <= x_(m)`` and ``B ~ Bin(m, 1/2)``,
  the distribution-free order-statistic interval (e.g. Conover, *Practical Nonparametric
  Statistics*, 3.2) gives ``P(x_(l) <= median|h| <= x_(u)) >= 1 - P(B < l) - P(B >= u)``:
  ``x_(l) > median`` needs fewer than ``l`` draws at or below the upper middle value, each draw
  being so with probability ``>= 1/2`` (symmetrically for ``u``). ``l, u`` are chosen so that each
  tail is ``<= alpha/4``.
* **Maximum.** A lower bound is exact: the largest verified entry among the samples and the top
  ``n_candidates`` of a cheap proxy (the bias-style products ``1 (x) e_i``, ``K`` probes, give
  ``sum_{t'} B_{n,i}[t,t']`` and rank the weights by ``sum_{n,t} A_{ntj}^2 (...)``). An upper bound
  comes from ``max_k |H_kk| <= ||H_block||_2``: ``k`` Lanczos steps on ``H_block^2`` from a random
  start give ``theta <= ||H||^2`` and, by Kuczynski & Wozniakowski (1992, Thm 4.1),
  ``P(theta < (1 - eps) ||H||^2) <= 1.648 sqrt(n) exp(-sqrt(eps) (2k - 1))``; ``eps`` is set so that
  this is ``alpha/2``, and ``max|h| <= sqrt(theta / (1 - eps))``.
* **Union bound.** The median interval fails with probability ``<= alpha/2`` and the norm bound
  with probability ``<= alpha/2``, so with probability ``>= 1 - alpha`` both hold and
  ``R_med in [max_lower / x_(u), max_upper / x_(l)]``. The point estimate is
  ``max_lower / (sample median)``.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from scipy.stats import binom
from torch import nn

from ..stats import median
from ._hvp import HessianOperator
from ._validate import Batch, LossFn, check_batch, check_dropout, select_params
from .exact import StructuredHessian, site_entries
from .rmed import COLUMNS
from .spectrum import lanczos


def order_statistic_ranks(m: int, tail: float) -> tuple[int, int]:
    """1-based ranks ``l <= u`` with ``P(Bin(m,1/2) < l) <= tail`` and ``P(Bin(m,1/2) >= u) <= tail``
    (``l = 1``/``u = m`` and the bound simply weaker when ``m`` is too small)."""
    l = int(binom.ppf(tail, m, 0.5))          # P(B <= l-1) <= tail  <=>  P(B < l) <= tail
    while l > 0 and binom.cdf(l - 1, m, 0.5) > tail:
        l -= 1
    l = max(l, 1)
    u = m + 1 - l
    return l, u


def _norm_upper(op: HessianOperator, steps: int, delta: float, seed: int) -> tuple[float, int]:
    """An upper bound on ||H||_2 holding with probability >= 1 - delta (see module doc)."""
    n = op.dim
    steps = max(1, min(steps, n))
    rng = np.random.default_rng(seed)

    def mv(x: np.ndarray) -> np.ndarray:  # H^2 x
        y = op.matvec(torch.from_numpy(x)).double()
        return op.matvec(y).double().cpu().numpy()

    theta, _ = lanczos(mv, n, steps, rng.standard_normal(n))
    eps = (math.log(1.648 * math.sqrt(n) / delta) / (2 * steps - 1)) ** 2
    if eps >= 1:
        return math.inf, 2 * steps
    return math.sqrt(max(theta.max(), 0.0) / (1 - eps)), 2 * steps


def sampled_rmed(model: nn.Module, loss_fn: LossFn, batch: Batch, *, params=None, confidence: float = 0.95,
                 seed: int = 0, n_samples: int = 64, n_candidates: int = 8, lanczos_steps: int = 20,
                 chunk: int | None = None, info: dict | None = None) -> pd.DataFrame:
    """R_med per tensor as an interval holding the exact value with probability >= ``confidence``
    (module docstring). Columns as :func:`rmed_per_layer`; ``info['n_hvp']`` counts products.
    ``lanczos_steps=0`` skips the upper bound on the maximum (``upper`` is then ``inf``)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence}: must be in (0, 1)")
    check_batch(batch)
    chosen = select_params(model, params)
    check_dropout(model)
    alpha = 1 - confidence
    gen = torch.Generator().manual_seed(seed)
    sh = StructuredHessian(model, loss_fn, batch, chosen, chunk=chunk, seed=seed)
    where = {}
    for s in sh.sites:
        for attr in ("weight", "bias"):
            if getattr(s, attr):
                where[getattr(s, attr)] = (s, attr)
    rows, n_hvp = [], 0
    for name, p in chosen.items():
        n = p.numel()
        idx = torch.randint(0, n, (n_samples,), generator=gen)
        uniq, inv = torch.unique(idx, return_inverse=True)
        cand = torch.empty(0, dtype=torch.long)
        if name in where:
            s, attr = where[name]
            vals = site_entries(sh, s, attr, uniq).abs().cpu()
            if n_candidates and s.g is not None:
                cand = _candidates(sh, s, attr, n_candidates)
                cand = cand[~torch.isin(cand, uniq)]
                cvals = site_entries(sh, s, attr, cand).abs().cpu() if len(cand) else torch.empty(0)
            else:
                cvals = torch.empty(0)
        else:  # brute-force entries
            from .brute import brute_entries
            both = torch.unique(uniq)
            vals = brute_entries(model, loss_fn, batch, name, p, both, chunk=chunk).abs().cpu()
            n_hvp += len(both)
            cvals = torch.empty(0)
        x = vals[inv].double()
        xs = torch.sort(x).values
        l, u = order_statistic_ranks(n_samples, alpha / 4)
        med = float(median(x))
        # the interval must contain the sample median; widening it keeps the coverage guarantee
        med_lo, med_hi = min(float(xs[l - 1]), med), max(float(xs[u - 1]), med)
        max_lo = float(torch.cat([vals.double(), cvals.double()]).max())
        if lanczos_steps:
            op = HessianOperator(model, loss_fn, batch, [name], chunk=chunk)
            max_hi, used = _norm_upper(op, lanczos_steps, alpha / 2, seed)
            n_hvp += used
        else:
            max_hi = math.inf
        max_hi = max(max_hi, max_lo)  # a verified entry beats a bound spoilt by round-off (zero blocks)
        point = max_lo / med if med > 0 else math.inf
        rows.append(dict(layer=name, numel=n, r_med=point, method="sampled",
                         lower=max_lo / med_hi if med_hi > 0 else math.inf,
                         upper=max_hi / med_lo if med_lo > 0 else math.inf,
                         confidence=confidence, h_max=max_lo, h_median=med))
    if info is not None:
        info["n_hvp"] = info.get("n_hvp", 0) + n_hvp + sh.n_hvp
    return pd.DataFrame(rows, columns=COLUMNS)


def _candidates(sh: StructuredHessian, s, attr: str, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest entries of a cheap proxy (``K`` probes ``1 (x) e_i``)."""
    dt, dev = s.delta.dtype, s.delta.device
    K = s.K
    S = torch.zeros(s.N, s.T, K, dtype=dt, device=dev)
    ar = lambda e: torch.arange(e, device=dev)  # noqa: E731

    def make(a: int, e: int) -> torch.Tensor:
        v = torch.zeros(e - a, s.N, s.T, K, dtype=dt, device=dev)
        v[ar(e - a), :, :, ar(e - a) + a] = 1
        return v

    def post(a: int, e: int, r: torch.Tensor) -> None:
        S[..., a:e] = r.diagonal(offset=a, dim1=0, dim2=3)[..., : e - a]

    sh._map(s, K, make, post)
    A = s.A.to(dt)
    if attr == "bias":
        proxy = S.sum((0, 1)).abs()
    elif s.kind == "diag":
        proxy = (S * A * A).sum((0, 1)).abs()
    else:
        proxy = torch.einsum("ntk,ntj->kj", S, A * A).abs()
        if type(s.module) is nn.Embedding:
            proxy = proxy.T
    proxy = proxy.flatten()
    return torch.topk(proxy, min(k, proxy.numel())).indices.cpu()
