"""The optimizer registry: every optimizer of the project is looked up by name here.

Equivalences worth knowing (Bernstein et al. 2018, *signSGD*; Kingma & Ba 2015, *Adam*):

* ``signgd`` is ``signum`` with ``momentum=0``; it is also the limit of Adam as
  :math:`\\beta_1, \\beta_2, \\epsilon \\to 0`, since then :math:`m_t/\\sqrt{v_t} = g_t/|g_t|`.
* ``gd`` is ``sgd`` applied to the full-batch (here: population) loss.
* ``sgdm`` stands for the paper's "SGD (with momentum)"; its settings (heavy-ball momentum 0.9, no
  Nesterov) are this project's choice, as the paper's momentum is not known.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Signum", "OPTIMIZERS", "make_optimizer", "optimizer_names"]


class Signum(torch.optim.Optimizer):
    """Sign descent with momentum (Bernstein et al. 2018):

    .. math::

        m_t = \\beta m_{t-1} + (1-\\beta) g_t, \\qquad w_{t+1} = w_t - \\eta\\,\\operatorname{sign}(m_t)

    ``momentum=0`` gives sign gradient descent.
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 0.0):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum={momentum!r}: expected 0 <= momentum < 1")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None):  # noqa: D102
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["weight_decay"]:
                    g = g.add(p, alpha=group["weight_decay"])
                if group["momentum"]:
                    buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                    buf.mul_(group["momentum"]).add_(g, alpha=1 - group["momentum"])
                    g = buf
                p.add_(torch.sign(g), alpha=-group["lr"])
        return loss


@dataclass(frozen=True)
class OptimizerSpec:
    """One registry entry: the torch class and the hyper-parameters fixed by the name."""

    cls: type
    fixed: dict[str, Any] = field(default_factory=dict)
    doc: str = ""


OPTIMIZERS: dict[str, OptimizerSpec] = {
    "gd": OptimizerSpec(torch.optim.SGD, {}, "gradient descent on the full-batch loss"),
    "sgd": OptimizerSpec(torch.optim.SGD, {}, "plain SGD, no momentum"),
    "sgdm": OptimizerSpec(torch.optim.SGD, {"momentum": 0.9}, "SGD with heavy-ball momentum 0.9 (this project's choice for the paper's SGD with momentum)"),
    "adam": OptimizerSpec(torch.optim.Adam, {}, "Adam, betas (0.9, 0.999), eps 1e-8"),
    "adamw": OptimizerSpec(torch.optim.AdamW, {"weight_decay": 0.01}, "AdamW, decoupled weight decay 0.01"),
    "adagrad": OptimizerSpec(torch.optim.Adagrad, {}, "AdaGrad"),
    "rmsprop": OptimizerSpec(torch.optim.RMSprop, {}, "RMSprop, alpha 0.99 (Adam without first moment, no bias correction)"),
    "signum": OptimizerSpec(Signum, {"momentum": 0.9}, "sign of the momentum, beta 0.9"),
    "signgd": OptimizerSpec(Signum, {"momentum": 0.0}, "sign gradient descent (Adam's beta -> 0 limit)"),
}


def optimizer_names() -> list[str]:
    """The names ``make_optimizer`` accepts, sorted."""
    return sorted(OPTIMIZERS)


def check_optimizer_name(name: str) -> str:
    """Return ``name`` if it is registered, else raise ``ValueError`` listing the valid names."""
    if name not in OPTIMIZERS:
        raise ValueError(f"opt={name!r} is not a known optimizer; valid names: {', '.join(optimizer_names())}")
    return name


def make_optimizer(name: str, params: Iterable, *, lr: float, **hyper: Any) -> torch.optim.Optimizer:
    """Build the optimizer registered as ``name`` over ``params``.

    Args:
        name: one of :func:`optimizer_names` (``gd, sgd, sgdm, adam, adamw, adagrad, rmsprop,
            signum, signgd``).
        params: parameters or parameter groups, as for any ``torch.optim.Optimizer``.
        lr: the learning rate, > 0.
        **hyper: overrides of the entry's other hyper-parameters (e.g. ``betas=(0.9, 0.99)``).

    Raises:
        ValueError: for an unknown name (the message lists the valid ones) or ``lr <= 0``.
    """
    spec = OPTIMIZERS[check_optimizer_name(name)]
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr={lr!r}: the learning rate must be a positive number")
    return spec.cls(params, lr=lr, **{**spec.fixed, **hyper})
