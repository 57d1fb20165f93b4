import math

import numpy as np
import pytest
import torch

from rmed_core import median, r_med


@pytest.mark.parametrize("n", [1, 2, 5, 6, 101])
def test_median_matches_numpy(n):
    x = torch.randn(n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    assert float(median(x)) == pytest.approx(float(np.median(x.numpy())))


def test_r_med_is_max_over_median_of_absolute_values():
    h = torch.tensor([[1.0, -2.0], [4.0, 3.0]])
    assert r_med(h) == pytest.approx(4.0 / 2.5)


def test_r_med_edge_cases():
    assert r_med(torch.tensor([0.0, 0.0, 1.0])) == math.inf
    assert math.isnan(r_med(torch.zeros(3)))
    with pytest.raises(ValueError, match="empty"):
        r_med(torch.tensor([]))
    with pytest.raises(ValueError, match="non-finite"):
        r_med(torch.tensor([1.0, float("nan")]))
