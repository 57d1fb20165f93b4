"""Tied weights: one weight used by two dense sites, as a token embedding tied to the output layer
(nanoGPT, GPT-2), computed exactly from the products of the two uses.

Untie the two uses, ``L(W) = l(W_1, W_2)`` at ``W_1 = W_2 = W``; then for every entry ``e``

.. math::

    \\frac{\\partial^2 L}{\\partial W_e^2} = \\frac{\\partial^2 l}{\\partial W_{1e}^2}
      + \\frac{\\partial^2 l}{\\partial W_{2e}^2} + 2\\,\\frac{\\partial^2 l}{\\partial W_{1e}\\,\\partial W_{2e}} .

The first two terms are each use's own structured diagonal (:mod:`.exact`), the features of that
use held fixed. For the cross term, with ``s1`` the earlier use (features ``A1``, output ``z1``;
entry ``e`` at ``(i1, j1)`` of its ``(K, J)`` matrix) and ``s2`` the later (features ``A2``, which
may depend on ``z1``: the output layer reads the network's last features; ``e`` at ``(i2, j2)``),

.. math::

    \\frac{\\partial^2 l}{\\partial W_{1e}\\,\\partial W_{2e}}
      = \\sum_{n,t} A1_{n t j_1}\\, \\frac{\\partial^2 l}{\\partial z1_{n t i_1}\\, \\partial W2^{(n)}_{i_2 j_2}},

``W2^{(n)}`` the weight sample ``n``'s later use sees. The mixed derivative has two parts: the
``z1``-``z2`` block of the Hessian contracted with ``A2``, and
``sum_t dl/dz2[n,t,i2] dA2[n,t,j2]/dz1`` -- first order in the loss, through the change of the
later use's features. Both are the response to ``dW`` -- a zero per-sample offset of the later
use's weight added to its output, ``z2 += A2 dW[n]^T`` (:mod:`._capture`) -- of the very products
the earlier use's own diagonal is made of: ``grad(g1 . u, [delta1, dW])`` gives ``B11 u`` and the
mixed derivative along ``u`` at once. With probe set (b) of :mod:`.exact` (``u = e_t (x) e_i``,
all samples at once, the samples verified independent for both responses) the cross term of row
``i1`` is ``sum_n sum_t A1[n,t,:] M_n[i1, :]`` over the probes of that row, ``M_n`` sample ``n``'s
response mapped to ``s1``'s layout; with (c) (``u = A1[:,:,j] (x) e_i``) it is the response's
entry summed over samples. Probe set (a) does not apply to the earlier use: the mixed derivative
is not block-diagonal over positions.

**Cost.** The cross term takes no product beyond the earlier use's own; each of those products'
backward passes also forms the per-sample weight gradient of the later use (``N K2 J2``
numbers). A token embedding (``V x d``) tied to the output layer of a language model at ``T``
positions costs the embedding's ``min(T d, V d + ...)`` products plus the output layer's ``V``
(probe set (a)) plus the structure checks, where brute force costs ``V d``.
"""
from __future__ import annotations

import torch

from ._sites import Site

__all__ = ["as_first", "cross_rows", "cross_entries"]


def as_first(first: Site, rw: torch.Tensor) -> torch.Tensor:
    """Responses to the later use's ``dW``, ``(P, N, K2, J2)``, in the earlier use's ``(K1, J1)``
    layout; summed over samples (``(P, 1, K1, J1)``) when the earlier use's samples were merged."""
    later = first.tie
    m = first.param_to_matrix(later.matrix_to_param(rw))
    return m.sum(1, keepdim=True) if first.N != m.shape[1] else m


def cross_rows(first: Site, rw: torch.Tensor, tp: torch.Tensor, ip: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """Probe set (b): the cross-term contributions ``(P, J1)`` to rows ``ip`` of probes
    ``e_{tp} (x) e_{ip}``: ``sum_n A1[n, tp, :] M_n[ip, :]``."""
    m = as_first(first, rw)                                      # (P, N, K1, J1)
    rows = m[torch.arange(len(ip), device=m.device), :, ip, :]  # (P, N, J1)
    return (rows * A[:, tp, :].transpose(0, 1)).sum(1)


def cross_entries(first: Site, rw: torch.Tensor, ip: torch.Tensor, jp: torch.Tensor) -> torch.Tensor:
    """Probe set (c): the cross term ``(P,)`` of entries ``(ip, jp)`` from probes
    ``A1[:, :, jp] (x) e_{ip}``: the response's entry, summed over samples."""
    m = as_first(first, rw)
    return m[torch.arange(len(ip), device=m.device), :, ip, jp].sum(1)
