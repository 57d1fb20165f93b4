"""The one taxonomy of parameter tensors: what kind of tensor a parameter is (embedding,
attention, MLP, LayerNorm, output, conv, other) and its role (weight or bias). The study's rows by
kind, the figures' colours and the verdicts' groupings all read it from here.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

__all__ = ["KINDS", "tensor_kind", "tensor_role"]

#: The kinds of parameter tensor, as :func:`tensor_kind` names them.
KINDS = ("embedding", "attention", "MLP", "LayerNorm", "output", "conv", "other")

_BLOCK_PARTS = {"attn": "attention", "fc": "MLP", "out": "MLP", "ln1": "LayerNorm", "ln2": "LayerNorm"}


def _module_kind(module: Any, *, output: bool, in_attention: bool) -> str:
    from torch import nn

    if isinstance(module, nn.Embedding):
        return "embedding"
    if isinstance(module, nn.LayerNorm):
        return "LayerNorm"
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return "conv"
    if isinstance(module, nn.Linear):
        return "output" if output else "attention" if in_attention else "MLP"
    return "other"


def _kind_in_model(model: Any, name: str) -> str:
    from torch import nn

    from .models import SelfAttention

    path = name.rsplit(".", 1)[0] if "." in name else ""
    try:
        module = model.get_submodule(path)
    except AttributeError as e:
        raise ValueError(f"name={name!r}: the model has no module {path!r}") from e
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    parts = path.split(".") if path else []
    in_attention = any(isinstance(model.get_submodule(".".join(parts[:i])), SelfAttention)
                       for i in range(1, len(parts)))
    return _module_kind(module, output=bool(linears) and module is linears[-1], in_attention=in_attention)


@lru_cache(maxsize=1)
def _cnn_layout() -> dict[int, str]:
    """The kind of each numbered layer of the project's CNN (an ``nn.Sequential``, whose parameter
    names are ``<position>.weight``), read from a tiny instance of :class:`~rmed_core.models.CNN`."""
    from .models import CNN

    net = CNN(1, 2, width=1, size=4)
    return {int(i): tensor_kind(f"{i}.weight", net) for i, m in net.named_children()
            if any(True for _ in m.parameters(recurse=False))}


def tensor_kind(name: str, model: Any = None) -> str:
    """The kind of parameter tensor ``name``: one of :data:`KINDS`.

    Without ``model``, from the names of the project's models (:mod:`rmed_core.models`):
    ``tok.*``, ``pos.*`` embedding; ``blocks.<i>.attn.{q,k,v,proj}.*`` attention;
    ``blocks.<i>.{fc,out}.*`` MLP; ``blocks.<i>.{ln1,ln2}.*``, ``ln_f.*`` LayerNorm; ``head.*``
    output; ``<i>.*`` the layers of :class:`~rmed_core.models.CNN` (convolutions, then the
    classifier as output); anything else ``other``. With ``model`` (an ``nn.Module``), from the
    type of the module that holds the tensor: the last ``nn.Linear`` of the model is the output.

    >>> [tensor_kind(n) for n in ("tok.weight", "blocks.0.attn.k.bias", "blocks.1.out.weight", "ln_f.bias")]
    ['embedding', 'attention', 'MLP', 'LayerNorm']
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name={name!r}: expected a parameter name such as 'blocks.0.attn.q.weight'")
    if model is not None:
        return _kind_in_model(model, name)
    parts = name.split(".")
    if len(parts) < 2:
        return "other"
    if parts[0] in ("tok", "pos"):
        return "embedding"
    if parts[0] == "head":
        return "output"
    if parts[0] == "ln_f":
        return "LayerNorm"
    if parts[0] == "blocks" and len(parts) >= 4:
        return _BLOCK_PARTS.get(parts[2], "other")
    if parts[0].isdigit() and len(parts) == 2:
        return _cnn_layout().get(int(parts[0]), "other")
    return "other"


def tensor_role(name: str) -> str:
    """``"bias"`` when the last part of the parameter name is ``bias``, ``"weight"`` otherwise
    (LayerNorm scales and embedding tables included)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name={name!r}: expected a parameter name such as 'blocks.0.attn.q.weight'")
    return "bias" if name.rsplit(".", 1)[-1] == "bias" else "weight"
