"""The two-layer linear network of the theorem: model, closed-form Hessian diagonal, training.

Setting (this project's formulation; the paper's exact assumptions are not available):
:math:`f(x) = W_2 W_1 x` with :math:`W_1 \\in \\mathbb{R}^{m\\times d}` (``width`` m, ``dim`` d),
:math:`W_2 \\in \\mathbb{R}^{k\\times m}`, inputs with second-moment matrix
:math:`S = \\mathbb{E}[x x^\\top]` (default :math:`I_d`), targets :math:`y = A x`, and the square loss

.. math::

    L(W_1, W_2) = \\tfrac12\\,\\mathbb{E}\\,\\lVert W_2 W_1 x - y\\rVert^2
                = \\tfrac12 \\operatorname{tr}\\big((W_2W_1 - A)\\, S\\, (W_2W_1 - A)^\\top\\big).

Its Hessian diagonal is exact and cheap (``r`` is linear in each layer, so no residual term):

.. math::

    \\frac{\\partial^2 L}{\\partial W_1[i,j]^2} = \\lVert W_2[:, i]\\rVert^2\\, S_{jj}, \\qquad
    \\frac{\\partial^2 L}{\\partial W_2[k,i]^2} = (W_1 S W_1^\\top)_{ii} = \\mathbb{E}[(W_1x)_i^2].
"""
from __future__ import annotations

import math
import time
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

__all__ = ["sign_flow_check", 
    "DEFAULT_LR",
    "LinearNetConfig",
    "LinearNetProblem",
    "LinearNetRun",
    "closed_form_hessian_diagonal",
    "gradient_flow_limit",
    "make_problem",
    "population_loss",
    "train_linear_net",
    "final_rmed_sweep",
    "THEOREM_SCALES",
    "theorem_settings",
    "trajectory_runs",
    "chi2_ratio_quantiles",
]

#: Learning rates used when ``lr`` is not given (stable for the default problem, ||A|| = 1).
DEFAULT_LR: dict[str, float] = {"gd": 0.1, "sgdm": 0.02, "adam": 1e-3, "signgd": 1e-4, "signum": 1e-4,
                                "rmsprop": 1e-3, "adagrad": 1e-2, "adamw": 1e-3, "sgd": 0.1}


@dataclass(frozen=True)
class LinearNetProblem:
    """Targets ``A`` (k×d) and input second moments ``S`` (d×d) of the population loss."""

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
    """L = ½ tr((W2 W1 − A) S (W2 W1 − A)^T), the exact expected square loss."""
    R = W2 @ W1 - problem.A
    return 0.5 * torch.trace(R @ problem.S @ R.T)


def closed_form_hessian_diagonal(W1: torch.Tensor, W2: torch.Tensor, S: torch.Tensor) -> dict[str, torch.Tensor]:
    """The exact Hessian diagonal of :func:`population_loss`, each shaped like its layer:
    ``H_W1[i, j] = ||W2[:, i]||² S_jj`` and ``H_W2[k, i] = (W1 S W1^T)_ii``."""
    h1 = (W2 * W2).sum(0)[:, None] * torch.diagonal(S)[None, :]
    h2 = torch.einsum("ij,jk,ik->i", W1, S, W1)[None, :].expand(W2.shape[0], -1)
    return {"W1": h1, "W2": h2.clone()}


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

    A run whose loss becomes non-finite (or exceeds 1e12) stops there and is marked ``diverged``;
    its trajectory holds the records up to that point.
    """
    start = time.perf_counter()
    device = select_device(config.device)
    problem = make_problem(config.dim, config.out_dim, seed=config.seed, device=device)
    g = torch.Generator().manual_seed(config.seed)
    W1 = (torch.randn(config.width, config.dim, generator=g, dtype=torch.float64) * config.init_scale).to(device)
    W2 = (torch.randn(config.out_dim, config.width, generator=g, dtype=torch.float64) * config.init_scale).to(device)
    W1_init, W2_init = W1.clone(), W2.clone()
    W1.requires_grad_(True)
    W2.requires_grad_(True)
    optimizer = make_optimizer(config.opt, [W1, W2], lr=config.learning_rate)

    rows: list[tuple[int, float, float, float]] = []
    diverged = False

    def record(step: int, loss: float) -> None:
        with torch.no_grad():
            h = closed_form_hessian_diagonal(W1, W2, problem.S)
            rows.append((step, loss, _safe_rmed(h["W1"]), _safe_rmed(h["W2"])))

    for step in tqdm(range(config.steps + 1), disable=not progress, desc=f"linear net ({config.opt})"):
        optimizer.zero_grad(set_to_none=True)
        loss = population_loss(W1, W2, problem)
        value = float(loss.detach())
        if not math.isfinite(value) or value > 1e12:
            diverged = True
            rows.append((step, value if math.isfinite(value) else math.inf, math.nan, math.nan))
            break
        if step % config.record_every == 0 or step == config.steps:
            record(step, value)
        if step == config.steps:
            break
        loss.backward()
        optimizer.step()

    trajectory = pd.DataFrame(rows, columns=["step", "loss", "rmed_W1", "rmed_W2"])
    return LinearNetRun(config, trajectory, diverged, W1.detach(), W2.detach(), W1_init, W2_init,
                        provenance(device, seed=config.seed, wall_time_s=time.perf_counter() - start))


def final_rmed_sweep(vary: str, values: list[int], opts: list[str], seeds: list[int],
                     base: LinearNetConfig, *, progress: bool = True) -> pd.DataFrame:
    """R_med at the end of training as ``vary`` (``"width"`` or ``"dim"``) takes ``values``.

    Returns a tidy DataFrame with columns ``opt, seed, <vary>, loss, rmed_W1, rmed_W2, diverged``
    and, for ``gd``, ``predicted_W1`` — the value :func:`gradient_flow_limit` predicts from the
    initial weights (Proposition 1 of the theorem chapter).
    """
    if vary not in ("width", "dim"):
        raise ValueError(f"vary={vary!r}: expected 'width' or 'dim'")
    rows = []
    grid = [(o, s, v) for o in opts for s in seeds for v in values]
    for opt, seed, value in tqdm(grid, disable=not progress, desc=f"sweep over {vary}"):
        cfg = LinearNetConfig(**{**asdict(base), "opt": opt, "seed": seed, vary: value, "lr": None,
                                 "record_every": base.steps})
        run = train_linear_net(cfg)
        row = {"opt": opt, "seed": seed, vary: value, **run.final, "diverged": run.diverged}
        if opt == "gd" and cfg.out_dim == 1:
            problem = make_problem(cfg.dim, 1, seed=seed)
            _, v = gradient_flow_limit(run.W1_init.cpu(), run.W2_init.cpu(), problem.A)
            row["predicted_W1"] = r_med(v * v)
        rows.append(row)
    return pd.DataFrame(rows)


def _safe_rmed(h: torch.Tensor) -> float:
    return r_med(h) if bool(torch.isfinite(h).all()) else math.nan


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


def trajectory_runs(opts: list[str], seeds: list[int], base: LinearNetConfig,
                    lr: dict[str, float] | None = None, *, progress: bool = True) -> tuple[pd.DataFrame, list[LinearNetRun]]:
    """Train ``base`` with every optimizer in ``opts`` and seed in ``seeds``.

    Args:
        lr: learning rate per optimizer; an optimizer not named takes its default.

    Returns:
        A tidy DataFrame (``opt, seed, step, loss, rmed_W1, rmed_W2, diverged``) and the runs.
    """
    runs, frames = [], []
    for opt, seed in tqdm([(o, s) for o in opts for s in seeds], disable=not progress, desc="trajectories"):
        run = train_linear_net(LinearNetConfig(**{**asdict(base), "opt": opt, "seed": seed,
                                                  "lr": (lr or {}).get(opt)}))
        runs.append(run)
        frames.append(run.trajectory.assign(opt=opt, seed=seed, diverged=run.diverged))
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
    check_positive("width", width, integer=True)
    check_positive("step", step)
    g = torch.Generator().manual_seed(seed)
    u = (torch.randn(width, generator=g, dtype=torch.float64) * init_scale).numpy()
    v = (torch.randn(width, generator=g, dtype=torch.float64) * init_scale).numpy()
    rho = float(max(np.abs(u).max(), np.abs(v).max()))
    steps = 0
    while float(u @ v) < 1.0:  # e = 1 - sum u_i v_i > 0: du_i/dt = sign(v_i), dv_i/dt = sign(u_i)
        u, v = u + step * np.sign(v), v + step * np.sign(u)
        steps += 1
    slack = 2 * (rho + step) * math.sqrt(width)
    return {"width": width, "seed": seed, "rho": rho, "hypothesis": slack < 1, "time": steps * step,
            "rmed_W1": r_med(torch.from_numpy(v * v)), "rmed_W2": r_med(torch.from_numpy(u * u)),
            "bound": (1 - slack) ** -2 if slack < 1 else math.inf}
