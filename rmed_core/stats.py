"""The statistic R_med and the order statistics it rests on.

R_med of one parameter tensor with Hessian diagonal ``h`` is (Jiang, Malik, Li, NeurIPS 2023, as
quoted by Ahn et al. 2023, footnote):

.. math::

    R_\\mathrm{med}(h) = \\frac{\\max_i |h_i|}{\\operatorname{median}_i |h_i|}

a robust stand-in for the condition number :math:`\\lambda_{\\max}/\\lambda_{\\min}` of the block
(the median replaces the minimum because the Hessian of a network is degenerate). Absolute values
are taken because diagonal entries of a non-convex loss can be negative.
"""
from __future__ import annotations

import math

import torch

__all__ = ["median", "r_med"]


def median(x: torch.Tensor) -> torch.Tensor:
    """The median of all entries of ``x``: the middle value, or the mean of the two middle values
    when the number of entries is even (as ``numpy.median``; ``torch.median`` returns the lower
    one). Works for tensors of any size (``torch.quantile`` is limited to 16M entries).
    """
    flat = x.detach().flatten()
    n = flat.numel()
    if n == 0:
        raise ValueError("median: the tensor is empty")
    lo = torch.kthvalue(flat, (n + 1) // 2).values
    if n % 2:
        return lo
    hi = torch.kthvalue(flat, n // 2 + 1).values
    return (lo + hi) / 2


def r_med(diagonal: torch.Tensor) -> float:
    """R_med = max |h| / median |h| over all entries of one Hessian diagonal ``h``.

    Args:
        diagonal: the Hessian diagonal of one parameter tensor, any shape.

    Returns:
        The ratio as a Python float; ``inf`` when the median of ``|h|`` is 0 and the maximum is
        not (more than half the entries have zero curvature), ``nan`` when all entries are 0.

    Raises:
        ValueError: if ``diagonal`` is empty or holds non-finite values.

    >>> r_med(torch.tensor([1.0, -2.0, 4.0, 3.0]))
    1.6
    """
    h = torch.as_tensor(diagonal).detach().abs()
    if h.numel() == 0:
        raise ValueError("r_med: the diagonal is empty")
    if not bool(torch.isfinite(h).all()):
        raise ValueError("r_med: the diagonal holds non-finite values (inf or nan)")
    top = float(h.max())
    mid = float(median(h))
    if mid == 0.0:
        return math.nan if top == 0.0 else math.inf
    return top / mid
