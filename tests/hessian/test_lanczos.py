"""Lanczos in lockstep and the norm bound built on it, against dense eigenvalues."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rmed_core.hessian.lanczos import lanczos, norm_upper_bound


def _spd(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (q * np.geomspace(1e-3, 10.0, n)) @ q.T


def test_runs_in_lockstep_find_each_extreme_eigenvalue():
    mats = [_spd(30, 0), _spd(12, 1)]
    rng = np.random.default_rng(2)
    runs = lanczos(lambda vs: [a @ v for a, v in zip(mats, vs)], [rng.standard_normal(len(a)) for a in mats], 40)
    for a, run in zip(mats, runs):
        w = np.linalg.eigvalsh(a)
        theta, weights = run.ritz()
        assert run.exhausted and run.steps == len(a)  # 40 steps exceed both dimensions
        assert math.isclose(theta.max(), w.max(), rel_tol=1e-9) and math.isclose(theta.min(), w.min(), rel_tol=1e-6)
        assert math.isclose(weights.sum(), 1.0, rel_tol=1e-9)  # quadrature weights of a unit start


def test_an_invariant_start_stops_early():
    a = np.diag([1.0, 2.0, 3.0, 4.0])
    (run,) = lanczos(lambda vs: [a @ vs[0]], [np.array([1.0, 1.0, 0.0, 0.0])], 4)
    assert run.steps == 2 and run.exhausted
    np.testing.assert_allclose(np.sort(run.ritz()[0]), [1.0, 2.0], rtol=1e-12)


def test_norm_bound_holds_and_is_exact_when_exhausted():
    a = _spd(50, 3)
    top = float(np.linalg.eigvalsh(a).max())
    rng = np.random.default_rng(4)
    misses = 0
    for _ in range(50):  # the bound holds with probability >= 1 - delta for every start
        (run,) = lanczos(lambda vs: [a @ (a @ vs[0])], [rng.standard_normal(50)], 8)
        misses += norm_upper_bound(run, 50, delta=0.05) < top
    assert misses <= 10  # expected at most 2.5
    (full,) = lanczos(lambda vs: [a @ (a @ vs[0])], [rng.standard_normal(50)], 50)
    assert full.exhausted and math.isclose(norm_upper_bound(full, 50, 0.05), top, rel_tol=1e-8)


def test_too_few_steps_give_no_bound():
    a = _spd(20, 5)
    (run,) = lanczos(lambda vs: [a @ (a @ vs[0])], [np.ones(20)], 1)
    assert norm_upper_bound(run, 20, delta=1e-6) == math.inf


@pytest.mark.parametrize("steps", [3, [3, 5]])
def test_steps_are_capped_per_run(steps):
    mats = [_spd(4, 6), _spd(6, 7)]
    runs = lanczos(lambda vs: [m @ v for m, v in zip(mats, vs)], [np.ones(4), np.ones(6)], steps)
    assert [r.steps for r in runs] == ([3, 3] if steps == 3 else [3, 5])
