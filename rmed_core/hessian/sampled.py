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


def order_statistic_ranks(m: int, tail: float) -> tuple[int, int]:
    """1-based ranks ``l <= u`` with ``P(Bin(m,1/2) < l) <= tail`` and ``P(Bin(m,1/2) >= u) <= tail``
    (``l = 1``/``u = m`` and the bound simply weaker when ``m`` is too small)."""
    l = int(binom.ppf(tail, m, 0.5))          # P(B <= l-1) <= tail  <=>  P(B < l) <= tail
    while l > 0 and binom.cdf(l - 1, m, 0.5) > tail:
        l -= 1
    l = max(l, 1)
    u = m + 1 - l
    return l, u


def block_norm_upper(op: HessianOperator, steps: int, delta: float, seed: int) -> tuple[list[float], int]:
    """For every tensor (diagonal block ``H_b`` of ``op``), an upper bound on ``||H_b||_2`` that
    holds with probability >= 1 - delta (module doc), and the number of HVPs spent.

    The Lanczos runs on ``H_b^2`` advance in lockstep: each step is two batched products whose
    ``b``-th column is supported on block ``b`` (restricting ``H v`` to block ``b`` gives
    ``H_b v_b``), so all blocks cost ``2 * steps`` backward passes, not ``2 * steps`` per block."""
    sizes = op.sizes
    offs = np.cumsum([0] + sizes)
    B = len(sizes)
    rng = np.random.default_rng(seed)
    k = [max(1, min(steps, n)) for n in sizes]
    m = max(k)
    Q = [np.zeros((n, m)) for n in sizes]
    alpha, beta = np.zeros((B, m)), np.zeros((B, m))
    q = [v / np.linalg.norm(v) for v in (rng.standard_normal(n) for n in sizes)]
    done = [False] * B
    used = [0] * B

    def blockwise(vecs: list[np.ndarray]) -> list[np.ndarray]:
        V = torch.zeros(op.dim, B, dtype=torch.float64)
        for b in range(B):
            V[offs[b]:offs[b + 1], b] = torch.from_numpy(vecs[b])
        Y = op.matmat(V).double().cpu().numpy()
        return [Y[offs[b]:offs[b + 1], b] for b in range(B)]

    for j in range(m):
        active = [b for b in range(B) if not done[b] and j < k[b]]
        if not active:
            break
        for b in active:
            Q[b][:, j] = q[b]
        w = blockwise(blockwise([q[b] if b in active else np.zeros(sizes[b]) for b in range(B)]))
        for b in active:
            used[b] = j + 1
            qb = Q[b][:, : j + 1]
            alpha[b, j] = q[b] @ w[b]
            wb = w[b] - qb @ (qb.T @ w[b])
            wb = wb - qb @ (qb.T @ wb)
            nb = np.linalg.norm(wb)
            if j + 1 < k[b]:
                if nb < 1e-12 * max(1.0, abs(alpha[b, j])):
                    done[b] = True  # invariant subspace: its Ritz values are exact
                    continue
                beta[b, j] = nb
                q[b] = wb / nb
    out = []
    for b in range(B):
        u = used[b]
        T = np.diag(alpha[b, :u]) + np.diag(beta[b, : u - 1], 1) + np.diag(beta[b, : u - 1], -1)
        theta = float(np.linalg.eigvalsh(T).max())
        if done[b] or u >= sizes[b]:  # Krylov space exhausted: theta is exact
            out.append(math.sqrt(max(theta, 0.0)))
            continue
        eps = (math.log(1.648 * math.sqrt(sizes[b]) / delta) / (2 * u - 1)) ** 2
        out.append(math.inf if eps >= 1 else math.sqrt(max(theta, 0.0) / (1 - eps)))
    return out, 2 * m * B


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
    sh.site_grads()
    where = {}
    for s in sh.sites:
        for attr in ("weight", "bias"):
            if getattr(s, attr):
                where[getattr(s, attr)] = (s, attr)
    rows, n_hvp = [], 0
    if lanczos_steps:
        op = HessianOperator(model, loss_fn, batch, list(chosen), chunk=chunk)
        norm_hi, used = block_norm_upper(op, lanczos_steps, alpha / 2, seed)
        n_hvp += used
        del op
    for name, hi in zip(chosen, norm_hi if lanczos_steps else [math.inf] * len(chosen)):
        p = chosen[name]
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
        max_hi = hi
        # a verified entry is a hard lower bound on the maximum, so no valid upper bound is below it
        # (they can cross only by rounding, in blocks that are zero in theory)
        max_hi = max(max_hi, max_lo)
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
