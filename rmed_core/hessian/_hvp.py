"""The Hessian of the loss restricted to some parameter tensors, as a matrix-free operator."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ._batched import BatchedGrad
from ._forward import forward
from ._guards import ForwardReference, check_custom_functions, check_twice_differentiable, preserved_buffers
from ._validate import Batch, LossFn, check_batch, check_dropout, select_params


class HessianOperator:
    """``v -> H v`` for ``H`` the Hessian of the loss (:mod:`._forward`: ``loss_fn(model(inputs),
    targets)``, or a dict batch's own loss) with respect to the concatenation (in ``model.named_parameters()`` order) of the selected tensors.

    One forward/backward with ``create_graph=True`` is done at construction (after one more forward
    pass that refuses a random loss, :class:`._guards.ForwardReference`; the model's buffers are
    left as they were); each product is then a second backward pass (reverse-over-reverse).
    ``n_hvp`` counts the products.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, batch: Batch, params=None, chunk: int | None = None):
        check_batch(batch, loss_fn)
        check_dropout(model)
        self.params = select_params(model, params)
        tensors = list(self.params.values())
        where = (model, loss_fn, batch)
        ref = ForwardReference(*where)
        with preserved_buffers(model):
            fw = forward(*where)
        loss = fw.loss
        ref.check(loss)
        check_custom_functions(loss, self.params, where)
        grads = torch.autograd.grad(loss, tensors, create_graph=True, allow_unused=True)
        check_twice_differentiable(dict(zip(self.params, grads)), where)
        self.grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, tensors)]
        self.tensors = tensors
        self.sizes = [p.numel() for p in tensors]
        self.dim = sum(self.sizes)
        self.dtype, self.device = tensors[0].dtype, tensors[0].device
        live = [i for i, g in enumerate(self.grads) if g.requires_grad]
        self._live = live
        self._bg = BatchedGrad([self.grads[i] for i in live], [tensors[i] for i in live], chunk,
                               activations=fw.activations) if live else None
        self.n_hvp = 0

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """``H @ V`` for ``V`` of shape ``(dim, P)`` (any float dtype; computed in the model's)."""
        V = torch.as_tensor(V).to(self.device, self.dtype)
        P = V.shape[1]
        out = torch.zeros(self.dim, P, dtype=self.dtype, device=self.device)
        if self._bg is None or P == 0:
            return out
        pieces = list(torch.split(V.T, self.sizes, dim=1))
        offs = np.cumsum([0] + self.sizes)

        def make(s: int, e: int) -> list[torch.Tensor]:
            return [pieces[i][s:e].reshape(e - s, *self.tensors[i].shape) for i in self._live]

        def post(s: int, e: int, res: list[torch.Tensor]) -> None:
            for j, r in enumerate(res):
                i = self._live[j]
                out[offs[i]:offs[i + 1], s:e] = r.reshape(e - s, -1).T.detach()

        self._bg.map(P, make, post)
        self.n_hvp += P
        return out

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.matmat(torch.as_tensor(v).reshape(-1, 1))[:, 0]

    def scipy(self):
        """A ``scipy.sparse.linalg.LinearOperator`` in float64 (products in the model's dtype)."""
        from scipy.sparse.linalg import LinearOperator

        def mv(x: np.ndarray) -> np.ndarray:
            x = np.asarray(x, dtype=np.float64)
            y = self.matmat(torch.from_numpy(x.reshape(self.dim, -1).copy()))
            return y.detach().cpu().double().numpy().reshape(x.shape)

        return LinearOperator((self.dim, self.dim), matvec=mv, matmat=mv, dtype=np.float64)
