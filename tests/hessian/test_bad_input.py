"""Bad input, as a suite: each input a demanding user brings gets a clear error (checked by its
message) or a number equal to the float64 ``torch.autograd.functional.hessian`` reference --
nothing in between. The numbered cases are those of the "never a silently wrong number" list:
(1) stochastic forward passes, (2) graphs the structured engine cannot see through, plus inputs refused
before any work starts. What a run and the store refuse is in ``tests/runs/test_store_integrity.py``."""
from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F
from torch import nn

from custom_functions import Cube, CubeOnce  # noqa: E402 (tests/hessian is on sys.path)
from rmed_core.hessian import HessianOperator, hessian_diagonal, rmed_per_layer, top_eigenvalues
from rmed_core.hessian.testing import allclose_report, make_case, max_rel_error, reference_diagonal

TOL = 1e-10  # float64, relative to each tensor's largest entry


def _assert_exact(model, loss_fn, batch, method="exact", **kw):
    """The diagonal by ``method`` equals the autograd reference; returns the info dict."""
    info = {}
    got = hessian_diagonal(model, loss_fn, batch, method=method, info=info, **kw)
    ref = reference_diagonal(model, loss_fn, batch, kw.get("params"))
    assert max_rel_error(got, ref) < TOL, allclose_report(got, ref)
    return info


def _cls_batch(n=6, d=3, k=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64), torch.randint(0, k, (n,), generator=g))


# ---- (1) stochastic forward passes ---------------------------------------------------------------
class FunctionalDropout(nn.Module):
    def __init__(self, p=0.5):
        super().__init__()
        self.fc, self.out, self.p = nn.Linear(3, 8), nn.Linear(8, 2), p

    def forward(self, x):
        return self.out(F.dropout(torch.tanh(self.fc(x)), self.p, training=True))


class AttentionNet(nn.Module):
    def __init__(self, dropout=0.5):
        super().__init__()
        self.emb = nn.Embedding(5, 4)
        self.attn = nn.MultiheadAttention(4, 2, dropout=dropout, batch_first=True)
        self.out = nn.Linear(4, 5)

    def forward(self, x):
        h = self.emb(x)
        return self.out(self.attn(h, h, h, need_weights=True)[0])  # explicit attention: twice differentiable


def _lm_loss(o, t):
    return F.cross_entropy(o.reshape(-1, o.shape[-1]), t.reshape(-1))


def _attn_batch():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 5, (3, 4), generator=g), torch.randint(0, 5, (3, 4), generator=g)


@pytest.mark.parametrize("entry", ["exact", "brute", "operator", "rmed", "sampled", "top_eig"])
def test_functional_dropout_is_refused_naming_the_module(entry):
    torch.manual_seed(0)
    net = FunctionalDropout().double()
    batch = _cls_batch()
    call = {"exact": lambda: hessian_diagonal(net, F.cross_entropy, batch),
            "brute": lambda: hessian_diagonal(net, F.cross_entropy, batch, method="brute"),
            "operator": lambda: HessianOperator(net, F.cross_entropy, batch),
            "rmed": lambda: rmed_per_layer(net, F.cross_entropy, batch),
            "sampled": lambda: rmed_per_layer(net, F.cross_entropy, batch, method="sampled"),
            "top_eig": lambda: top_eigenvalues(net, F.cross_entropy, batch, k=1)}[entry]
    words = r"not deterministic: the model's own forward \(FunctionalDropout\) draws random numbers"
    with pytest.raises(ValueError, match=words):
        call()


def test_functional_dropout_with_tiny_p_is_still_refused():
    # two passes would agree bitwise most of the time; drawing random numbers is what gives it away
    net = FunctionalDropout(p=1e-9).double()
    with pytest.raises(ValueError, match="draws random numbers"):
        hessian_diagonal(net, F.cross_entropy, _cls_batch())


def test_attention_dropout_in_training_mode_is_refused_naming_it():
    torch.manual_seed(0)
    net = AttentionNet().double().train()
    with pytest.raises(ValueError, match=r"module 'attn' \(MultiheadAttention\)"):
        rmed_per_layer(net, _lm_loss, _attn_batch())


def test_attention_dropout_in_eval_mode_is_exact():
    torch.manual_seed(0)
    net = AttentionNet().double().eval()
    _assert_exact(net, _lm_loss, _attn_batch(), params=["emb.weight", "out.weight", "out.bias"])


def test_private_generator_noise_is_refused():
    class Noisy(nn.Module):  # random, but never touches torch's global generators
        def __init__(self):
            super().__init__()
            self.fc, self.gen = nn.Linear(3, 2), torch.Generator().manual_seed(1)

        def forward(self, x):
            return self.fc(x) + torch.randn(x.shape[0], 2, generator=self.gen, dtype=x.dtype)

    with pytest.raises(ValueError, match=r"not deterministic: the model's own forward \(Noisy\) gives a different"):
        hessian_diagonal(Noisy().double(), F.cross_entropy, _cls_batch())


def test_nn_dropout_keeps_its_message():
    net = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 2)).train()
    with pytest.raises(ValueError, match="'1'.*Dropout.*model.eval"):
        hessian_diagonal(net, F.cross_entropy, (torch.randn(5, 3), torch.randint(0, 2, (5,))))


def test_the_check_leaves_the_random_state_alone():
    m, loss, batch = make_case("mlp_tanh")
    torch.manual_seed(3)
    hessian_diagonal(m, loss, batch)
    after = torch.rand(1)
    torch.manual_seed(3)
    assert torch.equal(after, torch.rand(1))


# ---- (2) graphs the structured engine cannot see through ------------------------------------------
class TwoLayer(nn.Module):
    def __init__(self, mid=None):
        super().__init__()
        self.a, self.b, self.mid = nn.Linear(3, 4), nn.Linear(4, 2), mid

    def forward(self, x):
        h = self.a(x)
        return self.b(torch.tanh(h) if self.mid is None else self.mid(h))


def test_forward_hook_sends_the_module_to_brute_force():
    torch.manual_seed(0)
    net = TwoLayer().double()
    net.a.register_forward_hook(lambda m, i, o: o * o + o)  # changes the layer's output
    info = _assert_exact(net, F.cross_entropy, _cls_batch())
    assert info["paths"]["a.weight"] == info["paths"]["a.bias"] == "brute"
    assert "forward hook" in info["fallback"]["a.weight"]
    assert info["paths"]["b.weight"] != "brute"  # the unhooked layer keeps the structured path


def test_forward_pre_hook_sends_the_module_to_brute_force():
    torch.manual_seed(0)
    net = TwoLayer().double()
    net.b.register_forward_pre_hook(lambda m, args: (args[0] * 2.0,))
    info = _assert_exact(net, F.cross_entropy, _cls_batch())
    assert info["paths"]["b.weight"] == "brute" and "pre-hook" in info["fallback"]["b.weight"]


def test_global_forward_hook_sends_everything_to_brute_force():
    torch.manual_seed(0)
    net = TwoLayer().double()

    def square_linear_outputs(m, i, o):
        return o * o + o if isinstance(m, nn.Linear) else None

    h = nn.modules.module.register_module_forward_hook(square_linear_outputs)
    try:
        info = _assert_exact(net, F.cross_entropy, _cls_batch())
    finally:
        h.remove()
    assert set(info["paths"].values()) == {"brute"} and "global" in info["fallback"]["a.weight"]


class Apply(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, h):
        return self.fn.apply(h)


@pytest.mark.parametrize("method", ["exact", "brute"])
def test_custom_function_is_warned_about_and_never_certified_through(method):
    torch.manual_seed(0)
    net = TwoLayer(Apply(Cube)).double()
    with pytest.warns(UserWarning, match="custom autograd.Function.*Cube"):
        info = _assert_exact(net, F.cross_entropy, _cls_batch(), method=method)
    if method == "exact":
        assert info["paths"]["a.weight"] != "gauss-newton"  # the Gauss-Newton certificate declined


def test_custom_function_in_the_loss_declines_every_shortcut():
    torch.manual_seed(0)
    m, _, batch = make_case("mlp_relu")  # ReLU MLP: the Gauss-Newton shortcut would apply

    def loss(o, t):
        return F.cross_entropy(Cube.apply(o), t)

    with pytest.warns(UserWarning, match="Cube"):
        info = _assert_exact(m, loss, batch)
    assert "gauss-newton" not in info["paths"].values()


@pytest.mark.parametrize("method", ["exact", "brute"])
def test_once_differentiable_raises_naming_the_parameter(method):
    torch.manual_seed(0)
    net = TwoLayer(Apply(CubeOnce)).double()
    with pytest.raises(RuntimeError, match="'a.weight'.*CubeOnce.*differentiate twice"):
        hessian_diagonal(net, F.cross_entropy, _cls_batch(), method=method)


def test_once_differentiable_cut_graph_is_not_zero_curvature():
    # the error node check of brute force itself (a cut second-order graph raises, never zeros)
    from rmed_core.hessian._guards import check_twice_differentiable

    torch.manual_seed(0)
    net = TwoLayer(Apply(CubeOnce)).double()
    x, y = _cls_batch()
    loss = F.cross_entropy(net(x), y)
    g = torch.autograd.grad(loss, [net.a.weight, net.b.weight], create_graph=True)
    with pytest.raises(RuntimeError, match="'a.weight' cannot be computed.*differentiate twice"):
        check_twice_differentiable({"a.weight": g[0]})


def test_embedding_scale_grad_by_freq_goes_to_brute_force_and_is_exact():
    torch.manual_seed(0)
    net = AttentionNet(dropout=0.0).double().eval()
    net.emb.scale_grad_by_freq = True
    x, y = _attn_batch()
    x[0, :3] = 1  # repeated tokens: the frequency scaling matters
    info = _assert_exact(net, _lm_loss, (x, y), params=["emb.weight", "out.weight"])
    assert info["paths"]["emb.weight"] == "brute" and "scale_grad_by_freq" in info["fallback"]["emb.weight"]


@pytest.mark.parametrize("method", ["exact", "brute", "sampled", "operator"])
def test_batchnorm_buffers_are_restored(method):
    m, loss, batch = make_case("batchnorm_train")
    before = {k: v.clone() for k, v in m.state_dict().items()}
    if method == "operator":
        HessianOperator(m, loss, batch).matvec(torch.ones(sum(p.numel() for p in m.parameters())))
    elif method == "sampled":
        rmed_per_layer(m, loss, batch, method="sampled", n_samples=8)
    else:
        got = hessian_diagonal(m, loss, batch, method=method)
    after = m.state_dict()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k
    assert int(after["bn.num_batches_tracked"]) == 0
    if method in ("exact", "brute"):
        ref = reference_diagonal(m, loss, batch)
        # the structured path on merged BatchNorm samples agrees to ~1e-7 (the exactness suite allows 1e-6)
        tol = 1e-6 if method == "exact" else TOL
        assert max_rel_error(got, ref) < tol, allclose_report(got, ref)


# ---- inputs refused before any work starts --------------------------------------------------------
def test_meta_device_model_is_refused():
    with torch.device("meta"):
        net = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="'weight' is on the meta device.*materialise"):
        hessian_diagonal(net, F.cross_entropy, (torch.randn(4, 3), torch.randint(0, 2, (4,))))


def test_empty_batch_is_refused():
    net = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="batch is empty"):
        hessian_diagonal(net, F.cross_entropy, (torch.randn(0, 3), torch.randint(0, 2, (0,))))


def test_batch_too_large_for_memory_is_refused_before_any_work():
    net = nn.Sequential(nn.Embedding(10, 64), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))
    n = 10**9  # stride-0 views: the batch itself takes no memory
    x = torch.zeros(1, 16, dtype=torch.long).expand(n, 16)
    y = torch.zeros(1, 16, dtype=torch.long).expand(n, 16)
    with pytest.raises(ValueError, match=r"batch of 1000000000 samples is too large for memory.*GiB.*at most"):
        hessian_diagonal(net, _lm_loss, (x, y))


def test_non_scalar_and_non_finite_losses_malformed_batches_unknown_and_frozen_names():
    m, loss, (x, y) = make_case("mlp_relu")
    with pytest.raises(ValueError, match="scalar"):
        hessian_diagonal(m, lambda o, t: F.cross_entropy(o, t, reduction="none"), (x, y))
    with pytest.raises(ValueError, match="not finite"):
        hessian_diagonal(m, loss, (x * float("inf"), y))
    with pytest.raises(ValueError, match="batch must be a pair"):
        hessian_diagonal(m, loss, (x, y, y))
    with pytest.raises(ValueError, match="batch size mismatch"):
        hessian_diagonal(m, loss, (x, y[:-1]))
    with pytest.raises(ValueError, match="valid names"):
        hessian_diagonal(m, loss, (x, y), params=["nope"])
    next(m.parameters()).requires_grad_(False)
    frozen = [n for n, p in m.named_parameters() if not p.requires_grad]
    with pytest.raises(ValueError, match="do not require grad"):
        hessian_diagonal(m, loss, (x, y), params=frozen)


# ---- TrainConfig: refused on construction, before any work ------------------------------------------
