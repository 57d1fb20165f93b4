"""Shared helpers for the Hessian tests: tiny models and the dense reference diagonal."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rmed_core.models import CNN, MLP, TransformerLM, lm_loss

DEVICES = ["cpu", "cuda"]


def reference_diagonal(model: nn.Module, loss_fn, batch, names=None) -> dict[str, torch.Tensor]:
    """Per-tensor diagonal of ``torch.autograd.functional.hessian`` (the whole dense Hessian)."""
    x, y = batch
    named = dict(model.named_parameters())
    names = list(named) if names is None else list(names)

    out = {}
    for n in names:
        p0 = named[n]

        def f(p):
            return loss_fn(torch.func.functional_call(model, {n: p}, (x,), strict=False, tie_weights=True), y)

        H = torch.autograd.functional.hessian(f, p0.detach())
        out[n] = H.reshape(p0.numel(), p0.numel()).diagonal().reshape(p0.shape)
    return out


def _scales(ref: dict[str, torch.Tensor], floor: float = 1e-9) -> dict[str, float]:
    """Per-tensor error scale: the tensor's largest |entry|, floored at 1e-9 of the largest over
    all tensors (some blocks are exactly zero in theory, e.g. the key bias of softmax attention,
    whose reference entries are rounding noise ~1e-18)."""
    top = max(float(r.abs().max()) for r in ref.values()) or 1.0
    return {n: max(float(r.abs().max()), floor * top) for n, r in ref.items()}


def max_rel_error(diag: dict[str, torch.Tensor], ref: dict[str, torch.Tensor], floor: float = 1e-9) -> float:
    """max over tensors of max|d - r| / scale (see ``_scales``)."""
    sc = _scales(ref, floor)
    return max(float((diag[n].to(r) - r).abs().max()) / sc[n] for n, r in ref.items())


def allclose_report(diag, ref, rtol=1e-6, floor: float = 1e-9) -> str:
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


class SharedLayer(nn.Module):
    """A Linear applied twice (must fall back to brute force) and a position-wise layer."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(3, 5)
        self.shared = nn.Linear(5, 5)
        self.out = nn.Linear(5, 4)

    def forward(self, x):  # x (N, T, 3)
        h = torch.tanh(self.inp(x))
        h = torch.tanh(self.shared(h))
        h = torch.tanh(self.shared(h))
        return self.out(h).mean(1)


class TokenwiseMLP(nn.Module):
    """A layer applied at every token position, then positions mixed by a sum."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 6)
        self.mix = nn.Linear(6, 4)

    def forward(self, x):  # (N, T, 3) -> (N, 4)
        return self.mix(torch.tanh(self.fc(x))).pow(2).sum(1)


class BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 6)
        self.bn = nn.BatchNorm1d(6)
        self.out = nn.Linear(6, 3)

    def forward(self, x):
        return self.out(torch.tanh(self.bn(self.fc(x))))


def make_case(name: str, dtype=torch.float64, device="cpu"):
    """(model, loss_fn, batch) for a named tiny case."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    if name in ("mlp_relu", "mlp_tanh"):
        m = MLP([5, 7, 6, 3], name.split("_")[1])
        x, y = torch.randn(9, 5, generator=g), torch.randint(0, 3, (9,), generator=g)
        loss = F.cross_entropy
    elif name in ("cnn_max", "cnn_avg"):
        m = CNN(1, 3, width=2, size=8, pool=name.split("_")[1])
        x, y = torch.randn(4, 1, 8, 8, generator=g), torch.randint(0, 3, (4,), generator=g)
        loss = F.cross_entropy
    elif name in ("transformer", "transformer_tied"):
        m = TransformerLM(11, d_model=8, n_layers=2, n_heads=2, seq_len=5, tie_weights=name.endswith("tied"))
        with torch.no_grad():  # move off the symmetric init so LayerNorm/bias curvature is generic
            for p in m.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=g))
        x, y = torch.randint(0, 11, (3, 5), generator=g), torch.randint(0, 11, (3, 5), generator=g)
        loss = lm_loss
    elif name == "tokenwise":
        m = TokenwiseMLP()
        x, y = torch.randn(4, 6, 3, generator=g), torch.randn(4, 4, generator=g)
        loss = F.mse_loss
    elif name == "shared":
        m = SharedLayer()
        x, y = torch.randn(4, 3, 3, generator=g), torch.randint(0, 4, (4,), generator=g)
        loss = F.cross_entropy
    elif name == "batchnorm_train":
        m = BNNet().train()
        x, y = torch.randn(6, 4, generator=g), torch.randint(0, 3, (6,), generator=g)
        loss = F.cross_entropy
    else:
        raise KeyError(name)
    m = m.to(device=device, dtype=dtype)
    if not name.startswith("batchnorm"):
        m.eval()
    x = x.to(device=device, dtype=dtype) if x.is_floating_point() else x.to(device)
    y = y.to(device=device, dtype=dtype) if y.is_floating_point() else y.to(device)
    return m, loss, (x, y)


CASES = ["mlp_relu", "mlp_tanh", "cnn_max", "cnn_avg", "transformer", "transformer_tied", "tokenwise",
         "shared", "batchnorm_train"]
