"""Spectral summaries of the loss Hessian from Hessian-vector products only.

* :func:`top_eigenvalues` -- implicitly restarted Lanczos (ARPACK, through
  ``scipy.sparse.linalg.eigsh``) on the HVP operator. Lanczos needs far fewer products than the
  power iteration with deflation of PyHessian (Yao et al. 2020) for the same accuracy.
* :func:`hessian_trace` -- Hutchinson's estimator ``tr H = E[v^T H v]`` with Rademacher ``v``
  (Hutchinson 1989; Avron & Toledo 2011), with its standard error.
* :func:`spectral_density` -- stochastic Lanczos quadrature (Lin, Saad & Yang 2016; used for
  network Hessians by Ghorbani, Krishnan & Xiao 2019): ``m`` Lanczos steps from each of ``n_runs``
  random unit vectors give Ritz values ``theta_j`` and weights ``tau_j^2`` (squared first
  components of the Ritz vectors), and the density is approximated by
  :math:`\\phi(t) = \\frac{1}{n_{runs}} \\sum_r \\sum_j \\tau_{rj}^2 \\, g_\\sigma(t - \\theta_{rj})`.
* :func:`blockwise_spectra` -- the same per parameter tensor, i.e. the spectra of the diagonal
  blocks of the Hessian (Zhang et al. 2024, *Why Transformers Need Adam: A Hessian Perspective*).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ._hvp import HessianOperator
from ._validate import Batch, LossFn
from .lanczos import lanczos

__all__ = ["EigenResult", "TraceEstimate", "SpectralDensity", "top_eigenvalues", "hessian_trace",
           "spectral_density", "blockwise_spectra"]


@dataclass(frozen=True)
class EigenResult:
    """Eigenvalues (descending), their eigenvectors (``(dim, k)``, float64) and the number of
    Hessian-vector products spent."""
    eigenvalues: np.ndarray
    n_hvp: int
    eigenvectors: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TraceEstimate:
    """Hutchinson estimate of ``tr H`` with its standard error and a normal-approximation
    confidence interval ``(lower, upper)`` at ``confidence``."""
    estimate: float
    stderr: float
    lower: float
    upper: float
    confidence: float
    n_hvp: int


@dataclass(frozen=True)
class SpectralDensity:
    """Stochastic Lanczos quadrature nodes ``(n_runs, m)`` and weights (each run's sum to 1)."""
    nodes: np.ndarray
    weights: np.ndarray
    dim: int
    n_hvp: int

    def density(self, grid: np.ndarray, sigma: float | None = None) -> np.ndarray:
        """The Gaussian-smoothed spectral density on ``grid`` (integrates to about 1)."""
        grid = np.asarray(grid, dtype=np.float64)
        if sigma is None:
            span = float(self.nodes.max() - self.nodes.min()) or 1.0
            sigma = 1e-2 * span
        d = grid[:, None, None] - self.nodes[None]
        g = np.exp(-0.5 * (d / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
        return (g * self.weights[None]).sum(axis=(1, 2)) / self.nodes.shape[0]


def top_eigenvalues(model: nn.Module, loss_fn: LossFn, batch: Batch, k: int = 5, *, params=None,
                    tol: float = 1e-3, which: str = "LM", seed: int = 0, return_vectors: bool = False,
                    ncv: int | None = None) -> EigenResult:
    """The ``k`` eigenvalues of the (block) Hessian of largest magnitude (``which="LM"``, what
    power iteration finds) or largest value (``"LA"``), by Lanczos (``scipy.sparse.linalg.eigsh``)
    on the HVP operator in float64. ``tol`` is the relative accuracy asked of each eigenvalue
    (ARPACK is given ``tol/10``). Source: Lanczos (1950); ARPACK (Lehoucq, Sorensen & Yang 1998).

    >>> import torch; from rmed_core.models import MLP
    >>> _ = torch.manual_seed(0); net = MLP([4, 8, 3]).double()
    >>> x, y = torch.randn(16, 4, dtype=torch.float64), torch.randint(0, 3, (16,))
    >>> res = top_eigenvalues(net, torch.nn.functional.cross_entropy, (x, y), k=2)
    >>> H = torch.autograd.functional.hessian(lambda *p: torch.nn.functional.cross_entropy(
    ...     torch.func.functional_call(net, dict(zip(dict(net.named_parameters()), p)), x), y),
    ...     tuple(net.parameters()))
    >>> bool(abs(res.eigenvalues[0] - torch.linalg.eigvalsh(torch.cat([torch.cat(
    ...     [h.reshape(p1.numel(), p2.numel()) for h, p2 in zip(row, net.parameters())], 1)
    ...     for row, p1 in zip(H, net.parameters())])).abs().max().item()) < 1e-6)
    True
    """
    from scipy.sparse.linalg import eigsh

    op = HessianOperator(model, loss_fn, batch, params)
    if not 1 <= k < op.dim:
        raise ValueError(f"k={k}: need 1 <= k < {op.dim} (the number of parameters)")
    rng = np.random.default_rng(seed)
    v0 = rng.standard_normal(op.dim)
    if op.dim <= max(2 * k + 2, 20):  # tiny: the dense matrix is cheaper
        H = op.matmat(torch.eye(op.dim, dtype=torch.float64)).double().cpu().numpy()
        w, V = np.linalg.eigh((H + H.T) / 2)
    else:
        w, V = eigsh(op.scipy(), k=k, which=which, tol=tol / 10, v0=v0,
                     ncv=ncv or min(op.dim, max(2 * k + 1, 20)))
    order = np.argsort(-np.abs(w) if which == "LM" else -w)[:k]
    return EigenResult(w[order], op.n_hvp, V[:, order] if return_vectors else None)


def hessian_trace(model: nn.Module, loss_fn: LossFn, batch: Batch, n_probes: int = 100, *, params=None,
                  seed: int = 0, confidence: float = 0.95) -> TraceEstimate:
    """Hutchinson: ``tr H ~ (1/m) sum_r v_r^T H v_r`` with Rademacher ``v_r`` (Hutchinson 1989).
    The interval is mean +- z * s / sqrt(m) (normal approximation, s the sample std).

    Least squares, whose Hessian trace is ``2 (sum_j mean_n x_nj^2 + 1)``:

    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Linear(5, 1).double()
    >>> x, y = torch.randn(32, 5, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64)
    >>> est = hessian_trace(model, torch.nn.functional.mse_loss, (x, y), n_probes=200, seed=0)
    >>> exact = float(2 * ((x ** 2).mean(0).sum() + 1))
    >>> est.lower <= exact <= est.upper, est.n_hvp
    (True, 200)
    """
    from scipy.stats import norm

    if n_probes < 2:
        raise ValueError(f"n_probes={n_probes}: need at least 2 for a standard error")
    op = HessianOperator(model, loss_fn, batch, params)
    g = torch.Generator().manual_seed(seed)
    V = (torch.randint(0, 2, (op.dim, n_probes), generator=g) * 2 - 1).to(op.dtype)
    HV = op.matmat(V).cpu()
    samples = (V * HV).sum(0).double().numpy()
    est, se = float(samples.mean()), float(samples.std(ddof=1) / math.sqrt(n_probes))
    z = float(norm.ppf(0.5 + confidence / 2))
    return TraceEstimate(est, se, est - z * se, est + z * se, confidence, op.n_hvp)


def _slq(op: HessianOperator, n_runs: int, m: int, seed: int) -> SpectralDensity:
    rng = np.random.default_rng(seed)
    m = min(m, op.dim)

    def mv(x: np.ndarray) -> np.ndarray:
        return op.matvec(torch.from_numpy(x)).double().cpu().numpy()

    nodes, weights = np.zeros((n_runs, m)), np.zeros((n_runs, m))
    for r in range(n_runs):
        # Gaussian, not Rademacher: a ±1 vector can be exactly a null vector of a block (the
        # all-ones vector is one for the bias of a softmax output layer), which ends Lanczos at once
        v0 = rng.standard_normal(op.dim)
        th, w = lanczos(lambda vs: [mv(vs[0])], [v0], m)[0].ritz()
        nodes[r, : len(th)], weights[r, : len(w)] = th, w
        if len(th) < m:  # early breakdown: pad with zero-weight copies
            nodes[r, len(th):] = th[-1]
    return SpectralDensity(nodes, weights, op.dim, op.n_hvp)


def spectral_density(model: nn.Module, loss_fn: LossFn, batch: Batch, *, params=None, n_runs: int = 3,
                     m: int = 60, seed: int = 0) -> SpectralDensity:
    """Stochastic Lanczos quadrature (Ghorbani, Krishnan & Xiao 2019): ``n_runs * m`` HVPs.

    With ``m`` at least the dimension, each run's nodes are the Hessian's eigenvalues exactly:

    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Linear(3, 1).double()
    >>> x, y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
    >>> sd = spectral_density(model, torch.nn.functional.mse_loss, (x, y), n_runs=2, m=4, seed=0)
    >>> X = torch.cat([x, torch.ones(16, 1, dtype=torch.float64)], 1)
    >>> bool(abs(sd.nodes.max() - float(torch.linalg.eigvalsh(2 * X.T @ X / 16).max())) < 1e-9), sd.n_hvp
    (True, 8)
    """
    return _slq(HessianOperator(model, loss_fn, batch, params), n_runs, m, seed)


def blockwise_spectra(model: nn.Module, loss_fn: LossFn, batch: Batch, *, params=None, n_runs: int = 1,
                      m: int = 40, seed: int = 0) -> dict[str, SpectralDensity]:
    """SLQ density of each diagonal block ``H[p, p]`` (one per parameter tensor), as in Zhang et
    al. 2024 (*Why Transformers Need Adam: A Hessian Perspective*), keyed by parameter name.

    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Linear(3, 1).double()
    >>> x, y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
    >>> blocks = blockwise_spectra(model, torch.nn.functional.mse_loss, (x, y), m=3)
    >>> sorted(blocks), round(float(blocks["bias"].nodes.max()), 12)  # the bias block is [[2]]
    (['bias', 'weight'], 2.0)
    """
    from ._validate import select_params

    names = list(select_params(model, params))
    return {n: _slq(HessianOperator(model, loss_fn, batch, [n]), n_runs, m, seed) for n in names}
