"""The two-layer linear network of the theorem: model, closed-form Hessian diagonal, training.

Setting (this project's formulation; the paper's exact assumptions are not available):
:math:`f(x) = W_2 W_1 x` with :math:`W_1 \\in \\mathbb{R}^{m\\times d}` (``width`` m, ``dim`` d),
:math:`W_2 \\in \\mathbb{R}^{k\\times m}`, inputs with second-moment matrix
:math:`S = \\mathbb{E}[x x^\\top]` (default :math:`I_d`), targets :math:`y = A x`, and the square loss

.. math::

    L(W_1, W_2) = \\tfrac12\\,\\mathbb{E}\\,\\lVert W_2 W_1 x - y\\rVert^2
                = \\tfrac12 \\operatorname{tr}\\big((W_2W_1 - A)\\, S\\, (W_2W_1 - A)^\\top\\big).

Its gradients and Hessian diagonal are exact and cheap (``r`` is linear in each layer, so no
residual term); with :math:`R = W_2W_1 - A`,

.. math::

    \\nabla_{W_1} L = W_2^\\top R S, \\quad \\nabla_{W_2} L = R S W_1^\\top, \\qquad
    \\frac{\\partial^2 L}{\\partial W_1[i,j]^2} = \\lVert W_2[:, i]\\rVert^2\\, S_{jj}, \\quad
    \\frac{\\partial^2 L}{\\partial W_2[k,i]^2} = (W_1 S W_1^\\top)_{ii} = \\mathbb{E}[(W_1x)_i^2].

Runs are batched: :func:`train_linear_nets` trains networks that differ only in seed, width and
input dimension as stacks (``W1`` of shape ``(B, m, d)``, ``W2`` of shape ``(B, k, m)``, one per
shape), all views of one parameter tensor under one optimizer. Loss, gradients and Hessian
diagonal are batched matrix products, one per network, and every optimizer of
:mod:`rmed_core.optim` is elementwise (each entry moves by its own gradient and state; step count
and learning rate are shared), so each network follows the run it would follow alone: bitwise,
whatever else is in its batch (on CPU; against an unbatched ``mm``, products of fewer than about
400 multiply-adds can differ in the last bit, as torch computes small batched ones itself). Training
runs on one CPU thread: these products gain nothing from more, and on a busy machine each parallel
region can wait milliseconds for a thread (measured: 30 times slower per step on 2 busy cores).
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .devices import select_device
from .optim import check_optimizer_name, make_optimizer
from .provenance import provenance
from .stats import r_med
from .validation import check_choice, check_positive

__all__ = ["DEFAULT_LR", "LinearNetConfig", "LinearNetProblem", "LinearNetRun", "closed_form_hessian_diagonal",
           "closed_form_error", "gradient_flow_limit", "make_problem", "population_gradients", "population_loss",
           "train_linear_net", "train_linear_nets", "final_rmed_sweep", "THEOREM_SCALES", "theorem_settings",
           "trajectory_runs", "chi2_ratio_quantiles", "sign_flow_check", "sign_flow_checks"]

#: Learning rates used when ``lr`` is not given (stable for the default problem, ||A|| = 1).
DEFAULT_LR: dict[str, float] = {"gd": 0.1, "sgdm": 0.02, "adam": 1e-3, "signgd": 1e-4, "signum": 1e-4,
                                "rmsprop": 1e-3, "adagrad": 1e-2, "adamw": 1e-3, "sgd": 0.1}


@dataclass(frozen=True)
class LinearNetProblem:
    """Targets ``A`` (k×d, or B×k×d for a batch of problems) and input second moments ``S`` (d×d)."""

    A: torch.Tensor
    S: torch.Tensor


def make_problem(dim: int, out_dim: int = 1, *, seed: int = 0, dtype: torch.dtype = torch.float64,
                 device: torch.device | str = "cpu") -> LinearNetProblem:
    """Whitened inputs (``S = I``) and a random target ``A`` with unit Frobenius norm."""
    check_positive("dim", dim, integer=True)
    check_positive("out_dim", out_dim, integer=True)
    g = torch.Generator().manual_seed(10_000 + seed)
    A = torch.randn(out_dim, dim, generator=g, dtype=dtype)
    A /= A.norm()
    return LinearNetProblem(A.to(device), torch.eye(dim, dtype=dtype, device=device))


def population_loss(W1: torch.Tensor, W2: torch.Tensor, problem: LinearNetProblem) -> torch.Tensor:
    """L = ½ tr((W2 W1 − A) S (W2 W1 − A)^T), the exact expected square loss; one per network for
    batched weights (``W1`` of shape ``(..., m, d)``, ``W2`` of shape ``(..., k, m)``)."""
    R = W2 @ W1 - problem.A
    return 0.5 * ((R @ problem.S) * R).sum((-2, -1))


def population_gradients(W1: torch.Tensor, W2: torch.Tensor, problem: LinearNetProblem, *,
                         out: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, ...]:
    """The loss and its gradients in closed form (``S`` symmetric), batched as :func:`population_loss`:
    with ``R = W2 W1 − A``, ``(L, W2^T R S, R S W1^T)``; the gradients are written into ``out`` if given."""
    R = W2 @ W1 - problem.A
    RS = R @ problem.S
    g1, g2 = out or (None, None)
    if W2.shape[-2] == 1:  # an outer product: one product per entry, as the matrix product computes it
        g1 = torch.mul(W2.transpose(-2, -1), RS, out=g1)
    else:
        g1 = _into(g1, W2.transpose(-2, -1) @ RS)
    return 0.5 * (RS * R).sum((-2, -1)), g1, _into(g2, RS @ W1.transpose(-2, -1))


def _into(out: torch.Tensor | None, value: torch.Tensor) -> torch.Tensor:
    return value if out is None else out.copy_(value)


def closed_form_hessian_diagonal(W1: torch.Tensor, W2: torch.Tensor, S: torch.Tensor) -> dict[str, torch.Tensor]:
    """The exact Hessian diagonal of :func:`population_loss`, each shaped like its layer (batched
    weights give batched diagonals): ``H_W1[i, j] = ||W2[:, i]||² S_jj`` and ``H_W2[k, i] = (W1 S W1^T)_ii``."""
    h1 = (W2 * W2).sum(-2)[..., :, None] * torch.diagonal(S, dim1=-2, dim2=-1)[..., None, :]
    h2 = torch.einsum("...ij,...jk,...ik->...i", W1, S, W1)[..., None, :].expand(W2.shape)
    return {"W1": h1, "W2": h2.clone()}


def closed_form_error(width: int = 5, dim: int = 4, *, seed: int = 0) -> dict[str, float]:
    """The largest ``|autograd − closed form|`` of each layer's Hessian diagonal (float64), on random
    weights with a random target and a random input covariance ``S = X X^T + I``, where
    :func:`closed_form_hessian_diagonal` reads ``||W2[:, i]||² S_jj`` and ``(W1 S W1^T)_ii``."""
    g = torch.Generator().manual_seed(seed)
    W1 = torch.randn(width, dim, generator=g, dtype=torch.float64)
    W2 = torch.randn(1, width, generator=g, dtype=torch.float64)
    X = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    problem = LinearNetProblem(torch.randn(1, dim, generator=g, dtype=torch.float64),
                               X @ X.T + torch.eye(dim, dtype=torch.float64))
    H = torch.autograd.functional.hessian(lambda a, b: population_loss(a, b, problem), (W1, W2))
    closed = closed_form_hessian_diagonal(W1, W2, problem.S)
    return {"W1": float((torch.diagonal(H[0][0].reshape(W1.numel(), -1)) - closed["W1"].flatten()).abs().max()),
            "W2": float((torch.diagonal(H[1][1].reshape(W2.numel(), -1)) - closed["W2"].flatten()).abs().max())}


def gradient_flow_limit(W1: torch.Tensor, W2: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where gradient flow ends from an *aligned* start (scalar output, ``S = I``).

    For rows ``w_i = u_i â`` (``â = a/||a||``) and output weights ``v_i``, the flow keeps the rows
    aligned and solves exactly: with ``s_i = u_i + v_i``, ``d_i = u_i − v_i`` (at time 0),
    ``u_i = (s_i e^τ + d_i e^{−τ})/2`` and ``v_i = (s_i e^τ − d_i e^{−τ})/2``, where τ grows from 0
    to the root τ* of ``(S₊ e^{2τ} − S₋ e^{−2τ})/4 = ||a||`` (``S₊ = Σ s_i²``, ``S₋ = Σ d_i²``).
    For a start that is not aligned, ``u_i`` is taken as the component of ``w_i`` along ``â``
    (the prediction is then approximate, exact as the initial scale → 0).

    Returns:
        ``(u, v)`` at the limit, each of shape ``(m,)``.
    """
    norm = a.norm()
    u0, v0 = W1 @ (a.flatten() / norm), W2.flatten()
    s, d = u0 + v0, u0 - v0
    sp, sm = float((s * s).sum()), float((d * d).sum())
    # (sp z - sm / z) / 4 = ||a|| with z = e^{2τ} > 0: a quadratic in z
    z = (4 * float(norm) + math.sqrt(16 * float(norm) ** 2 + 4 * sp * sm)) / (2 * sp)
    e = math.sqrt(z)
    return (s * e + d / e) / 2, (s * e - d / e) / 2


@dataclass(frozen=True)
class LinearNetConfig:
    """One training run of the two-layer linear network.

    Attributes:
        opt: optimizer name from :mod:`rmed_core.optim` (``gd``, ``adam``, ``signgd``, ...).
        width: hidden width m (> 0).
        dim: input dimension d (> 0).
        out_dim: output dimension k (> 0).
        steps: optimizer steps (> 0).
        lr: learning rate (> 0); ``None`` takes :data:`DEFAULT_LR` of ``opt``.
        seed: seed of the initialisation (the target depends on ``seed`` too).
        init_scale: standard deviation of the i.i.d. Gaussian initial entries.
        record_every: steps between two records of loss and R_med (the last step is always recorded).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
    """

    opt: str = "gd"
    width: int = 100
    dim: int = 20
    out_dim: int = 1
    steps: int = 3000
    lr: float | None = None
    seed: int = 0
    init_scale: float = 1e-3
    record_every: int = 10
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_optimizer_name(self.opt)
        for name in ("width", "dim", "out_dim", "steps", "record_every"):
            check_positive(name, getattr(self, name), integer=True)
        check_positive("lr", self.lr, allow_none=True)
        check_positive("init_scale", self.init_scale)
        select_device(self.device)

    @property
    def learning_rate(self) -> float:
        """``lr``, or the default of ``opt``."""
        return float(self.lr if self.lr is not None else DEFAULT_LR.get(self.opt, 1e-3))


@dataclass
class LinearNetRun:
    """The result of :func:`train_linear_net`."""

    config: LinearNetConfig
    trajectory: pd.DataFrame  # columns: step, loss, rmed_W1, rmed_W2
    diverged: bool
    W1: torch.Tensor
    W2: torch.Tensor
    W1_init: torch.Tensor
    W2_init: torch.Tensor
    provenance: dict = field(default_factory=dict)

    @property
    def final(self) -> dict[str, float]:
        """Loss and R_med of each layer at the last recorded step."""
        last = self.trajectory.iloc[-1]
        return {"loss": float(last["loss"]), "rmed_W1": float(last["rmed_W1"]), "rmed_W2": float(last["rmed_W2"])}


def train_linear_net(config: LinearNetConfig, *, progress: bool = False) -> LinearNetRun:
    """Train the network with ``config.opt`` on the population loss (full batch, float64) and
    record loss and per-layer R_med (closed form) along the trajectory.

    The entries of ``W1`` (m×d), then of ``W2`` (k×m), are drawn i.i.d. N(0, ``init_scale``²)
    from a generator seeded with ``seed``; the target is :func:`make_problem` of the same seed.
    A run whose loss becomes non-finite (or exceeds 1e12) stops there and is marked ``diverged``;
    its trajectory holds the records up to that point and its weights are those of that step.
    """
    return train_linear_nets([config], progress=progress)[0]


def train_linear_nets(configs: Sequence[LinearNetConfig], *, progress: bool = False) -> list[LinearNetRun]:
    """:func:`train_linear_net` for configurations that differ in ``seed``, ``width`` and ``dim``
    only, trained as one batch (see the module's docstring); the runs come back in the order of
    ``configs``.

    A diverged network drops out of the records and keeps its weights of that step while the
    others go on. Each run's ``provenance`` carries its share of the batch's wall time.

    Raises:
        ValueError: if ``configs`` is empty or two of them differ in more than seed, width and dim.

    >>> configs = [LinearNetConfig(opt="adam", width=w, dim=3, steps=50, seed=s) for w, s in [(8, 0), (5, 1)]]
    >>> alone = train_linear_net(configs[1])
    >>> bool(torch.equal(train_linear_nets(configs)[1].W1, alone.W1))
    True
    """
    configs = list(configs)
    shared = [{**asdict(c), "seed": 0, "width": 0, "dim": 0} for c in configs]
    if not configs or any(s != shared[0] for s in shared):
        raise ValueError("train_linear_nets: expected configurations that differ in seed, width and dim only")
    threads = torch.get_num_threads()
    try:  # one thread: see the module's docstring
        torch.set_num_threads(1)
        return _train_batch(configs, progress)
    finally:
        torch.set_num_threads(threads)


def _train_batch(configs: list[LinearNetConfig], progress: bool) -> list[LinearNetRun]:
    start, c0, k = time.perf_counter(), configs[0], configs[0].out_dim
    device = select_device(c0.device)
    groups: dict[tuple[int, int], list[int]] = {}  # (width, dim) -> the networks of that shape
    for b, c in enumerate(configs):
        groups.setdefault((c.width, c.dim), []).append(b)
    problems = [LinearNetProblem(torch.stack([make_problem(d, k, seed=configs[b].seed, device=device).A for b in bs]),
                                 torch.eye(d, dtype=torch.float64, device=device)) for (_, d), bs in groups.items()]
    flat = torch.zeros(sum(len(bs) * (_padded(m * d) + _padded(k * m)) for (m, d), bs in groups.items()),
                       dtype=torch.float64, device=device)  # the parameters of all networks
    flat.grad = torch.zeros_like(flat)  # set below from the closed form: no autograd
    weights, grads = _stack_views(flat, groups, k), _stack_views(flat.grad, groups, k)
    net = {b: (W1[i], W2[i]) for (W1, W2), bs in zip(weights, groups.values()) for i, b in enumerate(bs)}
    for b, c in enumerate(configs):
        gen = torch.Generator().manual_seed(c.seed)
        for w in net[b]:  # W1, then W2
            w.copy_(torch.randn(*w.shape, generator=gen, dtype=torch.float64) * c0.init_scale)
    inits = {b: [w.clone() for w in net[b]] for b in net}
    optimizer = make_optimizer(c0.opt, [flat], lr=c0.learning_rate)

    rows: list[list[tuple[int, float, float, float]]] = [[] for _ in configs]
    stopped: dict[int, list[torch.Tensor]] = {}  # network -> its weights where it diverged
    alive = set(net)
    for step in tqdm(range(c0.steps + 1), disable=not progress, desc=f"linear nets ({c0.opt}, {len(configs)})"):
        loss: dict[int, float] = {}
        for (W1, W2), out, problem, bs in zip(weights, grads, problems, groups.values()):
            loss.update(zip(bs, population_gradients(W1, W2, problem, out=out)[0].tolist()))
        for b in [b for b in alive if not math.isfinite(loss[b]) or loss[b] > 1e12]:
            rows[b].append((step, loss[b] if math.isfinite(loss[b]) else math.inf, math.nan, math.nan))
            stopped[b] = [w.clone() for w in net[b]]
            alive.remove(b)
        if not alive:
            break
        if step % c0.record_every == 0 or step == c0.steps:
            for (W1, W2), problem, bs in zip(weights, problems, groups.values()):
                h = closed_form_hessian_diagonal(W1, W2, problem.S)
                for b, i in [(b, i) for i, b in enumerate(bs) if b in alive]:
                    rows[b].append((step, loss[b], *(r_med(x) if bool(torch.isfinite(x).all()) else math.nan
                                                     for x in (h["W1"][i], h["W2"][i]))))
        if step == c0.steps:
            break
        optimizer.step()

    record = provenance(device, wall_time_s=(time.perf_counter() - start) / len(configs))
    return [LinearNetRun(c, pd.DataFrame(rows[b], columns=["step", "loss", "rmed_W1", "rmed_W2"]), b in stopped,
                         *stopped.get(b, [w.clone() for w in net[b]]), *inits[b], {**record, "seed": c.seed})
            for b, c in enumerate(configs)]


def _padded(n: int) -> int:
    """``n`` rounded up to a multiple of 8 entries (64 bytes of float64)."""
    return -(-n // 8) * 8


def _stack_views(flat: torch.Tensor, groups: dict[tuple[int, int], list[int]], k: int) -> list[tuple[torch.Tensor, ...]]:
    """Per shape (m, d) with n networks, the stacks of W1 (n×m×d) and W2 (n×k×m) as views of
    ``flat``. Each network's block starts on a 64-byte boundary, as a tensor of its own would: the
    matrix products round according to the alignment of their operands."""
    views, offset = [], 0
    for (m, d), bs in groups.items():
        pair = []
        for rows, cols in ((m, d), (k, m)):
            block = flat[offset:offset + len(bs) * _padded(rows * cols)].view(len(bs), -1)
            pair.append(block[:, :rows * cols].unflatten(1, (rows, cols)))
            offset += block.numel()
        views.append(tuple(pair))
    return views


def final_rmed_sweep(vary: str, values: list[int], opts: list[str], seeds: list[int], base: LinearNetConfig, *,
                     progress: bool = True, reuse: Sequence[LinearNetRun] = ()) -> pd.DataFrame:
    """R_med at the end of training as ``vary`` (``"width"`` or ``"dim"``) takes ``values``, each
    optimizer with its default learning rate; the runs of one optimizer are trained as one batch.

    Args:
        reuse: runs already trained (e.g. by :func:`trajectory_runs`) that stand for the points of
            the sweep with the same configuration (``record_every`` aside) instead of training again.

    Returns a tidy DataFrame with columns ``opt, seed, <vary>, loss, rmed_W1, rmed_W2, diverged``
    (rows ordered by ``opt``, then ``seed``, then ``<vary>``) and, for ``gd``, ``predicted_W1`` —
    the value :func:`gradient_flow_limit` predicts from the initial weights (Proposition 1 of the
    theorem chapter).
    """
    if vary not in ("width", "dim"):
        raise ValueError(f"vary={vary!r}: expected 'width' or 'dim'")

    def key(c: LinearNetConfig) -> tuple:  # what determines a run's weights: all but record_every
        return tuple({**asdict(c), "lr": c.learning_rate, "record_every": None}.items())

    done = {key(r.config): r for r in reuse}
    config = {(o, s, v): LinearNetConfig(**{**asdict(base), "opt": o, "seed": s, vary: v, "lr": None,
                                            "record_every": base.steps})
              for o in opts for s in seeds for v in values}
    for opt in tqdm(opts, disable=not progress, desc=f"sweep over {vary}"):
        todo = [cfg for (o, _, _), cfg in config.items() if o == opt and key(cfg) not in done]
        done.update({key(r.config): r for r in (train_linear_nets(todo) if todo else [])})
    rows = []
    for (opt, seed, value), cfg in config.items():
        run = done[key(cfg)]
        row = {"opt": opt, "seed": seed, vary: value, **run.final, "diverged": run.diverged}
        if opt == "gd" and cfg.out_dim == 1:
            problem = make_problem(cfg.dim, 1, seed=seed)
            _, v = gradient_flow_limit(run.W1_init.cpu(), run.W2_init.cpu(), problem.A)
            row["predicted_W1"] = r_med(v * v)
        rows.append(row)
    return pd.DataFrame(rows)


#: Sizes of the theorem notebook at each scale: seeds, steps, and the widths and input dimensions
#: of the two sweeps of R_med at the end of training.
THEOREM_SCALES: dict[str, dict[str, list[int] | int]] = {
    "ci": {"seeds": 2, "steps": 800, "widths": [8, 64], "dims": [4, 32]},
    "book": {"seeds": 5, "steps": 3000, "widths": [10, 25, 50, 100, 200, 400, 800], "dims": [5, 10, 20, 40, 80]},
    "paper": {"seeds": 10, "steps": 10000, "widths": [10, 25, 50, 100, 200, 400, 800, 1600, 3200],
              "dims": [5, 10, 20, 40, 80, 160, 320]},
}


def theorem_settings(scale: str, *, opt: str, width: int, dim: int, steps: int | None, lr: float | None,
                     seed: int) -> dict[str, object]:
    """Validate the theorem notebook's parameters (before any work) and return the sizes of
    ``scale`` with ``steps`` filled in."""
    check_choice("scale", scale, THEOREM_SCALES)
    check_optimizer_name(opt)
    check_positive("width", width, integer=True)
    check_positive("dim", dim, integer=True)
    check_positive("steps", steps, integer=True, allow_none=True)
    check_positive("lr", lr, allow_none=True)
    if not (isinstance(seed, int) and seed >= 0):
        raise ValueError(f"seed={seed!r}: expected a non-negative integer")
    sizes = dict(THEOREM_SCALES[scale])
    sizes["steps"] = steps or sizes["steps"]
    sizes["seeds"] = list(range(seed, seed + int(sizes["seeds"])))
    return sizes


def trajectory_runs(opts: list[str], seeds: list[int], base: LinearNetConfig, lr: dict[str, float] | None = None,
                    *, progress: bool = True) -> tuple[pd.DataFrame, list[LinearNetRun]]:
    """Train ``base`` with every optimizer in ``opts`` and seed in ``seeds`` (the seeds of one
    optimizer as one batch).

    Args:
        lr: learning rate per optimizer; an optimizer not named takes its default.

    Returns:
        A tidy DataFrame (``opt, seed, step, loss, rmed_W1, rmed_W2, diverged``) and the runs,
        ordered by ``opt``, then ``seed``.
    """
    runs = []
    for opt in tqdm(opts, disable=not progress, desc="trajectories"):
        runs += train_linear_nets([LinearNetConfig(**{**asdict(base), "opt": opt, "seed": s, "lr": (lr or {}).get(opt)})
                                   for s in seeds])
    frames = [r.trajectory.assign(opt=r.config.opt, seed=r.config.seed, diverged=r.diverged) for r in runs]
    return pd.concat(frames, ignore_index=True), runs


def chi2_ratio_quantiles(widths: list[int], *, draws: int = 2000, quantiles: tuple[float, ...] = (0.25, 0.5, 0.75),
                         seed: int = 0) -> pd.DataFrame:
    """Quantiles of ``max_i z_i / median_i z_i`` for ``m`` i.i.d. χ²₁ variables ``z_i``: the
    distribution of GD's final R_med that :func:`gradient_flow_limit` implies for i.i.d. Gaussian
    starts as the initial scale → 0 (Monte Carlo with ``draws`` draws per width).

    Returns:
        A DataFrame with columns ``width`` and one per quantile (``q25``, ``q50``, ...).
    """
    g = torch.Generator().manual_seed(seed)
    rows = []
    for m in widths:
        z = torch.randn(draws, m, generator=g, dtype=torch.float64) ** 2
        ratio = z.max(1).values / z.median(1).values if m % 2 else z.max(1).values / z.sort(1).values[:, m // 2 - 1: m // 2 + 1].mean(1)
        rows.append({"width": m, **{f"q{round(100 * q)}": float(torch.quantile(ratio, q)) for q in quantiles}})
    return pd.DataFrame(rows)


def sign_flow_check(width: int, *, init_scale: float = 1e-3, step: float = 1e-5, seed: int = 0) -> dict[str, float]:
    """Proposition 2 of the theorem chapter, checked in its own setting: ``d = 1``, ``a = 1``,
    ``W1 = u``, ``W2 = v^T`` with i.i.d. :math:`\\mathcal N(0, \\sigma_0^2)` entries, sign descent
    with a small ``step`` (the Euler discretisation of sign gradient flow), stopped at the first
    step where the loss reaches zero (:math:`\\sum_i u_iv_i \\ge 1`).

    Each discrete step moves every weight by exactly ``step``, so the proof's argument holds with
    :math:`\\rho` replaced by :math:`\\rho + \\text{step}`; ``bound`` is
    :math:`(1 - 2(\\rho + \\text{step})\\sqrt m)^{-2}` (``inf`` when the hypothesis
    :math:`2\\rho\\sqrt m < 1` fails).

    Returns:
        ``width, seed, rho, hypothesis`` (whether :math:`2(\\rho + \\text{step})\\sqrt m < 1`),
        ``time`` (:math:`T^*`), ``rmed_W1, rmed_W2`` at :math:`T^*` and ``bound``.
    """
    return sign_flow_checks([width], [seed], init_scale=init_scale, step=step).to_dict("records")[0]


def sign_flow_checks(widths: Sequence[int], seeds: Sequence[int], *, init_scale: float = 1e-3,
                     step: float = 1e-5) -> pd.DataFrame:
    """:func:`sign_flow_check` for every width and seed, one row each (ordered by width, then
    seed); the seeds of one width run as one batch, each stopped at its own first zero loss."""
    rows = []
    for width in widths:
        check_positive("width", width, integer=True)
        check_positive("step", step)
        gens = [torch.Generator().manual_seed(seed) for seed in seeds]
        u, v = (np.stack([(torch.randn(width, generator=g, dtype=torch.float64) * init_scale).numpy() for g in gens])
                for _ in "uv")  # (seeds, width); each seed draws its u, then its v
        rho = np.maximum(np.abs(u).max(1), np.abs(v).max(1))
        steps = np.zeros(len(seeds), dtype=np.int64)
        while (running := np.einsum("bi,bi->b", u, v) < 1.0).any():  # e = 1 - sum u_i v_i > 0:
            move = np.where(running, step, 0.0)[:, None]  # du_i/dt = sign(v_i), dv_i/dt = sign(u_i)
            u, v = u + move * np.sign(v), v + move * np.sign(u)
            steps += running
        slack = 2 * (rho + step) * math.sqrt(width)
        rows += [{"width": width, "seed": seed, "rho": float(rho[b]), "hypothesis": bool(slack[b] < 1),
                  "time": int(steps[b]) * step, "rmed_W1": r_med(torch.from_numpy(v[b] * v[b])),
                  "rmed_W2": r_med(torch.from_numpy(u[b] * u[b])),
                  "bound": float((1 - slack[b]) ** -2) if slack[b] < 1 else math.inf} for b, seed in enumerate(seeds)]
    return pd.DataFrame(rows)
