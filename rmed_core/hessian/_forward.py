"""The engine's forward pass: how a batch is given to the model, how the loss is read off its
output, and the attention kernel every forward pass of the engine runs with.

A batch is one of

* ``(inputs, targets)``: the loss is ``loss_fn(model(inputs), targets)``; ``inputs`` may be a dict
  of keyword inputs (``model(**inputs)``);
* a dict of keyword inputs, the Hugging Face convention: with ``loss_fn=None`` the loss is the
  model's own, ``model(**batch).loss`` (the dict must hold ``labels``); with a ``loss_fn`` it is
  ``loss_fn(model(**rest), batch["labels"])``, ``rest`` being the dict without ``labels``.

The loss function receives the model's output; an output object carrying a ``logits`` tensor
(Hugging Face's ``ModelOutput``) is given as its ``logits``, so that a loss on logits serves a
model that returns a tensor and one that returns an output object alike.

Attention: every forward pass of the engine runs inside
``torch.nn.attention.sdpa_kernel([SDPBackend.MATH])`` (:func:`math_attention`). The fused kernels
of ``F.scaled_dot_product_attention`` (flash, memory-efficient, cuDNN) have no second derivative,
its math backend is made of differentiable operations (double backward and forward-over-reverse
both work), and the graph recorded in the forward pass is what every later Hessian-vector product
differentiates. So a model whose attention goes through ``F.scaled_dot_product_attention`` --
called directly (nanoGPT), by ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` (whose
fused fast path is not taken while gradients are recorded), or by Hugging Face's default
``attn_implementation="sdpa"`` -- is differentiated twice as written. The selection is undone on
leaving (the backends the caller had enabled are enabled again); nothing on the model is changed.
A forward pass that forces a fused backend itself is caught by :func:`._guards.check_twice_differentiable`.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

__all__ = ["Forward", "math_attention", "split", "run_model", "forward", "loss_input", "LABELS"]

#: the key of a dict batch that holds the targets
LABELS = "labels"


@contextmanager
def math_attention() -> Iterator[None]:
    """``F.scaled_dot_product_attention`` on its math backend (twice differentiable) inside, the
    caller's backend selection restored on leaving."""
    with sdpa_kernel([SDPBackend.MATH]):
        yield


def split(batch: Any, loss_fn: Callable | None) -> tuple[tuple, dict, Any]:
    """``(args, kwargs, targets)`` of the model call and the loss (module docstring); ``batch`` is
    taken to have passed :func:`._validate.check_batch`."""
    if isinstance(batch, dict):
        if loss_fn is None:
            return (), dict(batch), None
        rest = {k: v for k, v in batch.items() if k != LABELS}
        return (), rest, batch[LABELS]
    inputs, targets = batch
    if isinstance(inputs, dict):
        return (), dict(inputs), targets
    return (inputs,), {}, targets


def _call(model: Callable, args: tuple, kwargs: dict, name: str) -> Any:
    """``model(*args, **kwargs)``; keyword inputs the model does not take are refused by name."""
    if kwargs:
        try:
            sig = inspect.signature(model.forward if isinstance(model, torch.nn.Module) else model)
        except (TypeError, ValueError):  # a builtin without a signature: let the call speak
            sig = None
        if sig is not None:
            try:
                sig.bind(*args, **kwargs)
            except TypeError as err:
                raise ValueError(f"{name} cannot be called with the batch's keyword inputs {list(kwargs)} ({err}): "
                                 "a dict batch holds the model's keyword inputs (and labels)") from err
    with math_attention():
        return model(*args, **kwargs)


def run_model(model: Callable, batch: Any, loss_fn: Callable | None) -> Any:
    """The model's output on ``batch`` (attention on the math backend)."""
    args, kwargs, _ = split(batch, loss_fn)
    return _call(model, args, kwargs, type(model).__name__)


def _describe(output: Any) -> str:
    fields = list(output.keys()) if hasattr(output, "keys") else [k for k in vars(output)] \
        if hasattr(output, "__dict__") else []
    return type(output).__name__ + (f" with fields {fields}" if fields else "")


def loss_input(output: Any) -> Any:
    """What the loss function receives: the output, or the ``logits`` of an output object."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    return logits if isinstance(logits, torch.Tensor) else output


@dataclass
class Forward:
    """One forward pass: the ``loss`` (with its graph) and ``output``, the tensor the loss function
    read (None when the loss is the model's own, or the loss function read an object)."""

    loss: torch.Tensor
    output: torch.Tensor | None

    @property
    def activations(self) -> list[torch.Tensor]:
        """The output tensor, which every product's backward pass carries a copy of (a large
        vocabulary's logits dominate a chunk's memory)."""
        return [self.output] if isinstance(self.output, torch.Tensor) else []


def forward(model: Callable, loss_fn: Callable | None, batch: Any, name: str | None = None) -> Forward:
    """The loss of ``model`` on ``batch`` (module docstring), checked to be a finite scalar with a
    graph. ``name`` names the model in errors (default: its class)."""
    from ._validate import check_loss

    name = name or type(model).__name__
    args, kwargs, targets = split(batch, loss_fn)
    out = _call(model, args, kwargs, name)
    with math_attention():
        if loss_fn is None:
            return Forward(check_loss(_own_loss(out, name)), None)
        x = loss_input(out)
        if isinstance(x, torch.Tensor):
            return Forward(check_loss(loss_fn(x, targets)), x)
        try:
            loss = loss_fn(x, targets)
        except (TypeError, AttributeError, IndexError, KeyError) as err:
            raise ValueError(f"loss_fn could not read the output of {name}: a {_describe(out)}, with no logits "
                             f"tensor ({type(err).__name__}: {err}). The loss function receives the model's "
                             "output tensor, or the logits of an output object; for another output, give a "
                             "loss_fn that reads it, or pass loss_fn=None to use the output's own .loss") from err
    return Forward(check_loss(loss), None)


def _own_loss(out: Any, name: str) -> torch.Tensor:
    """``out.loss`` (attribute or key), or a ``ValueError`` saying what to pass instead."""
    loss = getattr(out, "loss", None)
    if loss is None and isinstance(out, dict):
        loss = out.get("loss")
    if isinstance(loss, torch.Tensor):
        return loss
    if isinstance(out, torch.Tensor):
        raise ValueError(f"loss_fn=None reads the model's own .loss, but {name} returned a tensor of shape "
                         f"{tuple(out.shape)}: give a loss_fn (called as loss_fn(output, batch['labels']))")
    has = "its .loss is None" if hasattr(out, "loss") else "it has no .loss"
    raise ValueError(f"loss_fn=None reads the model's own .loss, but {name} returned a {_describe(out)}, and "
                     f"{has}: give a loss_fn that reads the output (called as loss_fn(output, batch['labels'])), "
                     "or make the model compute its loss (a Hugging Face model does when the batch holds labels)")
