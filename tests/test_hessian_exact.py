"""Exactness suite: the structured and brute-force diagonals against the dense Hessian."""
from __future__ import annotations

import pytest
import torch

from _hessian_helpers import CASES, DEVICES, allclose_report, make_case, max_rel_error, reference_diagonal
from rmed_core.hessian import hessian_diagonal


def _device(name: str) -> str:
    if name == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    return name


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASES)
def test_exact_matches_dense_hessian_float64(case, device):
    m, loss, batch = make_case(case, torch.float64, _device(device))
    ref = reference_diagonal(m, loss, batch)
    info: dict = {}
    diag = hessian_diagonal(m, loss, batch, method="exact", info=info)
    assert set(diag) == set(ref)
    for n, p in m.named_parameters():
        assert diag[n].shape == p.shape and diag[n].dtype == p.dtype
    assert max_rel_error(diag, ref) <= 1e-6, allclose_report(diag, ref)


@pytest.mark.parametrize("case", ["mlp_tanh", "transformer"])
def test_exact_float32_close_to_float64(case):
    m, loss, batch = make_case(case, torch.float32)
    m64, _, batch64 = make_case(case, torch.float64)
    diag = hessian_diagonal(m, loss, batch)
    ref = reference_diagonal(m64, loss, batch64)
    assert all(d.dtype == torch.float32 for d in diag.values())
    # float32 rounding (~1e-7 of the largest entry) floors the scale of exactly-zero blocks
    assert max_rel_error(diag, ref, floor=1e-4) <= 1e-3, allclose_report(diag, ref, 1e-3, floor=1e-4)


@pytest.mark.parametrize("case", ["mlp_relu", "tokenwise", "shared"])
def test_brute_matches_dense_hessian(case):
    m, loss, batch = make_case(case)
    ref = reference_diagonal(m, loss, batch)
    diag = hessian_diagonal(m, loss, batch, method="brute")
    assert max_rel_error(diag, ref) <= 1e-10, allclose_report(diag, ref)


def test_fallbacks_are_reported():
    m, loss, batch = make_case("transformer_tied")
    info: dict = {}
    hessian_diagonal(m, loss, batch, info=info)
    assert "tok.weight" in info["fallback"] and info["paths"]["tok.weight"] == "brute"
    m, loss, batch = make_case("shared")
    info = {}
    hessian_diagonal(m, loss, batch, info=info)
    assert set(info["fallback"]) == {"shared.weight", "shared.bias"}


def test_subset_of_params_and_chunking():
    m, loss, batch = make_case("transformer")
    names = ["blocks.1.fc.weight", "ln_f.bias", "pos.weight"]
    ref = reference_diagonal(m, loss, batch, names)
    diag = hessian_diagonal(m, loss, batch, params=names, chunk=7)
    assert list(diag) == names
    assert max_rel_error(diag, ref) <= 1e-6, allclose_report(diag, ref)
