"""The two-layer linear network: closed form against autograd, Proposition 1, bad input."""
from __future__ import annotations

import math

import pytest
import torch

from rmed_core import linear_net as ln
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
