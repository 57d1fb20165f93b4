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

__all__ = ["median", "r_med", "ratio", "ZERO_TOL_ULPS", "zero_tolerance", "undefined_reason"]


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


def ratio(h_max: float, h_median: float) -> float:
    """R_med from its two parts, ``h_max / h_median``: the one place the ratio is taken (exact
    tables, the sampled estimate and :func:`r_med` all call it). ``inf`` when the median is 0 and the
    maximum is not, ``nan`` when both are 0.

    >>> ratio(4.0, 2.5), ratio(1.0, 0.0)
    (1.6, inf)
    """
    if h_median == 0.0:
        return math.nan if h_max == 0.0 else math.inf
    return h_max / h_median


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
    return ratio(float(h.max()), float(median(h)))


#: A tensor's diagonal is *zero in theory* (e.g. an attention key bias: softmax ignores a shift
#: shared by a row of scores) when its largest ``|h|`` is at most ``ZERO_TOL_ULPS`` units of
#: rounding (``torch.finfo(dtype).eps``) of the largest ``|h|`` among the tensors measured together.
#: Measured on the test transformer: the key biases' noise sits at 0.001-0.1 ulps of the model's
#: largest entry (float32 and float64 alike), the smallest real tensor at about 1,500 ulps; the
#: line is drawn between them, two orders of magnitude from each (the statistic chapter shows the
#: gap on the study model).
ZERO_TOL_ULPS = 16


def zero_tolerance(dtype: torch.dtype) -> float:
    """The relative threshold below which a tensor's diagonal is rounding noise:
    ``ZERO_TOL_ULPS * eps(dtype)`` (float32: 1.9e-6, float64: 3.6e-15).

    >>> f"{zero_tolerance(torch.float64):.1e}"
    '3.6e-15'
    """
    return ZERO_TOL_ULPS * torch.finfo(dtype).eps


def undefined_reason(h_max: float, h_median: float, scale: float, dtype: torch.dtype) -> str:
    """Why R_med of one tensor is undefined, or ``""`` when it is defined (the statistic chapter).

    Args:
        h_max, h_median: ``max |h|`` and ``median |h|`` of the tensor (over the entries used).
        scale: the largest ``|h|`` of any tensor measured with it (the model's scale).
        dtype: the precision the diagonal was computed in.

    The rule, in order:

    1. ``h_max <= zero_tolerance(dtype) * scale``: the diagonal is zero in theory and what was
       computed is rounding noise (``"zero in theory"``); no ratio of noise is reported;
    2. ``h_median == 0``: more than half of the entries have no curvature (e.g. dead ReLU units),
       so the ratio is not finite (``"median is zero"``).

    Zero entries that are fewer than half (dead units, say) are kept: they are the loss's curvature
    at this point, and the median counts them. Embedding rows of tokens absent from the batch are
    not entries of the statistic at all (:func:`rmed_core.hessian.rmed_per_layer`).

    >>> undefined_reason(1e-20, 1e-21, 1.0, torch.float32)
    'zero in theory: max |h| = 1e-20 <= 1.9e-06 x the largest entry 1'
    >>> undefined_reason(3.0, 1.0, 3.0, torch.float32)
    ''
    """
    tol = zero_tolerance(dtype)
    if not h_max > tol * scale:
        return f"zero in theory: max |h| = {h_max:.3g} <= {tol:.1e} x the largest entry {scale:.3g}"
    if h_median == 0:
        return "median is zero: more than half of the entries have no curvature"
    return ""
