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

import math

import torch

__all__ = ["Signum", "OPTIMIZERS", "SCHEDULES", "make_optimizer", "optimizer_names", "schedule_factor"]

#: Learning-rate schedules (:func:`schedule_factor`). ``"constant"``: the rate throughout.
#: ``"warmup-cosine"``: the common transformer recipe, a linear warmup over the first
#: :data:`WARMUP_FRACTION` of the iterations (Goyal et al. 2017) and then a cosine decay
#: (Loshchilov & Hutter 2017, *SGDR*) to :data:`FINAL_FRACTION` of the rate at the last iteration
#: (the floor of Hoffmann et al. 2022). The fractions are this project's choice.
SCHEDULES = ("constant", "warmup-cosine")
WARMUP_FRACTION = 0.1
FINAL_FRACTION = 0.1


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


def schedule_factor(schedule: str, step: int, steps: int) -> float:
    r"""The factor on the learning rate of update ``step`` (0-based) of ``steps``.

    With :math:`w = \max(1, \lfloor 0.1\,\text{steps} \rceil)` warmup updates and
    :math:`f` = :data:`FINAL_FRACTION`, ``"warmup-cosine"`` is :math:`(t + 1)/w` for :math:`t < w`,
    then :math:`f + (1 - f)\,\tfrac12\bigl(1 + \cos(\pi (t - w)/(\text{steps} - 1 - w))\bigr)`,
    which is 1 at :math:`t = w` and :math:`f` at the last update.

    >>> [round(schedule_factor("warmup-cosine", t, 20), 3) for t in (0, 1, 2, 11, 19)]
    [0.5, 1.0, 1.0, 0.508, 0.1]
    >>> schedule_factor("constant", 5, 20)
    1.0
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r}: expected one of {', '.join(SCHEDULES)}")
    if not (isinstance(steps, int) and steps > 0 and isinstance(step, int) and 0 <= step < steps):
        raise ValueError(f"step={step!r}, steps={steps!r}: expected 0 <= step < steps")
    if schedule == "constant":
        return 1.0
    warm = max(1, round(WARMUP_FRACTION * steps))
    if step < warm:
        return (step + 1) / warm
    span = steps - 1 - warm
    if span <= 0:
        return 1.0
    return FINAL_FRACTION + (1 - FINAL_FRACTION) * 0.5 * (1 + math.cos(math.pi * (step - warm) / span))
