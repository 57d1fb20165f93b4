"""Models written the ecosystem's way, measured as written: attention through
``F.scaled_dot_product_attention`` (functional, ``nn.MultiheadAttention``,
``nn.TransformerEncoderLayer``), Hugging Face GPT-2 (``Conv1D`` layers, a tied head, the
``.loss`` convention), tied embeddings -- each exact against the float64 dense reference (or its
explicit-attention twin), on every device; and each bad input with its message."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from custom_functions import CubeOnce  # tests/hessian is on sys.path
from rmed_core.hessian import HessianOperator, hessian_diagonal, rmed_per_layer, top_eigenvalues
from rmed_core.hessian.testing import (DEVICES, NanoGPT, allclose_report, linear_twin, make_case, max_rel_error,
                                      reference_diagonal)
from rmed_core.models import lm_loss

TOL = 1e-6  # float64, relative to each tensor's largest entry


def _device(name: str) -> str:
    if name == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    return name


def _tokens(n=3, t=5, vocab=7, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, vocab, (n, t), generator=g).to(device),
            torch.randint(0, vocab, (n, t), generator=g).to(device))


def _perturb(m: nn.Module, scale=0.3, seed=1) -> nn.Module:
    """Off the symmetric initialisation (LayerNorm weights 1, biases 0), so every block is generic."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=torch.float64).to(p))
    return m


def _exact(model, loss_fn, batch, ref=None, **kw):
    """The exact diagonal equals the reference (by default the dense float64 Hessian of the same
    model); returns the info dict."""
    info: dict = {}
    got = hessian_diagonal(model, loss_fn, batch, info=info, **kw)
    ref = reference_diagonal(model, loss_fn, batch) if ref is None else ref
    got = {n: d.cpu() for n, d in got.items()}
    ref = {n: r.cpu() for n, r in ref.items()}
    assert max_rel_error(got, ref) <= TOL, allclose_report(got, ref, TOL)
    return info


# ---- functional SDPA ----------------------------------------------------------------------------
class SDPANet(nn.Module):
    """Embedding, one attention layer by ``F.scaled_dot_product_attention`` (``explicit``: the same
    attention written out), an output layer."""

    def __init__(self, vocab=7, d=4, heads=2, causal=False, mask=None, explicit=False):
        super().__init__()
        self.emb, self.qkv, self.proj, self.out = nn.Embedding(vocab, d), nn.Linear(d, 3 * d), nn.Linear(d, d), \
            nn.Linear(d, vocab)
        self.heads, self.causal, self.mask, self.explicit = heads, causal, mask, explicit

    def forward(self, x):
        h = self.emb(x)
        n, t, d = h.shape
        q, k, v = (z.view(n, t, self.heads, d // self.heads).transpose(1, 2) for z in self.qkv(h).split(d, 2))
        if self.explicit:
            s = q @ k.transpose(-2, -1) / math.sqrt(d // self.heads)
            keep = torch.ones(t, t, dtype=torch.bool, device=x.device)
            if self.causal:
                keep = keep.tril()
            if self.mask is not None:
                keep = keep & self.mask
            y = torch.softmax(s.masked_fill(~keep, float("-inf")), -1) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask, is_causal=self.causal)
        return self.out(self.proj(y.transpose(1, 2).reshape(n, t, d)).tanh())


def _mask(t=5, device="cpu"):
    g = torch.Generator().manual_seed(3)
    m = torch.rand(t, t, generator=g) > 0.4
    m[torch.arange(t), torch.arange(t)] = True  # every query sees at least itself
    return m.to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("variant", ["plain", "causal", "mask"])
def test_functional_sdpa_equals_its_explicit_twin(variant, device):
    dev = _device(device)
    kw = dict(causal=variant == "causal", mask=_mask(device=dev) if variant == "mask" else None)
    torch.manual_seed(0)
    net = _perturb(SDPANet(**kw).double().to(dev))
    twin = copy.deepcopy(net)
    twin.explicit = True
    batch = _tokens(device=dev)
    info = _exact(net, lm_loss, batch, ref=reference_diagonal(twin, lm_loss, batch))
    assert "brute" not in info["paths"].values()
    # and against the dense reference of the model itself (attention on the math backend there too)
    _exact(net, lm_loss, batch)


def test_sdpa_spectra_and_operator_equal_the_twin():
    torch.manual_seed(0)
    net = _perturb(SDPANet(causal=True).double())
    twin = copy.deepcopy(net)
    twin.explicit = True
    batch = _tokens()
    a, b = top_eigenvalues(net, lm_loss, batch, k=3), top_eigenvalues(twin, lm_loss, batch, k=3)
    assert abs(a.eigenvalues - b.eigenvalues).max() <= 1e-8 * abs(b.eigenvalues).max()
    v = torch.randn(sum(p.numel() for p in net.parameters()), dtype=torch.float64)
    hv, hv_twin = HessianOperator(net, lm_loss, batch).matvec(v), HessianOperator(twin, lm_loss, batch).matvec(v)
    assert torch.allclose(hv, hv_twin, rtol=1e-9, atol=1e-12)
    table = rmed_per_layer(net, lm_loss, batch, method="sampled", n_samples=8, exact_below=0)
    assert len(table) == len(dict(net.named_parameters()))


def test_the_callers_attention_backends_are_restored():
    torch.manual_seed(0)
    net = SDPANet(causal=True).double()
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.MATH]):
        before = torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.math_sdp_enabled()
        hessian_diagonal(net, lm_loss, _tokens(), params=["out.bias"])
        assert (torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.math_sdp_enabled()) == before


# ---- torch's own attention modules --------------------------------------------------------------
class MHANet(nn.Module):
    def __init__(self, explicit=False, vocab=7, d=4):
        super().__init__()
        self.emb, self.out = nn.Embedding(vocab, d), nn.Linear(d, vocab)
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.explicit = explicit

    def forward(self, x):
        h = self.emb(x)
        t = x.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        # need_weights=True: the weights are formed explicitly (no scaled_dot_product_attention)
        return self.out(self.attn(h, h, h, attn_mask=causal, need_weights=self.explicit)[0])


@pytest.mark.parametrize("device", DEVICES)
def test_multihead_attention_without_weights_is_exact(device):
    dev = _device(device)
    torch.manual_seed(0)
    net = _perturb(MHANet().double().to(dev)).eval()
    twin = copy.deepcopy(net)
    twin.explicit = True
    batch = _tokens(device=dev)
    _exact(net, lm_loss, batch, ref=reference_diagonal(twin, lm_loss, batch))
    _exact(net, lm_loss, batch)


class EncoderNet(nn.Module):
    def __init__(self, vocab=7, d=4):
        super().__init__()
        self.emb, self.out = nn.Embedding(vocab, d), nn.Linear(d, vocab)
        self.enc = nn.TransformerEncoderLayer(d, 2, 8, dropout=0.0, batch_first=True)

    def forward(self, x):
        return self.out(self.enc(self.emb(x)))


@pytest.mark.parametrize("device", DEVICES)
def test_transformer_encoder_layer_in_eval_mode_is_exact(device):
    dev = _device(device)
    torch.manual_seed(0)
    net = _perturb(EncoderNet().double().to(dev)).eval()
    batch = _tokens(device=dev)
    with torch.no_grad():  # the fused fast path, taken without gradients, computes the same function
        fast = net(batch[0])
    assert torch.allclose(fast, net(batch[0]), atol=1e-12)
    info = _exact(net, lm_loss, batch)
    # the encoder's own Linear layers and LayerNorms are structured; MultiheadAttention's packed
    # in_proj_weight has no rule and is exact by brute force
    assert info["paths"]["enc.linear1.weight"] == "structured" and info["paths"]["enc.norm1.weight"] == "structured"
    assert info["paths"]["enc.self_attn.in_proj_weight"] == "brute"


# ---- tied embeddings ------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_nanogpt_tied_head_is_exact_at_the_cost_of_its_two_uses(device):
    dev = _device(device)
    m, loss, (x, y) = make_case("sdpa_tied", device=dev)
    info = _exact(m, loss, (x, y))
    assert info["paths"]["wte.weight"] == "tied" and not info["fallback"]
    assert set(info["paths"].values()) <= {"tied", "structured"}  # nanoGPT's LayerNorm is recognised too
    twin = copy.deepcopy(m)
    for block in twin.h:
        block.attention = "explicit"
    _exact(m, loss, (x, y), ref=reference_diagonal(twin, loss, (x, y)))
    # products: the embedding's own T d plus the head's V plus checks, not one per entry (V d)
    n, t = x.shape
    vocab, d = m.wte.weight.shape
    brute: dict = {}
    hessian_diagonal(m, loss, (x, y), params=["wte.weight"], method="brute", info=brute)
    tied: dict = {}
    hessian_diagonal(m, loss, (x, y), params=["wte.weight"], info=tied)
    assert tied["n_hvp"] <= t * d + vocab + 8 < brute["n_hvp"] == vocab * d


class TiedTwice(nn.Module):
    """One Linear weight used twice: ``z1 = a(x)``, then ``b`` (the same weight) on features that
    depend on ``z1`` (the first-order part of the cross term), the samples coupled by a mean over
    the batch (merged into one)."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.a, self.b = nn.Linear(n_in, n_out), nn.Linear(n_in, n_out, bias=False)
        self.b.weight = self.a.weight
        self.reps = n_in // n_out

    def forward(self, x):
        h = torch.tanh(self.a(x)).repeat(1, 1, self.reps)
        u = x + h
        return self.b(u - u.mean(0, keepdim=True))


@pytest.mark.parametrize("case", ["merged (c)", "merged (b)", "independent (b)", "independent (c)"])
def test_tied_weight_is_exact_on_every_probe_set(case):
    """The earlier use of a tied weight with probe set (b) or (c), its samples independent or
    merged; each the dense reference's diagonal."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    if case.startswith("merged"):
        # merged: T = 2 t positions, K = n_out units, J = n_in features; (b) costs T K, (c) J K + K
        n_in, n_out, t = (3, 3, 3) if case.endswith("(c)") else (6, 2, 2)
        net = TiedTwice(n_in, n_out).double()
        batch = (torch.randn(2, t, n_in, generator=g, dtype=torch.float64),
                 torch.randn(2, t, n_out, generator=g, dtype=torch.float64))
        loss = F.mse_loss
    else:  # a token embedding, V words at T positions: (b) costs T d, (c) V d
        vocab, t = (7, 3) if case.endswith("(b)") else (3, 6)
        net = _perturb(NanoGPT(vocab, d=4, n_layer=1, n_head=2, block=t).double()).eval()
        batch, loss = _tokens(2, t, vocab), lm_loss
    info = _exact(net, loss, batch)
    assert "tied" in info["paths"].values()


def test_sampled_estimate_of_a_tied_weight_is_not_brute_force():
    m, loss, batch = make_case("sdpa_tied")
    exact = rmed_per_layer(m, loss, batch).set_index("layer")
    hits = 0
    for seed in range(4):
        df = rmed_per_layer(m, loss, batch, method="sampled", params=["wte.weight"], seed=seed, n_samples=12,
                            n_candidates=3, exact_below=0).set_index("layer")
        row = df.loc["wte.weight"]
        assert row.h_max <= exact.h_max["wte.weight"] * (1 + 1e-9)
        hits += row.lower <= exact.r_med["wte.weight"] * (1 + 1e-9) <= row.upper * (1 + 1e-9)
        # entries: the draws and candidates, one product each, plus the norm bound -- not V d
        assert df.attrs["products"] < m.wte.weight.numel()
    assert hits >= 3


# ---- recognised by what they compute ----------------------------------------------------------------
class TransposedLinear(nn.Module):
    """``y = x @ W + b`` with ``W`` of shape (in, out): what Hugging Face's Conv1D computes."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_in, n_out) * 0.3)
        self.bias = nn.Parameter(torch.randn(n_out) * 0.1)

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).reshape(*x.shape[:-1], -1)


class Doubled(nn.Linear):
    """Looks like a Linear; its weight enters twice (value ``x W^T``, gradient ``2 x``)."""

    def forward(self, x):
        return F.linear(x, 2 * self.weight - self.weight.detach(), self.bias)


class Squared(nn.Linear):
    def forward(self, x):
        return F.linear(x, self.weight * self.weight.abs(), self.bias)


@pytest.mark.parametrize("layer, path", [(TransposedLinear, "structured"), (Doubled, "brute"), (Squared, "brute")])
def test_a_linear_in_disguise_is_recognised_only_when_verified(layer, path):
    torch.manual_seed(0)
    net = nn.Sequential(layer(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    g = torch.Generator().manual_seed(0)
    batch = (torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randint(0, 2, (5,), generator=g))
    info = _exact(net, F.cross_entropy, batch)
    assert info["paths"]["0.weight"] == path
    if path == "brute":
        assert "not a Linear" in info["fallback"]["0.weight"]


# ---- Hugging Face GPT-2 ---------------------------------------------------------------------------
def _gpt2(attn: str, device="cpu"):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(vocab_size=11, n_positions=5, n_embd=8, n_layer=1, n_head=2, bos_token_id=0,
                                  eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                  attn_implementation=attn)
    torch.manual_seed(0)
    m = transformers.GPT2LMHeadModel(cfg)
    m.loss_type = "ForCausalLM"
    return _perturb(m.double().to(device).eval(), 0.1)


def _shifted_lm_loss(logits, labels):
    """What GPT-2's own loss computes (next-token cross-entropy), in the logits' dtype."""
    return lm_loss(logits[:, :-1], labels[:, 1:])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_gpt2_is_exact_with_its_own_loss_and_with_a_loss_on_logits(attn, device):
    dev = _device(device)
    m = _gpt2(attn, dev)
    ids = _tokens(2, 5, 11, device=dev)[0]
    info = _exact(m, None, {"input_ids": ids, "labels": ids})
    # every Conv1D is a Linear in disguise, the head is tied to the token embedding: nothing brute
    assert info["paths"]["transformer.wte.weight"] == "tied" and not info["fallback"]
    assert info["paths"]["transformer.h.0.attn.c_attn.weight"] == "structured"
    # a loss function on .logits, with the targets as the pair's second element or as labels
    _exact(m, _shifted_lm_loss, (ids, ids))
    _exact(m, _shifted_lm_loss, {"input_ids": ids, "labels": ids})
    assert info["n_hvp"] < sum(p.numel() for p in m.parameters())


def test_gpt2_costs_what_the_same_model_with_linear_layers_costs():
    m = _gpt2("sdpa")
    twin, transposed = linear_twin(m)
    assert transposed and not any(type(x).__name__ == "Conv1D" for x in twin.modules())
    ids = _tokens(2, 5, 11)[0]
    a, b = {}, {}
    da = hessian_diagonal(m, None, {"input_ids": ids, "labels": ids}, info=a)
    db = hessian_diagonal(twin, None, {"input_ids": ids, "labels": ids}, info=b)
    assert a["n_hvp"] == b["n_hvp"]
    ref = {n: db[n].T if n in transposed else db[n] for n in da}
    # GPT-2's own loss runs in float32 (it casts the logits): agreement to that rounding
    assert max_rel_error(da, ref) <= TOL, allclose_report(da, ref, TOL)


# ---- bad input --------------------------------------------------------------------------------------
class ForcedFlash(nn.Module):
    """Attention that forces the fused flash kernel (no second derivative on the CPU)."""

    def __init__(self):
        super().__init__()
        self.emb, self.qkv, self.out = nn.Embedding(7, 4), nn.Linear(4, 12), nn.Linear(4, 7)

    def forward(self, x):
        q, k, v = (z.unsqueeze(1) for z in self.qkv(self.emb(x)).split(4, -1))
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.squeeze(1))


class Net(nn.Module):
    def __init__(self, attention: nn.Module):
        super().__init__()
        self.attention = attention

    def forward(self, x):
        return self.attention(x)


@pytest.mark.parametrize("method", ["exact", "brute", "sampled", "top_eig"])
def test_a_fused_kernel_without_second_derivative_is_refused_naming_the_module(method):
    torch.manual_seed(0)
    net = Net(ForcedFlash()).float()  # the CPU flash kernel takes float32
    batch = _tokens()
    call = {"exact": lambda: hessian_diagonal(net, lm_loss, batch),
            "brute": lambda: hessian_diagonal(net, lm_loss, batch, method="brute"),
            "sampled": lambda: rmed_per_layer(net, lm_loss, batch, method="sampled"),
            "top_eig": lambda: top_eigenvalues(net, lm_loss, batch, k=1)}[method]
    with pytest.raises(RuntimeError, match=r"module 'attention' \(ForcedFlash\) runs ScaledDotProductFlashAttention"
                                           r".*fused kernel.*differentiable torch operations"):
        call()


class Cubed(nn.Module):
    def forward(self, h):
        return CubeOnce.apply(h)


def test_once_differentiable_names_the_module_that_applies_it():
    net = nn.Sequential(nn.Linear(3, 4), Cubed(), nn.Linear(4, 2)).double()
    batch = (torch.randn(5, 3, dtype=torch.float64), torch.randint(0, 2, (5,)))
    with pytest.raises(RuntimeError, match=r"'0.weight'.*CubeOnce \(applied in module '1' \(Cubed\)\).*differentiate"):
        hessian_diagonal(net, F.cross_entropy, batch)


class Out:
    """An output object with neither a loss nor logits."""

    def __init__(self, hidden):
        self.hidden = hidden


class ReturnsTensor(nn.Linear):
    def forward(self, input, labels=None):
        return super().forward(input)


class ReturnsObject(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x, labels=None):
        return Out(self.fc(x))


def test_dict_batch_and_output_objects_get_clear_errors():
    m = _gpt2("sdpa")
    ids = _tokens(2, 5, 11)[0]
    with pytest.raises(ValueError, match=r"no 'labels' \(keys: \['input_ids'\]\).*add batch\['labels'\]"):
        hessian_diagonal(m, None, {"input_ids": ids})
    with pytest.raises(ValueError, match=r"no 'labels'.*loss_fn\(output, batch\['labels'\]\)"):
        rmed_per_layer(m, _shifted_lm_loss, {"input_ids": ids})
    with pytest.raises(ValueError, match=r"loss_fn=None reads the model's own .loss from a dict batch"):
        hessian_diagonal(m, None, (ids, ids))
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"ReturnsObject returned a Out with fields \['hidden'\].*no .loss"):
        hessian_diagonal(ReturnsObject(), None, {"x": x, "labels": torch.zeros(4, dtype=torch.long)})
    with pytest.raises(ValueError, match=r"loss_fn could not read the output of ReturnsObject.*no logits"):
        hessian_diagonal(ReturnsObject(), F.cross_entropy, (x, torch.zeros(4, dtype=torch.long)))
    with pytest.raises(ValueError, match=r"loss_fn=None reads the model's own .loss.*returned a tensor"):
        HessianOperator(ReturnsTensor(3, 2), None, {"input": x, "labels": x})
    with pytest.raises(ValueError, match=r"Linear cannot be called with the batch's keyword inputs \['input', 'labels'\]"):
        hessian_diagonal(nn.Linear(3, 2), None, {"input": x, "labels": x})
