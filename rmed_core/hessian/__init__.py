"""Hessian diagonals, R_med per layer, and spectra of the loss Hessian.

Public API (a contract other modules code against):

* :func:`hessian_diagonal` -- exact diagonal per parameter tensor (``"exact"`` structured, or
  ``"brute"`` one HVP per entry).
* :func:`rmed_per_layer` -- R_med per tensor as a DataFrame (exact, or a certified interval with
  ``method="sampled"``).
* :func:`top_eigenvalues`, :func:`hessian_trace`, :func:`spectral_density`,
  :func:`blockwise_spectra` -- spectral summaries from Hessian-vector products.
* :func:`check_memory` -- refuses, before any work, a batch whose Hessian cannot fit in memory.
"""
from __future__ import annotations

from ._guards import check_memory
from ._hvp import HessianOperator
from .diagonal import hessian_diagonal
from .rmed import rmed_per_layer
from .spectrum import (EigenResult, SpectralDensity, TraceEstimate, blockwise_spectra, hessian_trace,
                       spectral_density, top_eigenvalues)

__all__ = ["hessian_diagonal", "rmed_per_layer", "top_eigenvalues", "hessian_trace", "spectral_density",
           "blockwise_spectra", "EigenResult", "TraceEstimate", "SpectralDensity", "HessianOperator",
           "check_memory"]
