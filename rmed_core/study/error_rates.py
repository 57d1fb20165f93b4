"""How often the verdict rule errs, by simulation: its false-"reproduced" rate when there is no
effect and its power at the published effect, with the spread taken from the published table or
measured in a study.

Studies are simulated as :math:`y_{ks} = \\mu_k + a_s + e_{ks}` (:func:`simulate_rule`).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .published import published_spread
from .verdict import ALPHA, check_count, check_level, min_seeds, sign_flip_rows

__all__ = ["simulate_rule", "verdict_fpr", "verdict_power", "spread_from_study"]


def _sd(name: str, value: Any, n: int) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(value, dtype=float), (n,)) if np.ndim(value) == 0 else np.asarray(value, float)
    if arr.shape != (n,) or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name}={value!r}: expected a finite number >= 0, or {n} of them (one per tensor)")
    return arr


def simulate_rule(n_seeds: int, n_tensors: int, log_effect: float | Sequence[float] = 0.0, seed_sd: float = 0.3,
                  tensor_sd: float | Sequence[float] = 0.3, n_sims: int = 2000, rng_seed: int = 0, *,
                  rule: Callable[[np.ndarray], bool] | None = None, alpha: float = ALPHA) -> float:
    """The rate at which a rule says ``reproduced`` on simulated studies:
    :math:`y_{ks} = \\mu_k + a_s + e_{ks}`, :math:`a_s \\sim N(0, \\mathrm{seed\\_sd}^2)` shared by all
    tensors of seed :math:`s` (the tensors of one seed are correlated),
    :math:`e_{ks} \\sim N(0, \\mathrm{tensor\\_sd}_k^2)`, all independent.

    Args:
        log_effect: :math:`\\mu_k`, one number or one per tensor.
        tensor_sd: one number or one per tensor.
        rule: a function of one study's ``y`` (``(n_seeds, n_tensors)``) returning whether it claims
            the effect; default: :func:`claim`'s verdict is ``reproduced``.
    """
    n_seeds, n_tensors = check_count("n_seeds", n_seeds), check_count("n_tensors", n_tensors)
    n_sims, alpha = check_count("n_sims", n_sims), check_level("alpha", alpha)
    mu = np.broadcast_to(np.asarray(log_effect, float), (n_tensors,)) if np.ndim(log_effect) == 0 \
        else np.asarray(log_effect, float)
    if mu.shape != (n_tensors,) or not np.all(np.isfinite(mu)):
        raise ValueError(f"log_effect={log_effect!r}: expected a finite number, or {n_tensors} of them")
    seed_sd = float(_sd("seed_sd", seed_sd, 1)[0])
    tensor_sd = _sd("tensor_sd", tensor_sd, n_tensors)
    rng = np.random.default_rng(rng_seed)
    y = (mu[None, None, :] + seed_sd * rng.standard_normal((n_sims, n_seeds, 1))
         + tensor_sd[None, None, :] * rng.standard_normal((n_sims, n_seeds, n_tensors)))
    if rule is not None:
        return float(np.mean([bool(rule(study)) for study in y]))
    if n_seeds < min_seeds(alpha):
        return 0.0  # the rule refuses to claim: "not testable"
    p_greater, _ = sign_flip_rows(y.mean(axis=2))
    return float(np.mean(p_greater <= alpha))


def verdict_fpr(n_seeds: int, n_tensors: int, seed_sd: float, tensor_sd: float | Sequence[float],
                n_sims: int = 2000, rng_seed: int = 0, *, rule: Callable[[np.ndarray], bool] | None = None,
                alpha: float = ALPHA) -> float:
    """The false "reproduced" rate of the rule when there is no effect (:func:`simulate_rule` with
    ``log_effect=0``). For a symmetric null it is :math:`2^{-S}\\lfloor \\alpha 2^S \\rfloor`
    (1/32 with 5 seeds)."""
    return simulate_rule(n_seeds, n_tensors, 0.0, seed_sd, tensor_sd, n_sims, rng_seed, rule=rule, alpha=alpha)


def verdict_power(n_seeds: int, *, step: int = 750, n_tensors: int | None = None, shared: float = 1.0,
                  seed_sd: float | None = None, tensor_sd: float | Sequence[float] | None = None,
                  n_sims: int = 2000, rng_seed: int = 0, rule: Callable[[np.ndarray], bool] | None = None,
                  alpha: float = ALPHA, published: pd.DataFrame | None = None) -> float:
    """The rate at which the rule says ``reproduced`` at the published effect of iteration ``step``
    (:func:`published_spread`): :math:`\\mu_k` the published log-means, repeated to ``n_tensors``
    when given (default: the published tensors).

    The published std is the per-run spread of each tensor alone; how much of it the tensors of one
    run share is not published. ``shared`` is that fraction of the variance: the seed-level sd is
    :math:`\\sqrt{\\mathrm{shared}}` times the root-mean-square published ``log_sd`` and the
    per-tensor sd is :math:`\\sqrt{1 - \\mathrm{shared}}` times each tensor's ``log_sd``.
    ``shared=1`` (the default) is the least favourable case: averaging over tensors then removes no
    noise. Pass ``seed_sd`` and ``tensor_sd`` (e.g. from :func:`spread_from_study`) instead to use
    a measured spread.
    """
    spread = published_spread(step, published)
    n = len(spread) if n_tensors is None else check_count("n_tensors", n_tensors)
    mu, sd = np.resize(spread.log_effect.to_numpy(), n), np.resize(spread.log_sd.to_numpy(), n)
    if (seed_sd is None) != (tensor_sd is None):
        raise ValueError("seed_sd, tensor_sd: pass both (a measured spread) or neither (the published one)")
    if seed_sd is None:
        if not (isinstance(shared, (int, float)) and 0 <= shared <= 1):
            raise ValueError(f"shared={shared!r}: expected a fraction between 0 and 1")
        seed_sd, tensor_sd = math.sqrt(shared * float(np.mean(sd ** 2))), math.sqrt(1 - shared) * sd
    return simulate_rule(n_seeds, n, mu, seed_sd, tensor_sd, n_sims, rng_seed, rule=rule, alpha=alpha)


def spread_from_study(y: pd.DataFrame) -> dict[str, float]:
    """The seed-level and per-tensor sds of a study's log-ratios, for :func:`simulate_rule`.

    The random-effects decomposition of :math:`y_{ks} = \\mu_k + a_s + e_{ks}` by two-way ANOVA
    without replication, on the tensors defined in every seed: the within variance
    :math:`\\hat\\sigma_e^2 = \\sum_{ks} (y_{ks} - \\bar y_{k\\cdot} - \\bar y_{\\cdot s} + \\bar y)^2 / ((S-1)(K-1))`
    and, since :math:`\\mathrm{Var}(m_s) = \\sigma_a^2 + \\sigma_e^2/K`, the seed-level variance
    :math:`\\hat\\sigma_a^2 = \\max(0, \\mathrm{var}(m_s) - \\hat\\sigma_e^2/K)`.

    Args:
        y: columns ``seed, layer, y`` (one step of one task: a selection of :func:`log_ratios`).

    Returns:
        ``seed_sd, tensor_sd, n_seeds, n_tensors`` and ``n_left_out`` (tensors without a finite
        unit in every seed).
    """
    missing = {"seed", "layer", "y"} - set(y.columns)
    if missing:
        raise ValueError(f"y: the table lacks columns {sorted(missing)}")
    if y.duplicated(["seed", "layer"]).any():
        raise ValueError("y: several rows per (seed, layer); one unit per tensor and seed")
    wide = y.pivot(index="seed", columns="layer", values="y").astype(float)
    complete = wide.loc[:, np.isfinite(wide).all(axis=0)]
    n_seeds, n_tensors = complete.shape
    if n_seeds < 2 or n_tensors < 2:
        raise ValueError(f"y: {n_seeds} seeds and {n_tensors} tensors defined in every seed; need at least 2 of each")
    a = complete.to_numpy()
    resid = a - a.mean(axis=1, keepdims=True) - a.mean(axis=0, keepdims=True) + a.mean()
    within = float((resid ** 2).sum()) / ((n_seeds - 1) * (n_tensors - 1))
    between = float(np.var(a.mean(axis=1), ddof=1))
    return {"seed_sd": math.sqrt(max(0.0, between - within / n_tensors)), "tensor_sd": math.sqrt(within),
            "n_seeds": n_seeds, "n_tensors": n_tensors, "n_left_out": int(wide.shape[1] - n_tensors)}
