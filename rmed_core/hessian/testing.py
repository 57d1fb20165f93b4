"""Tiny models, the dense reference diagonal and error reports for checking Hessian diagonals.

Used by the exactness tests (``tests/test_hessian_*.py``), the chapter notebook
(``notebooks/computing_rmed.py``) and the benchmarks. Each *case* is a ``(model, loss_fn, batch)``
small enough that ``torch.autograd.functional.hessian`` (the reference) runs in seconds, and
together they cover every path of :mod:`rmed_core.hessian.exact`:

============================  ====================================================================
``mlp_relu``, ``mlp_tanh``     Linear layers, one position per sample (probe path (a))
``cnn_max``                    Conv2d (unfolded patches) with ReLU and max-pooling
``transformer``                embeddings, LayerNorm, explicit causal attention, GELU, residuals
``transformer_tied``           the same, head tied to the token embedding (a tied weight)
``sdpa_tied``                  :class:`NanoGPT`: ``F.scaled_dot_product_attention``, a hand-written
                               LayerNorm, a fused qkv projection, head tied to the token embedding
``tokenwise``                  a Linear applied at every position, positions mixed afterwards
``shared``                     a Linear called twice (brute-force fallback)
``batchnorm_train``            BatchNorm in training mode: samples coupled, merged into one
============================  ====================================================================

>>> model, loss_fn, batch = make_case("mlp_tanh")
>>> from rmed_core.hessian import hessian_diagonal
>>> max_rel_error(hessian_diagonal(model, loss_fn, batch), reference_diagonal(model, loss_fn, batch)) < 1e-12
True
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..models import CNN, MLP, TransformerLM, lm_loss

__all__ = ["CASES", "DEVICES", "make_case", "reference_diagonal", "max_rel_error", "allclose_report",
           "SharedLayer", "TokenwiseMLP", "BNNet", "NanoGPT", "linear_twin"]

DEVICES = ["cpu", "cuda"]


class SharedLayer(nn.Module):
    """``(N, T, 3) -> (N, 4)``: a Linear applied twice in a row (its Hessian diagonal has cross
    terms between the two calls, so the structured method must fall back to brute force)."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(3, 4)
        self.shared = nn.Linear(4, 4)
        self.out = nn.Linear(4, 4)

    def forward(self, x):
        h = torch.tanh(self.inp(x))
        h = torch.tanh(self.shared(h))
        h = torch.tanh(self.shared(h))
        return self.out(h).mean(1)


class TokenwiseMLP(nn.Module):
    """``(N, T, 3) -> (N, 4)``: a layer applied at every position, then positions mixed by a sum of
    squares (so ``d^2 L / dz^2`` couples positions: probe path (b)/(c))."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 5)
        self.mix = nn.Linear(5, 4)

    def forward(self, x):
        return self.mix(torch.tanh(self.fc(x))).pow(2).sum(1)


class BNNet(nn.Module):
    """``(N, 4) -> (N, 3)``: Linear, BatchNorm1d, tanh, Linear. In training mode the batch
    statistics couple the samples."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 5)
        self.bn = nn.BatchNorm1d(5)
        self.out = nn.Linear(5, 3)

    def forward(self, x):
        return self.out(torch.tanh(self.bn(self.fc(x))))


class LayerNorm(nn.Module):
    """nanoGPT's LayerNorm: ``F.layer_norm`` with its own weight and an optional bias."""

    def __init__(self, ndim: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class _NanoBlock(nn.Module):
    def __init__(self, d: int, n_head: int, attention: str):
        super().__init__()
        self.n_head, self.attention = n_head, attention
        self.ln_1, self.ln_2 = LayerNorm(d), LayerNorm(d)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def attend(self, x):
        n, t, d = x.shape
        q, k, v = (z.view(n, t, self.n_head, d // self.n_head).transpose(1, 2)
                   for z in self.c_attn(x).split(d, dim=2))
        if self.attention == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # the same, written out
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.n_head)
            y = torch.softmax(att.masked_fill(mask, float("-inf")), dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).reshape(n, t, d))

    def forward(self, x):
        x = x + self.attend(self.ln_1(x))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class NanoGPT(nn.Module):
    """A model written the way nanoGPT writes it: ``(N, T)`` token ids -> ``(N, T, V)`` logits;
    causal attention by ``F.scaled_dot_product_attention(..., is_causal=True)``
    (``attention="sdpa"``) or written out (``"explicit"``: the same function), nanoGPT's own
    LayerNorm, one fused ``c_attn`` projection, and the output layer tied to the token embedding."""

    def __init__(self, vocab: int, d: int = 8, n_layer: int = 1, n_head: int = 2, block: int = 8,
                 attention: str = "sdpa"):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(block, d)
        self.h = nn.ModuleList(_NanoBlock(d, n_head, attention) for _ in range(n_layer))
        self.ln_f = LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.wte.weight = self.lm_head.weight  # weight tying, as nanoGPT does

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def linear_twin(model: nn.Module) -> tuple[nn.Module, set[str]]:
    """A copy of ``model`` with every Hugging Face ``Conv1D`` (``y = x @ W + b``, ``W`` of shape
    (in, out)) replaced by the ``nn.Linear`` computing the same function (weight ``W^T``): the
    same architecture written with ``nn.Linear``. Also returns the names of the weights so
    transposed (the twin's diagonal of ``name`` is the transpose of the original's)."""
    import copy

    twin = copy.deepcopy(model)
    transposed = set()
    for name, mod in list(twin.named_modules()):
        for child_name, child in list(mod.named_children()):
            if type(child).__name__ == "Conv1D":
                n_in, n_out = child.weight.shape
                lin = nn.Linear(n_in, n_out, dtype=child.weight.dtype, device=child.weight.device)
                with torch.no_grad():
                    lin.weight.copy_(child.weight.T)
                    lin.bias.copy_(child.bias)
                setattr(mod, child_name, lin)
                transposed.add(f"{name}.{child_name}.weight" if name else f"{child_name}.weight")
    return twin, transposed


CASES = ["mlp_relu", "mlp_tanh", "cnn_max", "transformer", "transformer_tied", "sdpa_tied", "tokenwise", "shared",
         "batchnorm_train"]


def make_case(name: str, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"):
    """``(model, loss_fn, (inputs, targets))`` for the named case (see the module docstring),
    seeded, in ``dtype`` on ``device``; dropout-free models are in eval mode, ``batchnorm_train``
    in training mode."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    if name in ("mlp_relu", "mlp_tanh"):
        m = MLP([4, 6, 5, 3], name.split("_")[1])
        x, y = torch.randn(6, 4, generator=g), torch.randint(0, 3, (6,), generator=g)
        loss = F.cross_entropy
    elif name == "cnn_max":
        m = CNN(1, 3, width=2, size=4, pool="max")
        x, y = torch.randn(3, 1, 4, 4, generator=g), torch.randint(0, 3, (3,), generator=g)
        loss = F.cross_entropy
    elif name in ("transformer", "transformer_tied"):
        tied = name.endswith("tied")
        # vocab 7, width 8, 2 heads, 4 positions, batch 2; the tied model has one block (the tied
        # embedding goes to brute force, whose reference is the expensive part)
        m = TransformerLM(7, d_model=8, n_layers=1 if tied else 2, n_heads=2, seq_len=4, tie_weights=tied)
        with torch.no_grad():  # move off the symmetric init so LayerNorm/bias curvature is generic
            for p in m.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=g))
        x, y = torch.randint(0, 7, (2, 4), generator=g), torch.randint(0, 7, (2, 4), generator=g)
        loss = lm_loss
    elif name == "sdpa_tied":
        m = NanoGPT(7, d=8, n_layer=1, n_head=2, block=4)
        with torch.no_grad():  # off the symmetric init (LayerNorm weights 1, biases 0)
            for p in m.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=g))
        x, y = torch.randint(0, 7, (2, 4), generator=g), torch.randint(0, 7, (2, 4), generator=g)
        loss = lm_loss
    elif name == "tokenwise":
        m = TokenwiseMLP()
        x, y = torch.randn(3, 4, 3, generator=g), torch.randn(3, 4, generator=g)
        loss = F.mse_loss
    elif name == "shared":
        m = SharedLayer()
        x, y = torch.randn(3, 3, 3, generator=g), torch.randint(0, 4, (3,), generator=g)
        loss = F.cross_entropy
    elif name == "batchnorm_train":
        m = BNNet().train()
        x, y = torch.randn(5, 4, generator=g), torch.randint(0, 3, (5,), generator=g)
        loss = F.cross_entropy
    else:
        raise KeyError(f"unknown case {name!r}; cases: {CASES}")
    m = m.to(device=device, dtype=dtype)
    if not name.startswith("batchnorm"):
        m.eval()
    x = x.to(device=device, dtype=dtype) if x.is_floating_point() else x.to(device)
    y = y.to(device=device, dtype=dtype) if y.is_floating_point() else y.to(device)
    return m, loss, (x, y)


def reference_diagonal(model: nn.Module, loss_fn, batch, names=None) -> dict[str, torch.Tensor]:
    """Per-tensor diagonal of the dense block ``torch.autograd.functional.hessian(...,
    vectorize=True)`` (``numel**2`` entries per tensor: tiny models only). The loss is read as the
    engine reads it (:mod:`rmed_core.hessian._forward`: a dict batch, ``loss_fn=None``, attention
    on the math backend); a tied weight is substituted in both of its uses."""
    from ._forward import forward

    named = dict(model.named_parameters())
    names = list(named) if names is None else list(names)
    out = {}
    for n in names:
        p0 = named[n]

        def f(p, n=n):
            def call(*args, **kwargs):
                return torch.func.functional_call(model, {n: p}, args, kwargs, strict=False, tie_weights=True)

            return forward(call, loss_fn, batch, name=type(model).__name__).loss

        H = torch.autograd.functional.hessian(f, p0.detach(), vectorize=True)
        out[n] = H.reshape(p0.numel(), p0.numel()).diagonal().reshape(p0.shape)
    return out


def _scales(ref: dict[str, torch.Tensor], floor: float = 1e-9) -> dict[str, float]:
    """Per-tensor error scale: the tensor's largest |entry|, floored at ``floor`` times the largest
    over all tensors (some blocks are exactly zero in theory, e.g. the key bias of softmax
    attention, whose reference entries are rounding noise ~1e-18)."""
    top = max(float(r.abs().max()) for r in ref.values()) or 1.0
    return {n: max(float(r.abs().max()), floor * top) for n, r in ref.items()}


def max_rel_error(diag: dict[str, torch.Tensor], ref: dict[str, torch.Tensor], floor: float = 1e-9) -> float:
    """``max`` over tensors of ``max |d - r| / scale`` (scale: see :func:`_scales`)."""
    sc = _scales(ref, floor)
    return max(float((diag[n].to(r) - r).abs().max()) / sc[n] for n, r in ref.items())


def allclose_report(diag, ref, rtol: float = 1e-6, floor: float = 1e-9) -> str:
    """One line per tensor whose relative error exceeds ``rtol``: the worst entry, got and want."""
    lines = []
    sc = _scales(ref, floor)
    for n, r in ref.items():
        d = diag[n].to(r)
        e = (d - r).abs() / sc[n]
        if float(e.max()) > rtol:
            k = int(e.flatten().argmax())
            lines.append(f"{n}: max rel err {float(e.max()):.2e} at {k}: got {float(d.flatten()[k]):.6e}, "
                         f"want {float(r.flatten()[k]):.6e}")
    return "\n".join(lines) or "all close"
