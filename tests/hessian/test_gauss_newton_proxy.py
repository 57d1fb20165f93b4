"""The sampled Gauss-Newton proxy (:meth:`StructuredHessian.sampled_gauss_newton`) against the
Gauss-Newton diagonal ``diag(J^T (d^2L/df^2) J)`` built from the full Jacobian in float64."""
import pytest
import torch
from torch.func import functional_call, jacrev

from rmed_core.hessian.exact import StructuredHessian
from rmed_core.hessian.testing import make_case


def _gauss_newton_diagonal(model, loss_fn, x, y):
    params = {k: v.detach() for k, v in model.named_parameters()}
    out = functional_call(model, params, (x,))
    J = jacrev(lambda p: functional_call(model, p, (x,)))(params)
    H = torch.autograd.functional.hessian(lambda o: loss_fn(o, y), out.detach()).reshape(out.numel(), -1)
    return {n: torch.einsum("oi,op,pi->i", j.reshape(out.numel(), -1), H, j.reshape(out.numel(), -1))
            for n, j in J.items()}


@pytest.mark.parametrize("case", ["transformer", "mlp_tanh"])
def test_expectation_is_the_gauss_newton_diagonal(case):
    """``R`` times the estimate (``R`` label rows of a mean loss) is unbiased for the diagonal,
    position pairs included: at 800 draws every entry above 5% of its tensor's largest is within
    30%, and the mean relative error is a few percent (its Monte-Carlo error at 800 draws)."""
    model, loss_fn, (x, y) = make_case(case, torch.float64)
    G = _gauss_newton_diagonal(model, loss_fn, x, y)
    sh = StructuredHessian(model, loss_fn, (x, y), dict(model.named_parameters()), gauss_newton=False)
    est = sh.sampled_gauss_newton(sh.sites, y, 800)
    assert sh.n_grad == 800 and sh.n_hvp == 0
    scale = max(float(g.abs().max()) for g in G.values())
    checked, rel_all = 0, []
    for k, s in enumerate(sh.sites):
        for attr in ("weight", "bias"):
            name = getattr(s, attr)
            if not name:
                continue
            g, e = G[name].flatten(), est[(k, attr)] * y.numel()
            assert e.shape == g.shape
            if g.abs().max() < 1e-9 * scale:  # e.g. an attention key's bias: the softmax cancels it exactly
                assert e.abs().max() < 1e-9 * scale
                continue
            big = g.abs() > 0.05 * g.abs().max()
            rel = (e - g).abs()[big] / g.abs()[big]
            assert float(rel.max()) < 0.3, name
            rel_all.append(rel)
            checked += 1
    assert checked >= 4
    assert float(torch.cat(rel_all).mean()) < 0.08


def test_refuses_a_loss_that_is_not_categorical():
    model, loss_fn, (x, y) = make_case("tokenwise", torch.float64)
    sh = StructuredHessian(model, loss_fn, (x, y), dict(model.named_parameters()), gauss_newton=False)
    with pytest.raises(ValueError, match="categorical loss: class-index targets"):
        sh.sampled_gauss_newton(sh.sites, y, 8)
