"""The public API: rmed_per_layer's table and the errors raised on bad input."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rmed_core.hessian.testing import make_case
from rmed_core.hessian import hessian_diagonal, rmed_per_layer
from rmed_core.stats import r_med

COLUMNS = ["layer", "numel", "r_med", "method", "lower", "upper", "confidence", "h_max", "h_median"]


def test_rmed_per_layer_exact_table():
    m, loss, batch = make_case("mlp_tanh")
    df = rmed_per_layer(m, loss, batch)
    assert list(df.columns) == COLUMNS
    assert list(df.layer) == [n for n, _ in m.named_parameters()]
    diag = hessian_diagonal(m, loss, batch)
    for _, row in df.iterrows():
        assert row.r_med == pytest.approx(r_med(diag[row.layer]))
        assert row.lower == row.upper == row.r_med and math.isnan(row.confidence)
        assert row.h_max / row.h_median == pytest.approx(row.r_med)


def test_bad_inputs_raise_clear_errors():
    m, loss, (x, y) = make_case("mlp_relu")
    with pytest.raises(ValueError, match="scalar"):
        hessian_diagonal(m, lambda o, t: F.cross_entropy(o, t, reduction="none"), (x, y))
    with pytest.raises(ValueError, match="batch size mismatch"):
        hessian_diagonal(m, loss, (x, y[:-1]))
    with pytest.raises(ValueError, match="valid names"):
        hessian_diagonal(m, loss, (x, y), params=["nope.weight"])
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        hessian_diagonal(frozen, F.mse_loss, (torch.randn(3, 2), torch.randn(3, 2)))
    with pytest.raises(ValueError, match="method"):
        hessian_diagonal(m, loss, (x, y), method="magic")
    with pytest.raises(ValueError, match="not finite"):
        hessian_diagonal(m, loss, (x * float("nan"), y))


def test_active_dropout_raises_naming_the_module():
    net = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 2)).train()
    with pytest.raises(ValueError, match="'1'.*Dropout"):
        hessian_diagonal(net, F.cross_entropy, (torch.randn(5, 3), torch.randint(0, 2, (5,))))


def test_non_finite_hessian_raises():
    class Sqrt(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor([0.0, 1.0]))

        def forward(self, x):
            return (x * self.w.abs().sqrt()).sum(1)

    with pytest.raises(ValueError, match="non-finite"):
        hessian_diagonal(Sqrt(), lambda o, t: (o - t).mean() ** 2 + o.mean(),
                         (torch.ones(2, 2), torch.zeros(2)), method="brute")
