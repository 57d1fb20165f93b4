"""Lanczos with full reorthogonalisation, for several independent symmetric operators at once.

Every spectral routine of the engine is one of these: stochastic Lanczos quadrature
(:mod:`.spectrum`), and the probabilistic upper bounds on a block's norm that cap the largest
diagonal entry (:mod:`.sampled`). ``B`` independent runs advance in lockstep, so that a caller
whose operators are diagonal blocks of one map (the Hessian restricted to each tensor, or to each
sample's output block) pays one batched product per step for all of them.

Source: Lanczos (1950); Golub & Van Loan, *Matrix Computations*, 4th ed., sec. 10.1 (full
reorthogonalisation); the norm bound of Kuczynski & Wozniakowski (1992, Thm 4.1).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["LanczosRun", "lanczos", "norm_upper_bound", "norm_upper_bounds"]


@dataclass(frozen=True)
class LanczosRun:
    """The tridiagonal matrix of one run: ``alpha`` (``k``), ``beta`` (``k - 1``), and whether the
    Krylov space became invariant (then its Ritz values are eigenvalues exactly)."""

    alpha: np.ndarray
    beta: np.ndarray
    exhausted: bool

    @property
    def steps(self) -> int:
        return len(self.alpha)

    def ritz(self) -> tuple[np.ndarray, np.ndarray]:
        """Ritz values and the squared first components of their vectors (the quadrature weights)."""
        T = np.diag(self.alpha) + np.diag(self.beta, 1) + np.diag(self.beta, -1)
        theta, S = np.linalg.eigh(T)
        return theta, S[0] ** 2


def lanczos(matvecs: Callable[[list[np.ndarray]], list[np.ndarray]], starts: list[np.ndarray],
            steps: int | list[int]) -> list[LanczosRun]:
    """Run ``len(starts)`` Lanczos processes in lockstep.

    Args:
        matvecs: ``[v_b] -> [A_b v_b]`` for every run ``b`` (a run already finished receives a
            zero vector; its result is ignored).
        starts: the start vectors (any nonzero scale).
        steps: the most steps, for all runs or per run (capped at each run's dimension).

    Returns:
        One :class:`LanczosRun` per start vector. Each step is one call of ``matvecs``; a run stops
        early when its next vector vanishes (an invariant subspace).
    """
    B = len(starts)
    dims = [len(v) for v in starts]
    k = [max(1, min(s, n)) for s, n in zip([steps] * B if isinstance(steps, int) else steps, dims)]
    Q = [np.zeros((n, kb)) for n, kb in zip(dims, k)]
    alpha = [np.zeros(kb) for kb in k]
    beta = [np.zeros(max(kb - 1, 0)) for kb in k]
    q = [np.asarray(v, dtype=np.float64) / np.linalg.norm(v) for v in starts]
    used, done = [0] * B, [False] * B
    for j in range(max(k)):
        active = [b for b in range(B) if not done[b] and j < k[b]]
        if not active:
            break
        w = matvecs([q[b] if b in active else np.zeros(dims[b]) for b in range(B)])
        for b in active:
            Q[b][:, j] = q[b]
            used[b] = j + 1
            alpha[b][j] = q[b] @ w[b]
            Qb = Q[b][:, : j + 1]
            wb = w[b] - Qb @ (Qb.T @ w[b])
            wb = wb - Qb @ (Qb.T @ wb)  # twice is enough (Kahan-Parlett)
            nb = float(np.linalg.norm(wb))
            if j + 1 < k[b]:
                if nb < 1e-12 * max(1.0, abs(alpha[b][j])):
                    done[b] = True
                    continue
                beta[b][j] = nb
                q[b] = wb / nb
    return [LanczosRun(alpha[b][: used[b]], beta[b][: max(used[b] - 1, 0)],
                       done[b] or used[b] >= dims[b]) for b in range(B)]


def norm_upper_bound(run: LanczosRun, dim: int, delta: float) -> float:
    """An upper bound on ``||A||_2`` from a run of Lanczos on ``A^2`` (PSD) from a Gaussian start,
    holding with probability ``>= 1 - delta``.

    With ``theta`` the largest Ritz value after ``k`` steps, Kuczynski & Wozniakowski (1992, Thm
    4.1) give ``P(theta < (1 - eps) lambda_max) <= 1.648 sqrt(dim) exp(-sqrt(eps) (2k - 1))``;
    ``eps`` is chosen so that this is ``delta``, and ``||A|| = sqrt(lambda_max(A^2)) <=
    sqrt(theta / (1 - eps))`` (``inf`` when ``eps >= 1``: too few steps for ``delta``). An
    exhausted Krylov space gives ``theta`` exactly."""
    theta = max(float(run.ritz()[0].max()), 0.0)
    if run.exhausted:
        return math.sqrt(theta)
    eps = (math.log(1.648 * math.sqrt(dim) / delta) / (2 * run.steps - 1)) ** 2
    return math.inf if eps >= 1 else math.sqrt(theta / (1 - eps))


def norm_upper_bounds(matvecs: Callable[[list[np.ndarray]], list[np.ndarray]], starts: list[np.ndarray],
                      steps: int, delta: float) -> list[float]:
    """Upper bounds on ``||A_b||_2`` for ``len(starts)`` symmetric operators at once: Lanczos on
    ``A_b^2`` (``matvecs`` applied twice per step: ``2 steps`` calls) from the Gaussian
    ``starts``, each bound (:func:`norm_upper_bound`) holding with probability ``>= 1 - delta``."""
    runs = lanczos(lambda vs: matvecs(matvecs(vs)), starts, steps)
    return [norm_upper_bound(r, len(v), delta) for r, v in zip(runs, starts)]
