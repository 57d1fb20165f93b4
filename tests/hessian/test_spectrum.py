"""Spectral routines against the dense Hessian of a tiny float64 model."""
from __future__ import annotations

import numpy as np
import torch

from rmed_core.hessian import blockwise_spectra, hessian_trace, spectral_density, top_eigenvalues
from rmed_core.hessian.testing import make_case


def _dense(m, loss, batch, names=None):
    x, y = batch
    named = dict(m.named_parameters())
    names = list(named) if names is None else names
    shapes = [named[n].shape for n in names]
    sizes = [named[n].numel() for n in names]
    flat0 = torch.cat([named[n].detach().flatten() for n in names])

    def f(flat):
        ps = {n: t.view(s) for n, t, s in zip(names, torch.split(flat, sizes), shapes)}
        return loss(torch.func.functional_call(m, ps, (x,), strict=False), y)

    return torch.autograd.functional.hessian(f, flat0).numpy()


def test_top_eigenvalues_match_dense():
    m, loss, batch = make_case("mlp_tanh")
    H = _dense(m, loss, batch)
    w = np.linalg.eigvalsh(H)
    want = w[np.argsort(-np.abs(w))][:3]
    res = top_eigenvalues(m, loss, batch, k=3, tol=1e-6)
    np.testing.assert_allclose(res.eigenvalues, want, rtol=1e-5)
    assert res.n_hvp > 0


def test_trace_interval_covers_dense_trace():
    m, loss, batch = make_case("mlp_tanh")
    tr = float(np.trace(_dense(m, loss, batch)))
    est = hessian_trace(m, loss, batch, n_probes=400, seed=0)
    assert est.lower <= tr <= est.upper and est.n_hvp == 400


def test_slq_moments_match_dense():
    m, loss, batch = make_case("mlp_tanh")
    H = _dense(m, loss, batch)
    n, runs = H.shape[0], 8
    sd = spectral_density(m, loss, batch, n_runs=runs, m=40, seed=0)
    # each run's first moment is q^T H q for its start q = v/|v|, v Gaussian (exact for degree < 2m):
    # q is uniform on the sphere, so q^T H q is unbiased for tr(H)/n with variance
    # 2 (tr(H^2) - tr(H)^2/n) / (n (n + 2))
    mean = (sd.weights * sd.nodes).sum(1).mean()
    se = np.sqrt(2 * ((H ** 2).sum() - np.trace(H) ** 2 / n) / (n * (n + 2))) / np.sqrt(runs)
    assert abs(mean - np.trace(H) / n) < 5 * se + 1e-12
    grid = np.linspace(sd.nodes.min() - 1, sd.nodes.max() + 1, 2000)
    assert abs(np.trapezoid(sd.density(grid), grid) - 1) < 1e-2
    assert sd.n_hvp == runs * 40


def test_blockwise_spectra_extremes_match_blocks():
    m, loss, batch = make_case("mlp_tanh")
    spectra = blockwise_spectra(m, loss, batch, m=200)
    for name, sd in spectra.items():
        if sd.dim < 6:
            # a Rademacher start can be exactly orthogonal to the top eigenvector of a tiny block
            # (the 3-entry output bias of a softmax has the null vector 1: probability 1/4), and
            # then no Krylov method sees it
            continue
        w = np.linalg.eigvalsh(_dense(m, loss, batch, [name]))
        assert abs(sd.nodes.max() - w.max()) <= 1e-6 * max(1.0, abs(w).max()), name
