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


@pytest.mark.parametrize("act", [torch.nn.Tanh, torch.nn.GELU, torch.nn.SiLU])
def test_activation_term_is_the_hessian_less_the_gauss_newton_part(act):
    """With the layer's own activation the only nonlinearity before the loss, the Hessian's diagonal
    is exactly the Gauss-Newton diagonal plus the activation term ``sum_n dL/dy sigma''(z) a^2``
    (float64, against ``torch.autograd.functional.hessian``); the last layer, which feeds no
    activation, gets no term."""
    from rmed_core.hessian._activation import activation_terms

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 6), act(), torch.nn.Linear(6, 3)).double()
    x, y = torch.randn(7, 5, dtype=torch.float64), torch.randint(0, 3, (7,))
    loss_fn = torch.nn.functional.cross_entropy
    terms = activation_terms(model, loss_fn, (x, y), {"0": model[0], "2": model[2]})
    assert set(terms) == {"0"} and terms["0"].shape == (7, 6)
    G = _gauss_newton_diagonal(model, loss_fn, x, y)
    for name, p in model.named_parameters():
        if not name.startswith("0."):
            continue
        def loss_of(v, name=name):
            params = {k: (v if k == name else q.detach()) for k, q in model.named_parameters()}
            return loss_fn(functional_call(model, params, (x,)), y)
        H = torch.autograd.functional.hessian(loss_of, p.detach()).reshape(p.numel(), p.numel()).diagonal()
        r = (torch.einsum("nk,nj->kj", terms["0"], x ** 2) if name.endswith("weight") else terms["0"].sum(0)).flatten()
        assert torch.allclose(G[name].flatten() + r, H, rtol=1e-10, atol=1e-12), name
        assert r.abs().max() > 1e-3 * H.abs().max()  # the term is not negligible here
