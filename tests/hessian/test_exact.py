"""Exactness suite: the structured and brute-force diagonals against the dense Hessian.

The reference (``torch.autograd.functional.hessian``, float64, CPU) is computed once per case and
shared by the tests below; every case is also run on CUDA when it exists.
"""
from __future__ import annotations

import functools

import pytest
import torch

from rmed_core.hessian import hessian_diagonal
from rmed_core.hessian.testing import CASES, DEVICES, allclose_report, make_case, max_rel_error, reference_diagonal


def _device(name: str) -> str:
    if name == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    return name


@functools.lru_cache(maxsize=None)
def _reference(case: str) -> dict[str, torch.Tensor]:
    m, loss, batch = make_case(case, torch.float64)
    return reference_diagonal(m, loss, batch)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASES)
def test_exact_matches_dense_hessian_float64(case, device):
    m, loss, batch = make_case(case, torch.float64, _device(device))
    ref = _reference(case)
    info: dict = {}
    diag = hessian_diagonal(m, loss, batch, method="exact", info=info)
    assert set(diag) == set(ref)
    for n, p in m.named_parameters():
        assert diag[n].shape == p.shape and diag[n].dtype == p.dtype and diag[n].device == p.device
    diag = {n: d.cpu() for n, d in diag.items()}
    assert max_rel_error(diag, ref) <= 1e-6, allclose_report(diag, ref)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", ["mlp_tanh", "transformer"])
def test_exact_float32_close_to_float64(case, device):
    m, loss, batch = make_case(case, torch.float32, _device(device))
    diag = hessian_diagonal(m, loss, batch)
    ref = _reference(case)
    assert all(d.dtype == torch.float32 for d in diag.values())
    diag = {n: d.cpu() for n, d in diag.items()}
    # float32 rounding (~1e-7 of the largest entry) floors the scale of exactly-zero blocks
    assert max_rel_error(diag, ref, floor=1e-4) <= 1e-3, allclose_report(diag, ref, 1e-3, floor=1e-4)


@pytest.mark.parametrize("case", ["mlp_relu", "tokenwise", "shared", "batchnorm_train"])
def test_brute_matches_dense_hessian(case):
    m, loss, batch = make_case(case)
    ref = _reference(case)
    diag = hessian_diagonal(m, loss, batch, method="brute")
    assert max_rel_error(diag, ref) <= 1e-10, allclose_report(diag, ref)


def test_fallbacks_are_reported():
    m, loss, batch = make_case("transformer_tied")
    info: dict = {}
    hessian_diagonal(m, loss, batch, info=info)
    assert info["paths"]["tok.weight"] == "tied" and "tok.weight" not in info["fallback"]
    assert info["paths"]["blocks.0.fc.weight"] == "structured"
    m, loss, batch = make_case("shared")
    info = {}
    hessian_diagonal(m, loss, batch, info=info)
    assert set(info["fallback"]) == {"shared.weight", "shared.bias"}


def test_subset_of_params_and_chunking():
    m, loss, batch = make_case("transformer")
    names = ["blocks.1.fc.weight", "ln_f.bias", "pos.weight"]
    ref = {n: _reference("transformer")[n] for n in names}
    diag = hessian_diagonal(m, loss, batch, params=names, chunk=7)
    assert list(diag) == names
    assert max_rel_error(diag, ref) <= 1e-6, allclose_report(diag, ref)


class _CenterBatch(torch.nn.Module):
    """Subtracts the batch mean: linear (no residual curvature) but couples the samples."""

    def forward(self, x):
        return x - x.mean(0, keepdim=True)


def _relu_net(center: bool = False) -> torch.nn.Module:
    layers = [torch.nn.Linear(4, 6), torch.nn.ReLU()] + ([_CenterBatch()] if center else [])
    return torch.nn.Sequential(*layers, torch.nn.Linear(6, 3)).double().eval()


@pytest.mark.parametrize("case,expect", [("mlp_relu", True), ("cnn_max", True), ("mlp_tanh", False)])
def test_gauss_newton_shortcut_only_where_verified(case, expect):
    m, loss, batch = make_case(case)
    info: dict = {}
    diag = hessian_diagonal(m, loss, batch, info=info, chunk=2)
    ggn = {n for n, p in info["paths"].items() if p == "gauss-newton"}
    assert ggn == (set(diag) if expect else set())
    assert max_rel_error(diag, _reference(case)) <= 1e-6


@pytest.mark.parametrize("coupling", ["loss", "network"])
def test_gauss_newton_refused_when_samples_coupled(coupling):
    torch.manual_seed(0)
    m = _relu_net(center=coupling == "network")
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (5,), generator=g)
    if coupling == "loss":
        def loss(out, t):
            return torch.nn.functional.cross_entropy(out, t) + out.sum(0).pow(2).sum()
    else:
        loss = torch.nn.functional.cross_entropy
    info: dict = {}
    diag = hessian_diagonal(m, loss, (x, y), info=info)
    assert "gauss-newton" not in info["paths"].values()
    assert max_rel_error(diag, reference_diagonal(m, loss, (x, y))) <= 1e-6


def test_gauss_newton_with_positions_and_float32():
    """Outputs with positions ((N, T, C), per-token loss; one block of T*C per sample), mixed
    across positions by a linear layer, and a float32 copy within float32 rounding."""

    class MixPositions(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 5)
            self.mix = torch.nn.Linear(4, 4, bias=False)   # over positions
            self.out = torch.nn.Linear(5, 3)

        def forward(self, x):                              # (N, T=4, 3) -> (N, 4, 3)
            h = torch.relu(self.fc(x))
            return self.out(self.mix(h.transpose(1, 2)).transpose(1, 2))

    torch.manual_seed(0)
    m = MixPositions().double().eval()
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(3, 4, 3, generator=g, dtype=torch.float64), torch.randint(0, 3, (3, 4), generator=g)

    def loss(out, t):
        return torch.nn.functional.cross_entropy(out.reshape(-1, 3), t.reshape(-1))

    ref = reference_diagonal(m, loss, (x, y))
    info: dict = {}
    diag = hessian_diagonal(m, loss, (x, y), info=info)
    assert set(info["paths"].values()) == {"gauss-newton"}
    assert max_rel_error(diag, ref) <= 1e-10
    d32 = hessian_diagonal(m.float(), loss, (x.float(), y))
    assert max_rel_error({n: d.double() for n, d in d32.items()}, ref) <= 1e-5


def test_structural_certificate_of_a_zero_residual():
    from rmed_core.hessian.ggn import structurally_residual_free

    x = torch.randn(3, 4, dtype=torch.float64)
    d1 = torch.zeros(3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    unused = torch.zeros(1, requires_grad=True)
    relu = torch.relu(x + d1) @ w
    assert structurally_residual_free(relu, [d1, unused]) == [True, False]
    assert structurally_residual_free(torch.tanh(x + d1) @ w, [d1]) == [False]    # curved
    assert structurally_residual_free((x + d1) * (x + d1), [d1]) == [False]       # both factors depend
    assert structurally_residual_free((x + d1) * w.sum(), [d1]) == [True]         # one factor does
    assert structurally_residual_free(torch.cumsum(x + d1, 0), [d1]) == [None]    # unknown kind
    d2 = torch.zeros(3, 2, dtype=torch.float64, requires_grad=True)
    after = torch.relu(torch.tanh(x + d1) @ w + d2)  # d2 is downstream of the tanh: still clean
    assert structurally_residual_free(after, [d1, d2]) == [False, True]


@pytest.mark.parametrize("op, shortcut", [(lambda h: torch.cumsum(h, 1), True), (torch.sin, False)])
def test_numerical_residual_test_decides_unknown_node_kinds(op, shortcut):
    """A node kind the graph certificate does not know (cumsum: linear; sin: curved) leaves the
    decision to the numerical test, which must take the shortcut for the first only."""

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.out = torch.nn.Linear(4, 6), torch.nn.Linear(6, 3)

        def forward(self, x):
            return self.out(op(self.fc(x)))

    torch.manual_seed(0)
    m = Net().double().eval()
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (5,), generator=g)
    loss = torch.nn.functional.cross_entropy
    info: dict = {}
    diag = hessian_diagonal(m, loss, (x, y), info=info)
    assert (info["paths"]["fc.weight"] == "gauss-newton") == shortcut
    assert max_rel_error(diag, reference_diagonal(m, loss, (x, y))) <= 1e-10
