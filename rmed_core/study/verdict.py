"""The verdict rules: when this project calls a claim about R_med ratios reproduced, and how often
that rule errs, measured by simulation.

**The unit.** For parameter tensor :math:`k` and seed :math:`s`,

.. math::  y_{ks} = \\log\\left(R^{\\mathrm{SGD}}_{\\mathrm{med},ks} / R^{\\mathrm{Adam}}_{\\mathrm{med},ks}\\right),

where the two runs of seed :math:`s` share their initialisation and data order. An R_med that is
undefined or infinite under either optimizer gives no unit: it is left out and counted.

**The rule for a claim** "the ratio exceeds 1" over a set :math:`K` of tensors (all tensors of a
model, or one kind of tensor), fixed before any result is read:

* per seed, :math:`m_s = \\frac{1}{|K_s|}\\sum_{k \\in K_s} y_{ks}` over the tensors :math:`K_s`
  defined in that seed (the tensors of one seed are correlated, so the seed is the unit of
  replication);
* the effect is the geometric-mean ratio :math:`\\exp(\\bar m)`, :math:`\\bar m = \\frac1S \\sum_s m_s`,
  with a 95% t-interval :math:`\\exp(\\bar m \\pm t_{0.975, S-1}\\, \\mathrm{sd}(m)/\\sqrt S)`;
* the test is the exact one-sided sign-flip permutation test over seeds: under "no effect" each
  :math:`m_s` is symmetric about 0, so all :math:`2^S` sign patterns :math:`\\epsilon` are equally
  likely and :math:`p = 2^{-S}\\,\\#\\{\\epsilon : \\sum_s \\epsilon_s m_s \\ge \\sum_s m_s\\}`
  (Good, *Permutation, Parametric and Bootstrap Tests of Hypotheses*, 3rd ed., Springer 2005,
  §3.1, the one-sample test);
* verdict: ``reproduced`` when :math:`p \\le 0.05` for "ratio > 1", ``opposite`` when the same test
  for "ratio < 1" gives :math:`p \\le 0.05`, ``not shown`` otherwise. The smallest attainable
  :math:`p` is :math:`2^{-S}`; with fewer than :func:`min_seeds` (5 at 0.05) seeds the rule cannot
  reject, and the verdict says so: ``not testable: 4 seeds < 5``.

**The control** (a CNN, where no gap is expected) is an equivalence statement by two one-sided
tests (Schuirmann 1987): see :func:`equivalence` and :func:`control_statement`.

**The rule's error rates** come from :func:`simulate_rule`, :func:`verdict_fpr` and
:func:`verdict_power`, with the spread either taken from the published table or measured in a
study by :func:`spread_from_study`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ALPHA", "DEFAULT_MARGIN", "KINDS", "Claim", "Equivalence", "min_seeds", "tensor_kind", "tensor_role",
           "log_ratios", "sign_flip_p", "claim", "claims_by_kind", "equivalence", "equivalence_by_kind", "control_statement",
           "simulate_rule", "verdict_fpr", "verdict_power", "published_spread", "spread_from_study"]

#: The level of every test of this module.
ALPHA = 0.05
#: The equivalence margin for the control: a ratio within [1/1.5, 1.5] counts as "no gap". This is
#: the project's choice (the paper states none); pass another ``margin`` to :func:`equivalence`.
DEFAULT_MARGIN = 1.5
#: The kinds of parameter tensor, as :func:`tensor_kind` names them.
KINDS = ("embedding", "attention", "MLP", "LayerNorm", "output", "conv", "other")
#: The most seeds for which the sign-flip test enumerates its 2^S patterns.
MAX_EXACT_SEEDS = 20
NOT_TESTABLE = "not testable"


# -- checks ------------------------------------------------------------------------------------------
def _count(name: str, value: Any, least: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"{name}={value!r}: expected an integer >= {least}")
    return int(value)


def _level(name: str, value: Any) -> float:
    if not (isinstance(value, (int, float)) and 0 < value < 1):
        raise ValueError(f"{name}={value!r}: expected a number strictly between 0 and 1")
    return float(value)


def _sd(name: str, value: Any, n: int) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(value, dtype=float), (n,)) if np.ndim(value) == 0 else np.asarray(value, float)
    if arr.shape != (n,) or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name}={value!r}: expected a finite number >= 0, or {n} of them (one per tensor)")
    return arr


def min_seeds(alpha: float = ALPHA) -> int:
    """The fewest seeds with which the exact sign-flip test can reach ``p <= alpha``: the smallest
    :math:`S` with :math:`2^{-S} \\le \\alpha` (5 at 0.05, where :math:`2^{-5} = 0.031`).

    >>> min_seeds(0.05), min_seeds(0.01)
    (5, 7)
    """
    return max(1, math.ceil(math.log2(1 / _level("alpha", alpha)) - 1e-12))


# -- tensor kinds ------------------------------------------------------------------------------------
_BLOCK_PARTS = {"attn": "attention", "fc": "MLP", "out": "MLP", "ln1": "LayerNorm", "ln2": "LayerNorm"}


def _module_kind(module: Any, *, output: bool, in_attention: bool) -> str:
    from torch import nn

    if isinstance(module, nn.Embedding):
        return "embedding"
    if isinstance(module, nn.LayerNorm):
        return "LayerNorm"
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return "conv"
    if isinstance(module, nn.Linear):
        return "output" if output else "attention" if in_attention else "MLP"
    return "other"


def _kind_in_model(model: Any, name: str) -> str:
    from torch import nn

    from .models import SelfAttention

    path = name.rsplit(".", 1)[0] if "." in name else ""
    try:
        module = model.get_submodule(path)
    except AttributeError as e:
        raise ValueError(f"name={name!r}: the model has no module {path!r}") from e
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    parts = path.split(".") if path else []
    in_attention = any(isinstance(model.get_submodule(".".join(parts[:i])), SelfAttention)
                       for i in range(1, len(parts)))
    return _module_kind(module, output=bool(linears) and module is linears[-1], in_attention=in_attention)


@lru_cache(maxsize=1)
def _cnn_layout() -> dict[int, str]:
    """The kind of each numbered layer of the project's CNN (an ``nn.Sequential``, whose parameter
    names are ``<position>.weight``), read from a tiny instance of :class:`~rmed_core.models.CNN`."""
    from .models import CNN

    net = CNN(1, 2, width=1, size=4)
    return {int(i): tensor_kind(f"{i}.weight", net) for i, m in net.named_children()
            if any(True for _ in m.parameters(recurse=False))}


def tensor_kind(name: str, model: Any = None) -> str:
    """The kind of parameter tensor ``name``: one of :data:`KINDS`.

    Without ``model``, from the names of the project's models (:mod:`rmed_core.models`):
    ``tok.*``, ``pos.*`` embedding; ``blocks.<i>.attn.{q,k,v,proj}.*`` attention;
    ``blocks.<i>.{fc,out}.*`` MLP; ``blocks.<i>.{ln1,ln2}.*``, ``ln_f.*`` LayerNorm; ``head.*``
    output; ``<i>.*`` the layers of :class:`~rmed_core.models.CNN` (convolutions, then the
    classifier as output); anything else ``other``. With ``model`` (an ``nn.Module``), from the
    type of the module that holds the tensor: the last ``nn.Linear`` of the model is the output.

    >>> [tensor_kind(n) for n in ("tok.weight", "blocks.0.attn.k.bias", "blocks.1.out.weight", "ln_f.bias")]
    ['embedding', 'attention', 'MLP', 'LayerNorm']
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name={name!r}: expected a parameter name such as 'blocks.0.attn.q.weight'")
    if model is not None:
        return _kind_in_model(model, name)
    parts = name.split(".")
    if len(parts) < 2:
        return "other"
    if parts[0] in ("tok", "pos"):
        return "embedding"
    if parts[0] == "head":
        return "output"
    if parts[0] == "ln_f":
        return "LayerNorm"
    if parts[0] == "blocks" and len(parts) >= 4:
        return _BLOCK_PARTS.get(parts[2], "other")
    if parts[0].isdigit() and len(parts) == 2:
        return _cnn_layout().get(int(parts[0]), "other")
    return "other"


def tensor_role(name: str) -> str:
    """``"bias"`` when the last part of the parameter name is ``bias``, ``"weight"`` otherwise
    (LayerNorm scales and embedding tables included)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name={name!r}: expected a parameter name such as 'blocks.0.attn.q.weight'")
    return "bias" if name.rsplit(".", 1)[-1] == "bias" else "weight"


# -- the units -------------------------------------------------------------------------------------
def log_ratios(rmed: pd.DataFrame, *, num: str = "sgdm", den: str = "adam", steps: Sequence[int] | None = None,
               by: Sequence[str] = ("task", "layer_index", "layer")) -> pd.DataFrame:
    """The units :math:`y_{ks} = \\log(R_{med}(num) / R_{med}(den))`, one row per tensor, step and
    seed probed under both optimizers (the two runs of a seed share initialisation and data order).

    Args:
        rmed: columns ``opt, seed, step, r_med, layer`` and those of ``by`` (as
            :func:`rmed_core.load_results` ``("rmed")`` returns), one run per optimizer and seed.
        steps: the steps to keep (default: every step probed under both).

    Returns:
        Columns ``*by, step, seed, kind, role, ratio, y``. A unit whose R_med is undefined or
        infinite under either optimizer keeps its row with a non-finite ``y``: :func:`claim` leaves
        it out and counts it.
    """
    keys = list(dict.fromkeys([*by, "layer", "step", "seed"]))
    missing = {"opt", "r_med", *keys} - set(rmed.columns)
    if missing:
        raise ValueError(f"rmed: the table lacks columns {sorted(missing)}")
    sides = []
    for opt in (num, den):
        side = rmed[rmed.opt == opt]
        if side.duplicated(keys).any():
            raise ValueError(f"rmed: several rows per {tuple(keys)} under opt={opt!r} (several learning rates or "
                             "scales?); filter the table to one run per optimizer and seed")
        sides.append(side.set_index(keys)["r_med"].astype(float))
    paired = pd.concat(sides, axis=1, keys=["a", "b"], join="inner").reset_index()
    if steps is not None:
        paired = paired[paired.step.isin(list(steps))]
    if paired.empty:
        raise ValueError(f"rmed: no (layer, step, seed) probed under both {num!r} and {den!r}"
                         + (f" at steps {list(steps)}" if steps is not None else ""))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = paired.a / paired.b
        y = np.log(ratio.where(ratio > 0))
    out = paired[keys].assign(kind=paired.layer.map(lambda n: tensor_kind(str(n))),
                              role=paired.layer.map(lambda n: tensor_role(str(n))), ratio=ratio, y=y)
    return out.sort_values(keys, kind="stable").reset_index(drop=True)


def _seed_means(data: pd.DataFrame | Sequence[float]) -> tuple[np.ndarray, int, int]:
    """``(m_s over seeds, number of units left out, number of tensors)`` from units or seed means."""
    if not isinstance(data, pd.DataFrame):
        m = np.asarray(data, dtype=float).ravel()
        if not np.all(np.isfinite(m)):
            raise ValueError(f"data={data!r}: per-seed mean log-ratios must be finite")
        return m, 0, 0
    missing = {"seed", "y"} - set(data.columns)
    if missing:
        raise ValueError(f"data: the table lacks columns {sorted(missing)}")
    for col in ("step", "task"):
        if col in data and data[col].nunique() > 1:
            raise ValueError(f"data: {data[col].nunique()} values of {col!r}; a claim is about one {col}: select it")
    if "layer" in data and data.duplicated(["seed", "layer"]).any():
        raise ValueError("data: several rows per (seed, layer); one unit per tensor and seed")
    finite = np.isfinite(data.y.to_numpy(dtype=float))
    kept = data[finite]
    m = kept.groupby("seed").y.mean().to_numpy(dtype=float)
    n_tensors = int(kept.layer.nunique()) if "layer" in kept else 0
    return m, int((~finite).sum()), n_tensors


# -- the test --------------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def _sign_patterns(n: int) -> np.ndarray:
    """All :math:`2^n` sign vectors, ``(2**n, n)`` of ±1 (the first one all +1)."""
    bits = (np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1
    return (1 - 2 * bits).astype(float)


def _sign_flip_rows(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-sided exact sign-flip p-values (greater, less) of each row of ``m`` ``(R, S)``."""
    n = m.shape[1]
    if n > MAX_EXACT_SEEDS:
        raise ValueError(f"{n} seeds: the exact test enumerates 2^S patterns, at most S = {MAX_EXACT_SEEDS}")
    signs = _sign_patterns(n)
    obs = m.sum(axis=1)
    tol = 1e-12 * np.abs(m).sum(axis=1)  # patterns that tie with the observed sum count as >= and <=
    p_g, p_l = np.empty(len(m)), np.empty(len(m))
    chunk = max(1, 2 ** 22 // len(signs))
    for i in range(0, len(m), chunk):
        flipped = m[i:i + chunk] @ signs.T
        o, t = obs[i:i + chunk, None], tol[i:i + chunk, None]
        p_g[i:i + chunk] = (flipped >= o - t).mean(axis=1)
        p_l[i:i + chunk] = (flipped <= o + t).mean(axis=1)
    return p_g, p_l


def sign_flip_p(m: Sequence[float], alternative: str = "greater") -> float:
    """The exact one-sided sign-flip permutation p-value of per-seed values ``m`` (Good 2005, §3.1):
    the fraction of the :math:`2^S` sign patterns :math:`\\epsilon` with
    :math:`\\sum_s \\epsilon_s m_s \\ge \\sum_s m_s` (``"greater"``) or :math:`\\le` (``"less"``).

    >>> sign_flip_p([1.0, 2.0, 3.0, -0.5, 4.0])  # the identity and flipping -0.5: 2 of 32
    0.0625
    """
    if alternative not in ("greater", "less"):
        raise ValueError(f"alternative={alternative!r}: use 'greater' or 'less'")
    arr = np.asarray(m, dtype=float).ravel()
    if arr.size < 1 or not np.all(np.isfinite(arr)):
        raise ValueError(f"m={m!r}: expected at least one finite value")
    p_g, p_l = _sign_flip_rows(arr[None, :])
    return float(p_g[0] if alternative == "greater" else p_l[0])


def _decide(p_greater: float, p_less: float, n_seeds: int, alpha: float) -> str:
    if n_seeds < min_seeds(alpha):
        return f"{NOT_TESTABLE}: {n_seeds} seeds < {min_seeds(alpha)}"
    return "reproduced" if p_greater <= alpha else "opposite" if p_less <= alpha else "not shown"


def _t_interval(m: np.ndarray, level: float) -> tuple[float, float]:
    """The t-interval of the mean of ``m`` in log space (NaN with fewer than two values)."""
    if len(m) < 2:
        return math.nan, math.nan
    from scipy.stats import t

    half = float(t.ppf((1 + level) / 2, len(m) - 1)) * float(np.std(m, ddof=1)) / math.sqrt(len(m))
    return float(m.mean()) - half, float(m.mean()) + half


@dataclass(frozen=True)
class Claim:
    """The verdict on "the ratio exceeds 1" over a set of tensors, and what it rests on."""

    verdict: str  #: ``reproduced``, ``opposite``, ``not shown`` or ``not testable: S seeds < 5``
    ratio: float  #: geometric-mean ratio :math:`\\exp(\\bar m)`
    lower: float  #: 95% t-interval of the geometric-mean ratio (NaN with one seed)
    upper: float
    p_greater: float  #: sign-flip p for "ratio > 1"
    p_less: float  #: sign-flip p for "ratio < 1"
    n_seeds: int
    n_tensors: int  #: distinct tensors with at least one unit (0 when only seed means were given)
    n_dropped: int  #: units left out: R_med undefined or infinite under either optimizer
    seed_means: tuple[float, ...]  #: :math:`m_s`, one per seed

    def __str__(self) -> str:
        return (f"{self.verdict}: geometric-mean ratio {self.ratio:.2f} (95% t-interval [{self.lower:.2f}, "
                f"{self.upper:.2f}]; sign-flip p = {self.p_greater:.3f} for > 1, {self.p_less:.3f} for < 1; "
                f"{self.n_seeds} seeds, {self.n_tensors} tensors, {self.n_dropped} undefined units left out)")


def claim(data: pd.DataFrame | Sequence[float], *, alpha: float = ALPHA) -> Claim:
    """The rule of this module for "the ratio exceeds 1".

    Args:
        data: units (columns ``seed, y`` and optionally ``layer``, one step of one task: a
            selection of :func:`log_ratios`) or the per-seed means :math:`m_s` themselves.
        alpha: the level of the sign-flip test (default 0.05).

    >>> c = claim([0.3, 0.5, 0.1, 0.4, 0.2])
    >>> c.verdict, round(c.ratio, 3), c.p_greater
    ('reproduced', 1.35, 0.03125)
    >>> claim([0.3, 0.5, 0.1, 0.4]).verdict
    'not testable: 4 seeds < 5'
    """
    alpha = _level("alpha", alpha)
    m, dropped, n_tensors = _seed_means(data)
    if m.size == 0:
        return Claim(f"{NOT_TESTABLE}: 0 seeds < {min_seeds(alpha)}", math.nan, math.nan, math.nan, math.nan,
                     math.nan, 0, n_tensors, dropped, ())
    p_g, p_l = (float(p[0]) for p in _sign_flip_rows(m[None, :]))
    lo, hi = _t_interval(m, 0.95)
    return Claim(_decide(p_g, p_l, m.size, alpha), math.exp(m.mean()), math.exp(lo), math.exp(hi), p_g, p_l,
                 int(m.size), n_tensors, dropped, tuple(float(v) for v in m))


def _kind_groups(units: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """``("all", units)``, then ``(kind, its units)`` for each kind of tensor present (from the
    ``kind`` column, or derived from ``layer``)."""
    if "kind" not in units:
        if "layer" not in units:
            raise ValueError("units: the table lacks columns ['kind'] (or ['layer'] to derive it)")
        units = units.assign(kind=units.layer.map(lambda n: tensor_kind(str(n))))
    return [("all", units)] + [(k, units[units.kind == k]) for k in KINDS if (units.kind == k).any()]


def claims_by_kind(units: pd.DataFrame, *, alpha: float = ALPHA) -> pd.DataFrame:
    """:func:`claim` over all tensors (row ``all``), then over each kind of tensor present.

    The row ``all`` is the claim; the rows by kind describe where the effect lies, each tested at
    ``alpha`` on its own (no correction for the several kinds).

    Returns:
        Columns ``tensors, kind, n_tensors, n_seeds, ratio, lower, upper, p, verdict, n_dropped``
        (``p`` for "ratio > 1").
    """
    groups = _kind_groups(units)
    rows = []
    for label, sub in groups:
        c = claim(sub, alpha=alpha)
        rows.append(dict(tensors=label, n_tensors=c.n_tensors, n_seeds=c.n_seeds, ratio=c.ratio, lower=c.lower,
                         upper=c.upper, p=c.p_greater, verdict=c.verdict, n_dropped=c.n_dropped))
    return pd.DataFrame(rows)


# -- the control ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Equivalence:
    """Whether the geometric-mean ratio lies within ``[1/margin, margin]`` (TOST)."""

    verdict: str  #: ``equivalent``, ``not equivalent`` or ``not testable: S seeds < 2``
    ratio: float
    lower: float  #: 90% t-interval of the geometric-mean ratio
    upper: float
    p: float  #: TOST p-value: the larger of the two one-sided t-test p-values
    margin: float
    n_seeds: int
    n_tensors: int
    n_dropped: int

    def __str__(self) -> str:
        return (f"{self.verdict} within [{1 / self.margin:.2f}, {self.margin:.2f}]: geometric-mean ratio "
                f"{self.ratio:.2f} (90% t-interval [{self.lower:.2f}, {self.upper:.2f}]; TOST p = {self.p:.3f}; "
                f"{self.n_seeds} seeds)")


def equivalence(data: pd.DataFrame | Sequence[float], *, margin: float = DEFAULT_MARGIN,
                alpha: float = ALPHA) -> Equivalence:
    """Two one-sided tests (Schuirmann, *J. Pharmacokinet. Biopharm.* 15:657, 1987) that the
    geometric-mean ratio lies within ``[1/margin, margin]``, on the per-seed means :math:`m_s` of
    :func:`claim`: with :math:`\\delta = \\log(\\mathrm{margin})` and
    :math:`se = \\mathrm{sd}(m)/\\sqrt S`, ``equivalent`` when both
    :math:`t_1 = (\\bar m + \\delta)/se` and :math:`t_2 = (\\delta - \\bar m)/se` exceed
    :math:`t_{1-\\alpha, S-1}` — the same as the :math:`1 - 2\\alpha` (90%) t-interval lying inside
    :math:`[-\\delta, \\delta]`. The default margin, 1.5, is this project's choice.

    >>> equivalence([0.05, -0.02, 0.01, 0.03, -0.04]).verdict
    'equivalent'
    """
    alpha = _level("alpha", alpha)
    if not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin > 1):
        raise ValueError(f"margin={margin!r}: expected a number > 1 (the ratio's bounds are 1/margin and margin)")
    m, dropped, n_tensors = _seed_means(data)
    ratio = math.exp(m.mean()) if m.size else math.nan
    if m.size < 2:
        return Equivalence(f"{NOT_TESTABLE}: {m.size} seeds < 2", ratio, math.nan, math.nan, math.nan, float(margin),
                           int(m.size), n_tensors, dropped)
    from scipy.stats import t

    delta, mean, se = math.log(margin), float(m.mean()), float(np.std(m, ddof=1)) / math.sqrt(m.size)
    if se == 0:
        p = 0.0 if abs(mean) < delta else 1.0
    else:
        p = float(max(t.sf((mean + delta) / se, m.size - 1), t.sf((delta - mean) / se, m.size - 1)))
    lo, hi = _t_interval(m, 1 - 2 * alpha)
    return Equivalence("equivalent" if p <= alpha else "not equivalent", ratio, math.exp(lo), math.exp(hi), p,
                       float(margin), int(m.size), n_tensors, dropped)


def equivalence_by_kind(units: pd.DataFrame, *, margin: float = DEFAULT_MARGIN, alpha: float = ALPHA) -> pd.DataFrame:
    """:func:`equivalence` over all tensors (row ``all``), then over each kind of tensor present,
    as :func:`claims_by_kind` does for the claim; each row tested at ``alpha`` on its own.

    Returns:
        Columns ``tensors, n_tensors, n_seeds, ratio, lower, upper, p, verdict, n_dropped, margin``
        (``lower, upper``: the 90% t-interval; ``p``: the TOST p-value).
    """
    groups = _kind_groups(units)
    rows = []
    for label, sub in groups:
        e = equivalence(sub, margin=margin, alpha=alpha)
        rows.append(dict(tensors=label, n_tensors=e.n_tensors, n_seeds=e.n_seeds, ratio=e.ratio, lower=e.lower,
                         upper=e.upper, p=e.p, verdict=e.verdict, n_dropped=e.n_dropped, margin=e.margin))
    return pd.DataFrame(rows)


def control_statement(language_model: Claim, cnn: Equivalence) -> str:
    """What the CNN shows. It may be called a control only when the language model's gap is
    ``reproduced``; then the control holds when the CNN's ratio is ``equivalent`` to 1. Otherwise
    the text says what the CNN shows on its own."""
    span = f"[{1 / cnn.margin:.2f}, {cnn.margin:.2f}]"
    cnn_ci = f"{cnn.ratio:.2f}, 90% interval [{cnn.lower:.2f}, {cnn.upper:.2f}]"
    if language_model.verdict == "reproduced":
        lm = (f"the language model's gap is reproduced (ratio {language_model.ratio:.2f}, "
              f"p = {language_model.p_greater:.3f})")
        if cnn.verdict == "equivalent":
            return f"The control holds: {lm}, and the CNN's ratio ({cnn_ci}) lies within {span}."
        return f"The control fails: {lm}, but the CNN's ratio ({cnn_ci}) is not shown to lie within {span}."
    own = (f"its ratio is equivalent to 1 within {span}" if cnn.verdict == "equivalent" else
           f"its ratio is not shown to lie within {span}" if cnn.verdict == "not equivalent" else
           f"its equivalence is {cnn.verdict}")
    return (f"No control: the language model's gap is {language_model.verdict} (ratio {language_model.ratio:.2f}), "
            f"so the CNN is not a control; on its own, {own} ({cnn_ci}).")


# -- the rule's error rates, by simulation ---------------------------------------------------------
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
    n_seeds, n_tensors = _count("n_seeds", n_seeds), _count("n_tensors", n_tensors)
    n_sims, alpha = _count("n_sims", n_sims), _level("alpha", alpha)
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
    p_greater, _ = _sign_flip_rows(y.mean(axis=2))
    return float(np.mean(p_greater <= alpha))


def verdict_fpr(n_seeds: int, n_tensors: int, seed_sd: float, tensor_sd: float | Sequence[float],
                n_sims: int = 2000, rng_seed: int = 0, *, rule: Callable[[np.ndarray], bool] | None = None,
                alpha: float = ALPHA) -> float:
    """The false "reproduced" rate of the rule when there is no effect (:func:`simulate_rule` with
    ``log_effect=0``). For a symmetric null it is :math:`2^{-S}\\lfloor \\alpha 2^S \\rfloor`
    (1/32 with 5 seeds)."""
    return simulate_rule(n_seeds, n_tensors, 0.0, seed_sd, tensor_sd, n_sims, rng_seed, rule=rule, alpha=alpha)


def published_spread(step: int = 750, published: pd.DataFrame | None = None) -> pd.DataFrame:
    """The published effect and spread at iteration ``step``, in log space: ``log_effect`` =
    :math:`\\log(\\text{paper mean})` and ``log_sd`` = paper std / paper mean, the per-run spread of
    the log-ratio by the delta method (:math:`\\mathrm{sd}(\\log X) \\approx \\mathrm{sd}(X)/E[X]`).

    Args:
        published: a table like :data:`rmed_core.analysis.PUBLISHED_RATIOS` (the default).
    """
    if published is None:
        from .analysis import PUBLISHED_RATIOS as published
    missing = {"layer_index", "step", "paper_mean", "paper_std"} - set(published.columns)
    if missing:
        raise ValueError(f"published: the table lacks columns {sorted(missing)}")
    rows = published[published.step == step]
    if rows.empty:
        raise ValueError(f"step={step!r}: the published table has iterations {sorted(published.step.unique())}")
    return pd.DataFrame({"layer_index": rows.layer_index.to_numpy(), "log_effect": np.log(rows.paper_mean.to_numpy()),
                         "log_sd": (rows.paper_std / rows.paper_mean).to_numpy()})


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
    n = len(spread) if n_tensors is None else _count("n_tensors", n_tensors)
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
