"""The public API: rmed_per_layer's table and the errors raised on bad input."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rmed_core.hessian.testing import make_case
from rmed_core.hessian import hessian_diagonal, rmed_per_layer
from rmed_core.stats import r_med, zero_tolerance

COLUMNS = ["layer", "numel", "n_used", "r_med", "undefined", "method", "lower", "upper", "confidence", "h_max",
           "h_median", "n_zero", "h_median_active"]


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
        assert row.undefined == "" and row.n_used == row.numel
    assert df.attrs["products"] > 0 and df.attrs["seconds"] > 0


def test_zero_in_theory_is_undefined_in_any_precision():
    """The attention key bias: softmax ignores a shift shared by a row of scores, so its diagonal
    is zero in theory; what autograd returns is rounding noise, reported as undefined."""
    for dtype in (torch.float32, torch.float64):
        m, loss, batch = make_case("transformer", dtype=dtype)
        df = rmed_per_layer(m, loss, batch).set_index("layer")
        for name in ("blocks.0.attn.k.bias", "blocks.1.attn.k.bias"):
            assert math.isnan(df.r_med[name]) and df.undefined[name].startswith("zero in theory"), df.loc[name]
            assert df.h_max[name] <= zero_tolerance(dtype) * df.h_max.max()
        defined = df[df.undefined == ""]
        assert len(defined) == len(df) - 2 and (defined.r_med >= 1).all()
        # the gap the rule relies on: every defined tensor is far above the line
        assert (defined.h_max > 30 * zero_tolerance(dtype) * df.h_max.max()).all()


def test_embedding_rows_absent_from_the_batch_are_not_entries():
    m, loss, (x, y) = make_case("transformer")
    x = x % 3  # tokens 0..2 only: rows 3..6 of the embedding get no gradient
    df = rmed_per_layer(m, loss, (x, y)).set_index("layer")
    ids = torch.unique(x)
    assert df.n_used["tok.weight"] == len(ids) * m.tok.weight.shape[1] < df.numel["tok.weight"]
    h = hessian_diagonal(m, loss, (x, y), params=["tok.weight"])["tok.weight"]
    assert float(h[3:].abs().max()) == 0.0
    assert df.r_med["tok.weight"] == pytest.approx(r_med(h[ids]))
    assert df.n_used["pos.weight"] == df.numel["pos.weight"]  # every position is in the batch


def test_median_zero_is_undefined():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    with torch.no_grad():
        net[0].bias.copy_(torch.tensor([1.0, -50.0, -50.0, -50.0]))  # three dead units
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.randint(0, 2, (6,))
    df = rmed_per_layer(net, F.cross_entropy, (x, y)).set_index("layer")
    assert df.undefined["0.weight"].startswith("median is zero") and math.isnan(df.r_med["0.weight"])


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


def test_dead_units_are_counted_and_r_med_over_the_active_entries_is_kept():
    """Three of four ReLU units dead on every input: their weights' diagonal is exactly zero. The
    table counts them (``n_zero``) and gives the median over the live entries, so that R_med over the
    active entries is defined where R_med itself is not."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    with torch.no_grad():
        net[0].bias.copy_(torch.tensor([1.0, -50.0, -50.0, -50.0]))
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.randint(0, 2, (6,))
    df = rmed_per_layer(net, F.cross_entropy, (x, y)).set_index("layer")
    h = torch.autograd.functional.hessian(
        lambda w: F.cross_entropy(torch.func.functional_call(net, {**dict(net.named_parameters()), "0.weight": w},
                                                             (x,)), y), net[0].weight.detach().clone())
    diag = h.reshape(12, 12).diagonal().abs()
    assert df.n_zero["0.weight"] == int((diag == 0).sum()) == 9
    live = diag[diag != 0]
    assert df.h_median_active["0.weight"] == pytest.approx(float(live.median() if live.numel() % 2
                                                                  else live.sort().values[1:3].mean()))
    assert df.h_max["0.weight"] == pytest.approx(float(diag.max()))
    assert df.n_zero["2.weight"] == 6 and df.n_zero["2.bias"] == 0  # the output layer sees three zero features
