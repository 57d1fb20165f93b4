"""The two-layer linear network: closed form against autograd, Proposition 1, the batched runs
against one run at a time, bad input."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from rmed_core import linear_net as ln
from rmed_core.optim import make_optimizer, optimizer_names
from rmed_core.stats import r_med


@pytest.mark.parametrize("out_dim", [1, 3])
def test_closed_form_hessian_diagonal_matches_autograd(out_dim):
    g = torch.Generator().manual_seed(out_dim)
    m, d = 6, 4
    W1 = torch.randn(m, d, generator=g, dtype=torch.float64)
    W2 = torch.randn(out_dim, m, generator=g, dtype=torch.float64)
    X = torch.randn(d, d, generator=g, dtype=torch.float64)
    problem = ln.LinearNetProblem(torch.randn(out_dim, d, generator=g, dtype=torch.float64),
                                  X @ X.T + torch.eye(d, dtype=torch.float64))
    H = torch.autograd.functional.hessian(lambda a, b: ln.population_loss(a, b, problem), (W1, W2))
    closed = ln.closed_form_hessian_diagonal(W1, W2, problem.S)
    exact_W1 = torch.diagonal(H[0][0].reshape(m * d, m * d)).reshape(m, d)
    exact_W2 = torch.diagonal(H[1][1].reshape(out_dim * m, out_dim * m)).reshape(out_dim, m)
    torch.testing.assert_close(closed["W1"], exact_W1, rtol=1e-12, atol=0)
    torch.testing.assert_close(closed["W2"], exact_W2, rtol=1e-12, atol=0)


def test_population_loss_is_the_expected_square_loss():
    g = torch.Generator().manual_seed(0)
    problem = ln.make_problem(3, 2, seed=0)
    W1, W2 = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(2, 4, generator=g, dtype=torch.float64)
    x = torch.randn(200_000, 3, generator=g, dtype=torch.float64)  # E[x x^T] = I
    monte_carlo = 0.5 * ((x @ (W2 @ W1 - problem.A).T) ** 2).sum(1).mean()
    assert float(ln.population_loss(W1, W2, problem)) == pytest.approx(float(monte_carlo), rel=0.02)


def test_gradient_flow_limit_is_exact_for_aligned_starts():
    """Proposition 1: from an aligned start, small-step GD ends where the closed form says."""
    g = torch.Generator().manual_seed(3)
    m, d = 12, 5
    problem = ln.make_problem(d, 1, seed=3)
    a = problem.A.flatten()
    u0 = torch.randn(m, generator=g, dtype=torch.float64) * 0.05
    W1 = (u0[:, None] * a[None, :]).clone().requires_grad_(True)
    W2 = (torch.randn(1, m, generator=g, dtype=torch.float64) * 0.05).requires_grad_(True)
    u_inf, v_inf = ln.gradient_flow_limit(W1.detach(), W2.detach(), problem.A)
    opt = torch.optim.SGD([W1, W2], lr=0.01)
    for _ in range(20_000):
        opt.zero_grad()
        ln.population_loss(W1, W2, problem).backward()
        opt.step()
    torch.testing.assert_close(W2.detach().flatten(), v_inf, rtol=2e-2, atol=1e-4)
    torch.testing.assert_close(W1.detach() @ a, u_inf, rtol=2e-2, atol=1e-4)


def test_gd_keeps_and_adam_erases_the_imbalance():
    gd = ln.train_linear_net(ln.LinearNetConfig(opt="gd", width=50, dim=5, steps=1500))
    adam = ln.train_linear_net(ln.LinearNetConfig(opt="adam", width=50, dim=5, steps=1500))
    assert gd.final["loss"] < 1e-6 and adam.final["loss"] < 1e-3
    _, v = ln.gradient_flow_limit(gd.W1_init, gd.W2_init, ln.make_problem(5, 1, seed=0).A)
    assert gd.final["rmed_W1"] == pytest.approx(r_med(v * v), rel=1e-2)
    assert adam.final["rmed_W1"] < 1.5 < gd.final["rmed_W1"]


def test_diverging_run_is_reported_not_raised():
    run = ln.train_linear_net(ln.LinearNetConfig(opt="gd", lr=50.0, width=20, dim=5, steps=200))
    assert run.diverged
    assert math.isnan(run.final["rmed_W1"])
    assert len(run.trajectory) < 200


@pytest.mark.parametrize("field,value,match", [
    ("opt", "newton", "opt='newton'.*valid names"),
    ("width", 0, "width=0"),
    ("steps", -5, "steps=-5"),
    ("lr", -0.1, "lr=-0.1"),
    ("device", "tpu", "device='tpu'"),
])
def test_bad_config_is_refused_early(field, value, match):
    with pytest.raises(ValueError, match=match):
        ln.LinearNetConfig(**{field: value})


def test_theorem_settings_validate_scale():
    with pytest.raises(ValueError, match="scale='huge'.*ci, book, paper"):
        ln.theorem_settings("huge", opt="gd", width=10, dim=2, steps=None, lr=None, seed=0)
    sizes = ln.theorem_settings("ci", opt="gd", width=10, dim=2, steps=None, lr=None, seed=4)
    assert sizes["seeds"][0] == 4 and sizes["steps"] > 0


# -- the batched path against one run at a time --------------------------------------------------
def _one_run(config: ln.LinearNetConfig) -> tuple[list[tuple], torch.Tensor, torch.Tensor]:
    """One network at a time, independently of the batched code: autograd of 0.5 tr(R S R^T), one
    optimizer per network, the same records and the same stop at divergence."""
    problem = ln.make_problem(config.dim, config.out_dim, seed=config.seed)
    g = torch.Generator().manual_seed(config.seed)
    W1 = (torch.randn(config.width, config.dim, generator=g, dtype=torch.float64) * config.init_scale).requires_grad_()
    W2 = (torch.randn(config.out_dim, config.width, generator=g, dtype=torch.float64) * config.init_scale).requires_grad_()
    opt = make_optimizer(config.opt, [W1, W2], lr=config.learning_rate)
    rows = []
    for step in range(config.steps + 1):
        opt.zero_grad()
        R = W2 @ W1 - problem.A
        loss = 0.5 * torch.trace(R @ problem.S @ R.T)
        value = float(loss.detach())
        if not math.isfinite(value) or value > 1e12:
            rows.append((step, value if math.isfinite(value) else math.inf, math.nan, math.nan))
            break
        if step % config.record_every == 0 or step == config.steps:
            v2, w2 = (W2.detach() ** 2).sum(0), (W1.detach() ** 2).sum(1)  # S = I: ||W2[:, i]||^2, ||w_i||^2
            rows.append((step, value, r_med(v2.repeat(config.dim)), r_med(w2.repeat(config.out_dim))))
        if step == config.steps:
            break
        loss.backward()
        opt.step()
    return rows, W1.detach(), W2.detach()


@pytest.mark.parametrize("opt", optimizer_names())
def test_batched_training_equals_one_run_at_a_time(opt):
    """Every registered optimizer, on a batch of three shapes (two networks share one)."""
    shapes = [(0, 7, 3), (3, 7, 3), (5, 4, 5), (1, 9, 2)]  # seed, width, dim
    configs = [ln.LinearNetConfig(opt=opt, width=m, dim=d, out_dim=2, steps=120, record_every=11, seed=s,
                                  init_scale=0.1) for s, m, d in shapes]
    runs = ln.train_linear_nets(configs)
    assert [r.config for r in runs] == configs
    for run in runs:
        rows, W1, W2 = _one_run(run.config)
        expected = torch.tensor(rows, dtype=torch.float64)
        torch.testing.assert_close(torch.tensor(run.trajectory.to_numpy()), expected, rtol=1e-10, atol=1e-14)
        torch.testing.assert_close(run.W1, W1, rtol=1e-10, atol=1e-14)
        torch.testing.assert_close(run.W2, W2, rtol=1e-10, atol=1e-14)
        assert run.W1_init.shape == W1.shape and run.W2_init.shape == W2.shape and not run.diverged


def test_batch_with_a_diverging_network_equals_one_run_at_a_time():
    """GD with lr 0.7 from starts of scale 0.6: some seeds converge, others blow up (checked here)."""
    configs = [ln.LinearNetConfig(opt="gd", lr=0.7, width=6, dim=3, steps=300, record_every=5, seed=s,
                                  init_scale=0.6) for s in range(6)]
    runs = ln.train_linear_nets(configs)
    assert 0 < sum(r.diverged for r in runs) < len(runs)
    for run in runs:
        rows, W1, W2 = _one_run(run.config)
        assert run.diverged == (len(rows) < 300 // 5 + 1)
        torch.testing.assert_close(torch.tensor(run.trajectory.to_numpy()), torch.tensor(rows, dtype=torch.float64),
                                   rtol=1e-10, atol=1e-14, equal_nan=True)
        torch.testing.assert_close(run.W1, W1, rtol=1e-10, atol=1e-14, equal_nan=True)


def test_train_linear_nets_refuses_configurations_that_differ_beyond_seed_width_and_dim():
    with pytest.raises(ValueError, match="differ in seed, width and dim only"):
        ln.train_linear_nets([ln.LinearNetConfig(width=4, seed=0), ln.LinearNetConfig(width=5, steps=20, seed=1)])


@pytest.mark.parametrize("out_dim", [1, 3])
def test_batched_gradients_and_diagonal_match_autograd_per_network(out_dim):
    g = torch.Generator().manual_seed(7)
    B, m, d = 3, 5, 4
    W1 = torch.randn(B, m, d, generator=g, dtype=torch.float64)
    W2 = torch.randn(B, out_dim, m, generator=g, dtype=torch.float64)
    X = torch.randn(d, d, generator=g, dtype=torch.float64)
    A = torch.randn(B, out_dim, d, generator=g, dtype=torch.float64)
    S = X @ X.T + torch.eye(d, dtype=torch.float64)
    loss, g1, g2 = ln.population_gradients(W1, W2, ln.LinearNetProblem(A, S))
    diag = ln.closed_form_hessian_diagonal(W1, W2, S)
    for b in range(B):
        problem = ln.LinearNetProblem(A[b], S)
        a, c = W1[b].clone().requires_grad_(), W2[b].clone().requires_grad_()
        value = 0.5 * torch.trace((c @ a - A[b]) @ S @ (c @ a - A[b]).T)
        value.backward()
        torch.testing.assert_close(loss[b], value.detach(), rtol=1e-12, atol=0)
        torch.testing.assert_close(g1[b], a.grad, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(g2[b], c.grad, rtol=1e-12, atol=1e-14)
        single = ln.closed_form_hessian_diagonal(W1[b], W2[b], S)
        torch.testing.assert_close(diag["W1"][b], single["W1"], rtol=1e-12, atol=0)
        torch.testing.assert_close(diag["W2"][b], single["W2"], rtol=1e-12, atol=0)
        H = torch.autograd.functional.hessian(lambda p, q: ln.population_loss(p, q, problem), (W1[b], W2[b]))
        torch.testing.assert_close(torch.diagonal(H[0][0].reshape(m * d, -1)), diag["W1"][b].flatten(), rtol=1e-12, atol=0)


def test_closed_form_error_is_rounding():
    err = ln.closed_form_error(5, 4, seed=1)
    assert err["W1"] < 1e-10 and err["W2"] < 1e-10


def test_sweep_reuses_matching_runs_and_keeps_its_order():
    base = ln.LinearNetConfig(width=6, dim=3, steps=150, init_scale=0.05)
    _, runs = ln.trajectory_runs(["gd", "signgd"], [0, 1], base, progress=False)
    fresh = ln.final_rmed_sweep("width", [4, 6], ["gd", "signgd"], [0, 1], base, progress=False)
    reused = ln.final_rmed_sweep("width", [4, 6], ["gd", "signgd"], [0, 1], base, progress=False, reuse=runs)
    assert list(zip(fresh.opt, fresh.seed, fresh.width)) == [(o, s, w) for o in ("gd", "signgd") for s in (0, 1)
                                                             for w in (4, 6)]
    pd.testing.assert_frame_equal(fresh, reused, rtol=1e-12)
    for run in runs:  # a single run of the same configuration ends where the batched one did
        alone = ln.train_linear_net(run.config)
        assert alone.final == pytest.approx(run.final, rel=1e-10)


def _one_sign_flow(width: int, seed: int, init_scale: float = 1e-3, step: float = 1e-5) -> tuple[int, float, float]:
    g = torch.Generator().manual_seed(seed)
    u = (torch.randn(width, generator=g, dtype=torch.float64) * init_scale).numpy()
    v = (torch.randn(width, generator=g, dtype=torch.float64) * init_scale).numpy()
    steps = 0
    while float(u @ v) < 1.0:
        u, v = u + step * np.sign(v), v + step * np.sign(u)
        steps += 1
    return steps, r_med(torch.from_numpy(v * v)), r_med(torch.from_numpy(u * u))


def test_batched_sign_flow_equals_one_flow_at_a_time():
    table = ln.sign_flow_checks([3, 40], [0, 1, 2], init_scale=0.05, step=1e-3)
    assert list(zip(table.width, table.seed)) == [(w, s) for w in (3, 40) for s in (0, 1, 2)]
    for row in table.itertuples():
        steps, rmed_W1, rmed_W2 = _one_sign_flow(row.width, row.seed, init_scale=0.05, step=1e-3)
        assert row.time == pytest.approx(steps * 1e-3, rel=1e-12)
        assert (row.rmed_W1, row.rmed_W2) == pytest.approx((rmed_W1, rmed_W2), rel=1e-12)
    assert ln.sign_flow_check(40, seed=2, init_scale=0.05, step=1e-3) == table.iloc[-1].to_dict()


def test_a_network_ends_bitwise_where_it_ends_alone_whatever_else_is_in_its_batch():
    """Adam turns last-bit differences of tiny gradients into visible ones, so the batch must not
    change a network's products: packed one after the other, the 525 entries of the first network
    would misalign the second (which then differs after 200 steps)."""
    configs = [ln.LinearNetConfig(opt="adam", width=m, dim=d, steps=200, seed=s)
               for s, m, d in [(0, 25, 20), (1, 200, 20), (2, 33, 7)]]
    for run in ln.train_linear_nets(configs):
        alone = ln.train_linear_net(run.config)
        assert torch.equal(run.W1, alone.W1) and torch.equal(run.W2, alone.W2)
        assert run.trajectory.equals(alone.trajectory)
