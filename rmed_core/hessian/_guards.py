"""Guards on the forward pass and its graph, run by every Hessian routine before it trusts them.

* :func:`preserved_buffers` -- the model's buffers (BatchNorm statistics) are restored after each
  of the engine's forward passes: the model is left as it was given.
* :class:`ForwardReference` -- one extra forward pass refuses a random loss (draws from torch's
  generators, or a loss that is not bitwise reproducible), naming the module.
* :func:`check_memory` -- a batch whose Hessian cannot fit in memory is refused before any work.
* :func:`check_custom_functions` -- a custom ``autograd.Function`` is warned about (nothing is
  certified through it); a ``@once_differentiable`` one raises, naming the parameter.
* :func:`check_twice_differentiable` -- a gradient whose graph cannot be differentiated again
  (a fused kernel without a second derivative) raises, naming the parameter and -- given the
  model -- the module whose forward ran the kernel, instead of reading as zero curvature.

Every forward pass here is the engine's own (:func:`._forward.forward`: the batch convention and
the math attention backend).
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ._forward import forward
from ._graph import children, leaf, topological
from ._memory import free_bytes
from ._validate import Batch, LossFn, check_materialised, leading, tensors


# ---- buffers ---------------------------------------------------------------------------------
@contextmanager
def preserved_buffers(model: nn.Module) -> Iterator[None]:
    """Restore every buffer of ``model`` (BatchNorm's running statistics and ``num_batches_tracked``,
    anything a forward pass updates) to its value on entry: the engine's forward passes must leave
    the model it was given as it found it. Buffers replaced by new tensors are put back too."""
    saved = [(m, k, b, b.detach().clone()) for m in model.modules() for k, b in m._buffers.items()
             if b is not None and not b.is_meta]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, k, b, value in saved:
                if not torch.equal(b, value):
                    # through .data: no version bump, so a graph that saved the buffer stays usable
                    b.data.copy_(value)
                if m._buffers.get(k) is not b:
                    m._buffers[k] = b


def hooked_forward(model: nn.Module, loss_fn: LossFn, batch: Batch, handles: list) -> Any:
    """The engine's forward pass (:func:`._forward.forward`) with the hooks whose ``handles`` are
    given, removed afterwards whatever happens, and the model's buffers as they were
    (:func:`preserved_buffers`)."""
    try:
        with preserved_buffers(model):
            return forward(model, loss_fn, batch)
    finally:
        for h in handles:
            h.remove()


# ---- stochastic forward passes ---------------------------------------------------------------
def _rng_states() -> list[torch.Tensor]:
    states = [torch.get_rng_state()]
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states += torch.cuda.get_rng_state_all()
    return states


def _rng_changed(before: list[torch.Tensor], after: list[torch.Tensor]) -> bool:
    return len(before) != len(after) or any(not torch.equal(a, b) for a, b in zip(before, after))


def _innermost(names: list[str]) -> list[str]:
    """The names that have no descendant in ``names`` (module names are dotted paths)."""
    return [n for n in names if not any(o != n and (n == "" or o.startswith(n + ".")) for o in names)]


def _diagnose(model: nn.Module, loss_fn: LossFn, batch: Batch) -> tuple[list[str], list[str]]:
    """Two hooked forward passes: ``(modules that draw random numbers, modules whose output
    differs between the passes although their input does not)``, innermost first."""
    records: list[dict[tuple[str, int], Any]] = [{}, {}]
    drew: set[str] = set()

    def flat(x: Any) -> list[torch.Tensor]:
        return [t.detach().clone() for t in tensors(x)]

    for rec in records:
        calls: dict[str, int] = {}
        handles = []
        for name, m in model.named_modules():
            def pre(mod, args, name=name):
                i = calls[name] = calls.get(name, -1) + 1
                rec[(name, i)] = {"in": flat(args), "rng": _rng_states()}

            def post(mod, args, out, name=name):
                r = rec[(name, calls[name])]
                r["out"] = flat(out)
                if _rng_changed(r.pop("rng"), _rng_states()):
                    drew.add(name)

            handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
        try:
            forward(model, loss_fn, batch)
        finally:
            for h in handles:
                h.remove()

    def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
        return len(a) == len(b) and all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b))

    differs = sorted({k[0] for k, r in records[0].items() if k in records[1] and "out" in r
                      and same(r["in"], records[1][k]["in"]) and not same(r["out"], records[1][k].get("out", []))})
    return _innermost(sorted(drew)), _innermost(differs)


def _describe(model: nn.Module, names: list[str]) -> str:
    mods = dict(model.named_modules())
    return ", ".join(f"{n or type(model).__name__!r} ({type(mods[n]).__name__})" for n in names)


class ForwardReference:
    """The loss of one forward pass, against which the engine's own forward pass is compared.

    A Hessian is only defined for a deterministic loss. Dropout modules are refused by name
    (:func:`check_dropout`); any other randomness -- ``F.dropout(training=True)`` inside a
    ``forward``, ``nn.MultiheadAttention(dropout=p)`` in training mode, noise drawn from a private
    generator, a forward that depends on hidden state -- is found by this one extra forward pass:
    it must not draw from torch's global random number generators, and the engine's forward pass
    must give a bitwise equal loss. On a mismatch, two more (hooked) passes name the module.
    Buffers are restored after the pass (:func:`preserved_buffers`)."""

    def __init__(self, model: nn.Module, loss_fn: LossFn, batch: Batch):
        self.model, self.loss_fn, self.batch = model, loss_fn, batch
        check_materialised(model, batch)
        check_memory(model, loss_fn, batch)
        with preserved_buffers(model), torch.random.fork_rng(devices=_cuda_devices()):
            before = _rng_states()
            loss = forward(model, loss_fn, batch).loss
            drew = _rng_changed(before, _rng_states())
        self.value = loss.detach()
        del loss
        if drew:
            self._refuse("draws random numbers")

    def _refuse(self, what: str) -> None:
        with preserved_buffers(self.model), torch.random.fork_rng(devices=_cuda_devices()):
            drew, differs = _diagnose(self.model, self.loss_fn, self.batch)
        culprits = drew or differs
        where = (f"module {_describe(self.model, culprits)}" if culprits and culprits != [""]
                 else (f"the model's own forward ({type(self.model).__name__})" if culprits else
                       "the loss function or code outside any module"))
        raise ValueError(f"the forward pass is not deterministic: {where} {what} (dropout inside a forward, "
                         "e.g. F.dropout(training=True), or nn.MultiheadAttention(dropout>0) in training "
                         "mode): the Hessian of a random loss is random. Call model.eval() first, or make "
                         "the forward pass deterministic.")

    def check(self, loss: torch.Tensor) -> None:
        """Refuse when ``loss`` (the engine's forward pass, same model and batch) is not bitwise
        equal to the reference."""
        a, b = self.value, loss.detach()
        if torch.equal(a, b):
            return
        gap = float((a.double() - b.double()).abs())
        if gap <= 64 * torch.finfo(a.dtype).eps * max(abs(float(a)), torch.finfo(a.dtype).tiny):
            warnings.warn(f"the loss differs from one forward pass to the next by {gap:.3g} (rounding level: "
                          "kernels with atomic additions, e.g. on a GPU): the Hessian carries noise of that "
                          "order; torch.use_deterministic_algorithms(True) removes it", RuntimeWarning,
                          stacklevel=3)
            return
        self._refuse(f"gives a different loss on the same batch ({float(a)!r}, then {float(b)!r})")


def _cuda_devices() -> list[int]:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return list(range(torch.cuda.device_count()))
    return []


# ---- memory --------------------------------------------------------------------------------
#: the engine holds the forward graph, the gradient's graph (``create_graph=True``) and at least
#: one product's intermediates at once: at least this many times the forward's saved tensors
MEMORY_FACTOR = 3


def _slice(x: Any, k: int) -> Any:
    if isinstance(x, torch.Tensor):
        return x[:k]
    if isinstance(x, (list, tuple)):
        return type(x)(_slice(y, k) for y in x)
    if isinstance(x, dict):
        return {key: _slice(y, k) for key, y in x.items()}
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    raise TypeError


def saved_bytes(model: nn.Module, loss_fn: LossFn, batch: Batch) -> int:
    """Bytes of the tensors one forward pass saves for the backward pass (each storage once),
    plus the batch's own. Buffers and random state are left as they were."""
    seen: dict[tuple[int, torch.device], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        seen[(st.data_ptr(), t.device)] = st.nbytes()
        return t

    with preserved_buffers(model), torch.random.fork_rng(devices=_cuda_devices()), \
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward(model, loss_fn, batch)
    return sum(seen.values())


def check_memory(model: nn.Module, loss_fn: LossFn, batch: Batch, *, n: int | None = None,
                 what: str = "the Hessian batch") -> None:
    """Refuse, before any work, a batch whose Hessian computation cannot fit in memory.

    The forward pass of two and of four samples is measured (:func:`saved_bytes`); their
    difference gives the memory per sample, the rest is fixed (weights). The engine needs at least
    :data:`MEMORY_FACTOR` times what the forward pass of all ``n`` samples (default: the batch's)
    saves; when that exceeds the memory available on the parameters' device, ``ValueError``.
    Batches of at most four samples, or of a layout that cannot be sliced, are not estimated."""
    n = leading(batch if isinstance(batch, dict) else batch[0]) if n is None else n
    if n is None or n <= 4:
        return
    try:
        small = [saved_bytes(model, loss_fn, _slice(batch, k)) for k in (2, 4)]
    except Exception:  # noqa: BLE001 - a layout the estimate does not understand: no estimate
        return
    per_sample = max(0.0, (small[1] - small[0]) / 2)
    need = MEMORY_FACTOR * (small[0] + per_sample * (n - 2))
    p = next(iter(model.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    have = free_bytes(device)
    if need > have:
        fits = max(1, int(have / MEMORY_FACTOR / max(per_sample, 1)))
        raise ValueError(f"{what} of {n} samples is too large for memory: the Hessian of its loss needs about "
                         f"{need / 2**30:.3g} GiB ({per_sample / 2**20:.3g} MiB of saved activations per sample, "
                         f"x{MEMORY_FACTOR} for the second-order graph) and {have / 2**30:.3g} GiB is available "
                         f"on {device}; use at most about {fits} samples")


# ---- custom autograd.Functions --------------------------------------------------------------
def _is_custom(fn: Any) -> bool:
    return isinstance(fn, torch.autograd.function.BackwardCFunction)


def _custom_name(fn: Any) -> str:
    cls = getattr(fn, "_forward_cls", None)
    return getattr(cls, "__qualname__", None) or type(fn).__name__


def _once_differentiable(fn: Any) -> bool:
    """Is the backward of custom node ``fn`` wrapped by ``torch.autograd.function.once_differentiable``?"""
    bw = getattr(getattr(fn, "_forward_cls", None), "backward", None)
    code = getattr(bw, "__code__", None)
    return getattr(bw, "__wrapped__", None) is not None and code is not None and \
        code.co_filename == torch.autograd.function.__file__


def custom_functions_above(root: torch.Tensor, leaves: dict[str, torch.Tensor]) -> dict[str, list[Any]]:
    """For each named leaf, the custom ``autograd.Function`` nodes on some path from ``root`` down
    to it (one pass over the graph in topological order)."""
    above: dict[Any, frozenset] = {}
    by_leaf: dict[int, frozenset] = {}
    for fn in topological([root]):  # parents before children
        mine = above.get(fn, frozenset())
        if _is_custom(fn):
            mine = mine | {fn}
        var = leaf(fn)
        if var is not None:
            by_leaf[id(var)] = by_leaf.get(id(var), frozenset()) | mine
        for n in children(fn):
            above[n] = above.get(n, frozenset()) | mine
    return {name: sorted(by_leaf.get(id(t), ()), key=_custom_name) for name, t in leaves.items()}


#: what :func:`check_twice_differentiable` and :func:`check_custom_functions` need to name the
#: module behind a node: the model, loss function and batch of the forward pass
Where = tuple[nn.Module, LossFn, Batch]


def check_custom_functions(loss: torch.Tensor, params: dict[str, torch.Tensor], where: Where | None = None) -> set[str]:
    """The names of the parameters whose loss passes through a custom ``autograd.Function``.

    Its derivatives are the user's claim, which no tool can verify: the Hessian there is what
    autograd computes from the user's ``backward`` (the float64 ``torch.autograd.functional``
    reference gives the same), and a :class:`UserWarning` names the function. A function whose
    backward is ``@once_differentiable`` has no second derivative at all: ``RuntimeError`` naming
    the parameter and, given ``where``, the module that applies it (rather than the zeros autograd's
    unused-input rule would give)."""
    above = custom_functions_above(loss, params)
    behind = {n for n, fns in above.items() if fns}
    for name in params:
        once = [f for f in above[name] if _once_differentiable(f)]
        if once:
            fname = _custom_name(once[0])
            inside = ""
            if where is not None:
                mods = modules_running(*where, lambda fw: {fn for fn in topological([fw.loss]) if _is_custom(fn)
                                                           and _custom_name(fn) == fname})
                inside = f" (applied in {mods})" if mods else ""
            raise RuntimeError(f"the Hessian of {name!r} needs the second derivative of the custom autograd.Function "
                               f"{fname}{inside}, whose backward is marked @once_differentiable: trying to "
                               "differentiate twice a function that was marked with @once_differentiable. Write a "
                               "backward made of differentiable torch operations (and drop the decorator).")
    if behind:
        names = sorted({_custom_name(f) for n in behind for f in above[n]})
        warnings.warn(f"the loss passes through custom autograd.Function(s) {', '.join(names)}: the Hessian of "
                      f"{sorted(behind)} is what autograd derives from their backward (their own claim about "
                      "their derivatives, which cannot be verified); no structural shortcut was taken through them",
                      UserWarning, stacklevel=3)
    return behind


# ---- nodes without a second derivative ---------------------------------------------------------
#: the node kinds autograd puts in a gradient's graph where a derivative is missing: a backward
#: without a derivative formula (a fused kernel: ``NotImplemented``), one marked
#: ``@once_differentiable`` (``DelayedError``)
ERROR_NODES = frozenset({"Error", "DelayedError", "NotImplemented"})


def _error_nodes(roots: list[torch.Tensor]) -> tuple[list, list[torch.Tensor]]:
    """Nodes of the graphs of ``roots`` that refuse differentiation, and the graphs' leaves."""
    order = topological(roots)
    return ([fn for fn in order if type(fn).__name__ in ERROR_NODES],
            [leaf(fn) for fn in order if leaf(fn) is not None])


def _op_name(fn: Any) -> str:
    """``ScaledDotProductFlashAttentionForCpuBackward0`` -> ``ScaledDotProductFlashAttentionForCpu``."""
    name = type(fn).__name__
    cut = name.rfind("Backward")
    return name[:cut] if cut > 0 else name


def modules_running(model: nn.Module, loss_fn: LossFn, batch: Batch, pick) -> str:
    """The innermost modules whose own part of the graph (between their inputs and outputs) holds a
    node chosen by ``pick``, described as ``'name' (Type)``: one more forward pass with hooks
    recording every module call, ``pick(forward)`` choosing nodes of that pass's graph. Buffers and
    random state are left as they were."""
    calls: list[tuple[str, nn.Module, set, list]] = []
    open_calls: list[set] = []

    def fns(x: Any) -> list:
        return [t.grad_fn for t in tensors(x) if t.grad_fn is not None]

    handles = []
    for mname, m in model.named_modules():
        def pre(mod, args, kwargs):
            open_calls.append(set(fns((args, kwargs))))

        def post(mod, args, kwargs, out, mname=mname):
            calls.append((mname, mod, open_calls.pop(), fns(out)))

        handles += [m.register_forward_pre_hook(pre, with_kwargs=True),
                    m.register_forward_hook(post, with_kwargs=True)]
    try:
        with preserved_buffers(model), torch.random.fork_rng(devices=_cuda_devices()):
            fw = forward(model, loss_fn, batch)
            chosen = pick(fw)
    finally:
        for h in handles:
            h.remove()
    found: dict[str, nn.Module] = {}
    for node in chosen:
        best = None
        for mname, mod, ins, outs in calls:
            region = set(topological(outs, stop=ins)) - ins
            if node in region and (best is None or len(region) < best[0]):
                best = (len(region), mname, mod)
        if best is not None:
            found[best[1]] = best[2]
    return ", ".join(f"module {n or type(model).__name__!r} ({type(m).__name__})" for n, m in found.items())


def check_twice_differentiable(grads: dict[str, torch.Tensor | None] | list[tuple[str, torch.Tensor | None]],
                               where: Where | None = None) -> None:
    """Raise, naming the parameter, when the graph of its gradient holds a node that refuses
    differentiation (a fused kernel without a derivative formula for its backward, a
    ``@once_differentiable`` backward): products with ``allow_unused=True`` would otherwise read
    the cut graph as zero curvature, or fail later with torch's message. Given ``where`` (model,
    loss function, batch), the module whose forward ran the kernel is named. One pass over the
    graphs when nothing is wrong."""
    items = grads.items() if isinstance(grads, dict) else grads
    live = [(n, g) for n, g in items if g is not None and g.requires_grad]
    if not live or not _error_nodes([g for _, g in live])[0]:
        return
    for name, g in live:
        errors, leaves = _error_nodes([g])
        if not errors:
            continue
        ops = sorted({_op_name(c) for e in errors for c in children(e)
                      if type(c).__name__ not in ERROR_NODES and leaf(c) is None} - {""})
        torch_says = "its gradient's graph holds a node that cannot be differentiated"
        try:  # run the error node: torch's own words
            torch.autograd.grad(g, leaves, torch.ones_like(g), retain_graph=True, allow_unused=True)
        except RuntimeError as err:
            torch_says = str(err).strip().splitlines()[0]
        mods = ""
        if where is not None and any(type(e).__name__ == "NotImplemented" for e in errors):
            mods = modules_running(*where, lambda fw: _kernels_without_second_derivative(fw.loss, name, where[0]))
        if any(type(e).__name__ == "NotImplemented" for e in errors):
            raise RuntimeError(
                f"the Hessian of {name!r} cannot be computed: " + (f"{mods} runs " if mods else "the forward pass runs ")
                + f"{', '.join(ops) or 'an operation'}, a fused kernel whose backward has no derivative ({torch_says}). "
                "Write that computation with differentiable torch operations -- for attention, "
                "F.scaled_dot_product_attention without forcing a fused backend (the engine runs it on the math "
                "backend) -- or leave the parameters before it out (params=...).")
        raise RuntimeError(f"the Hessian of {name!r} cannot be computed: {torch_says} (a backward marked "
                           "@once_differentiable: write it with differentiable torch operations)")


def _kernels_without_second_derivative(loss: torch.Tensor, name: str, model: nn.Module) -> set:
    """Forward nodes of ``loss``'s graph whose backward has no derivative (the children of the
    ``NotImplemented`` nodes in the gradient of parameter ``name``)."""
    p = dict(model.named_parameters())[name]
    (g,) = torch.autograd.grad(loss, [p], create_graph=True, allow_unused=True)
    if g is None:
        return set()
    fwd = set(topological([loss]))
    return {c for e in _error_nodes([g])[0] if type(e).__name__ == "NotImplemented" for c in children(e) if c in fwd}
