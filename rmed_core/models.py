"""The models of the experiments, written so that they can be differentiated twice.

Attention is written out (no fused ``scaled_dot_product_attention``: it has no forward-mode AD on
the CPU), every weight is an ``nn.Linear``/``nn.Embedding``/``nn.LayerNorm``/``nn.Conv2d`` with a
stable name, and nothing is modified in place. Shapes: ``N`` batch, ``T`` sequence length, ``D``
model width, ``V`` vocabulary size, ``C`` classes.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["INITS", "MLP", "CNN", "SelfAttention", "Block", "TransformerLM", "TransformerClassifier", "lm_loss"]

#: The transformers' initialisation schemes. ``"normal"``: every ``nn.Linear`` and ``nn.Embedding``
#: weight from :math:`N(0, 0.02^2)`, every bias zero (GPT-2's scheme, Radford et al. 2019, as in
#: nanoGPT; LayerNorm at ones and zeros). ``"torch"``: each module's own PyTorch default
#: (``nn.Linear``: weight and bias uniform on :math:`\pm 1/\sqrt{\text{fan-in}}`; ``nn.Embedding``:
#: :math:`N(0, 1)`). Which one the paper used is not known; both are this project's choices.
INITS = ("normal", "torch")

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}


def _activation(name: str) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation={name!r} is not known; use one of {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]()


class MLP(nn.Sequential):
    """A fully connected network ``sizes[0] -> ... -> sizes[-1]`` with ``activation`` between
    layers (none after the last). Input ``(N, sizes[0])`` (or any shape flattened to it)."""

    def __init__(self, sizes: list[int], activation: str = "relu"):
        if len(sizes) < 2:
            raise ValueError(f"sizes={sizes!r}: need at least an input and an output size")
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(_activation(activation))
        super().__init__(*layers)


class CNN(nn.Sequential):
    """The image-classification control: two conv-ReLU-maxpool stages and a linear classifier.
    Input ``(N, in_channels, size, size)`` with ``size`` divisible by 4; output ``(N, C)``."""

    def __init__(self, in_channels: int = 1, n_classes: int = 10, width: int = 8, size: int = 28,
                 activation: str = "relu", pool: str = "max"):
        if size % 4:
            raise ValueError(f"size={size}: the image side must be divisible by 4")
        pooling = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[pool]
        super().__init__(
            nn.Conv2d(in_channels, width, 3, padding=1), _activation(activation), pooling(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), _activation(activation), pooling(2),
            nn.Flatten(), nn.Linear(2 * width * (size // 4) ** 2, n_classes),
        )


class SelfAttention(nn.Module):
    """Multi-head self-attention written out:
    ``softmax(Q K^T / sqrt(D/H) + mask) V`` per head, then an output projection.
    ``causal`` masks future positions; ``key_padding`` (``(N, T)`` bool, True = pad) masks keys."""

    def __init__(self, d_model: int, n_heads: int, causal: bool):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.n_heads, self.causal = n_heads, causal
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, key_padding: torch.Tensor | None = None) -> torch.Tensor:
        n, t, d = x.shape
        h = self.n_heads

        def split(z: torch.Tensor) -> torch.Tensor:  # (N, T, D) -> (N, H, T, D/H)
            return z.view(n, t, h, d // h).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // h)
        mask = torch.zeros(t, t, dtype=torch.bool, device=x.device)
        if self.causal:
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        mask = mask.expand(n, 1, t, t)
        if key_padding is not None:
            mask = mask | key_padding[:, None, None, :]
        scores = scores.masked_fill(mask, float("-inf"))
        out = torch.softmax(scores, dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(n, t, d))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))`` with a
    GELU MLP of width ``4 D``."""

    def __init__(self, d_model: int, n_heads: int, causal: bool):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads, causal)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.act = nn.GELU()
        self.out = nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor, key_padding: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), key_padding)
        return x + self.out(self.act(self.fc(self.ln2(x))))


class _Transformer(nn.Module):
    def __init__(self, vocab_size: int, d_model: int, n_layers: int, n_heads: int, seq_len: int, causal: bool,
                 init: str = "normal"):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init={init!r}: expected one of {', '.join(INITS)}")
        self.init = init
        for name, value in dict(vocab_size=vocab_size, d_model=d_model, n_layers=n_layers,
                                n_heads=n_heads, seq_len=seq_len).items():
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"{name}={value!r}: expected a positive integer")
        self.seq_len = seq_len
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(seq_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, causal) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        if init == "normal":
            self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def features(self, idx: torch.Tensor, key_padding: torch.Tensor | None = None) -> torch.Tensor:
        """Token ids ``(N, T)`` -> final normalised features ``(N, T, D)``."""
        t = idx.shape[1]
        if t > self.seq_len:
            raise ValueError(f"sequence length {t} exceeds the model's seq_len={self.seq_len}")
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        for block in self.blocks:
            x = block(x, key_padding)
        return self.ln_f(x)


class TransformerLM(_Transformer):
    """Decoder-only (causal) transformer language model (nanoGPT-shaped). ``(N, T)`` token ids ->
    ``(N, T, V)`` next-token logits. ``tie_weights`` shares the input embedding with the output
    layer (``head.weight is tok.weight``); ``output_bias`` gives the output layer a bias
    (``head.bias``, zero under ``init="normal"``); ``init`` is one of :data:`INITS`."""

    def __init__(self, vocab_size: int, d_model: int = 32, n_layers: int = 2, n_heads: int = 2,
                 seq_len: int = 32, tie_weights: bool = False, init: str = "normal", output_bias: bool = False):
        super().__init__(vocab_size, d_model, n_layers, n_heads, seq_len, causal=True, init=init)
        if not isinstance(output_bias, bool):
            raise ValueError(f"output_bias={output_bias!r}: expected True or False")
        self.head = nn.Linear(d_model, vocab_size, bias=output_bias)
        if tie_weights:
            self.head.weight = self.tok.weight
        elif init == "normal":
            nn.init.normal_(self.head.weight, std=0.02)
        if output_bias and init == "normal":
            nn.init.zeros_(self.head.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(idx))


class TransformerClassifier(_Transformer):
    """Transformer encoder for sequence classification. ``(N, T)`` token ids (``pad_id`` marks
    padding) -> ``(N, C)`` logits from the mean of the non-padding features."""

    def __init__(self, vocab_size: int, n_classes: int, d_model: int = 32, n_layers: int = 2,
                 n_heads: int = 2, seq_len: int = 32, pad_id: int = 0):
        super().__init__(vocab_size, d_model, n_layers, n_heads, seq_len, causal=False)
        self.pad_id = pad_id
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pad = idx == self.pad_id
        pad = pad & ~pad.all(dim=1, keepdim=True)  # an all-padding row attends to everything
        feats = self.features(idx, pad)
        keep = (~pad).to(feats.dtype).unsqueeze(-1)
        return self.head((feats * keep).sum(1) / keep.sum(1))


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy: logits ``(N, T, V)``, targets ``(N, T)``."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
