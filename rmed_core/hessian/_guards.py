"""Guards on the forward pass and its graph, run by every Hessian routine before it trusts them.

* :func:`preserved_buffers` -- the model's buffers (BatchNorm statistics) are restored after each
  of the engine's forward passes: the model is left as it was given.
* :class:`ForwardReference` -- one extra forward pass refuses a random loss (draws from torch's
  generators, or a loss that is not bitwise reproducible), naming the module.
* :func:`check_memory` -- a batch whose Hessian cannot fit in memory is refused before any work.
* :func:`check_custom_functions` -- a custom ``autograd.Function`` is warned about (nothing is
  certified through it); a ``@once_differentiable`` one raises, naming the parameter.
* :func:`check_twice_differentiable` -- a gradient whose graph cannot be differentiated again
  raises torch's error naming the parameter, instead of reading as zero curvature.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ._validate import Batch, LossFn, _leading, _tensors, check_loss, check_materialised


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
        return [t.detach().clone() for t in _tensors(x)]

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
            inputs, targets = batch
            loss_fn(model(inputs), targets)
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
        inputs, targets = batch
        with preserved_buffers(model), torch.random.fork_rng(devices=_cuda_devices()):
            before = _rng_states()
            loss = check_loss(loss_fn(model(inputs), targets))
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
    raise TypeError


def available_bytes(device: torch.device) -> int:
    """Memory that can still be allocated on ``device`` (CUDA: free memory plus what torch's caching
    allocator holds unused; CPU: ``MemAvailable``)."""
    if device.type == "cuda":
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(torch.cuda.mem_get_info(device)[0]) + max(0, int(cached))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    from ._batched import free_bytes
    return free_bytes(device)


def saved_bytes(model: nn.Module, loss_fn: LossFn, batch: Batch) -> int:
    """Bytes of the tensors one forward pass saves for the backward pass (each storage once),
    plus the batch's own. Buffers and random state are left as they were."""
    seen: dict[tuple[int, torch.device], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        seen[(st.data_ptr(), t.device)] = st.nbytes()
        return t

    inputs, targets = batch
    with preserved_buffers(model), torch.random.fork_rng(devices=_cuda_devices()), \
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss_fn(model(inputs), targets)
    return sum(seen.values())


def check_memory(model: nn.Module, loss_fn: LossFn, batch: Batch, *, n: int | None = None,
                 what: str = "the Hessian batch") -> None:
    """Refuse, before any work, a batch whose Hessian computation cannot fit in memory.

    The forward pass of two and of four samples is measured (:func:`saved_bytes`); their
    difference gives the memory per sample, the rest is fixed (weights). The engine needs at least
    :data:`MEMORY_FACTOR` times what the forward pass of all ``n`` samples (default: the batch's)
    saves; when that exceeds the memory available on the parameters' device, ``ValueError``.
    Batches of at most four samples, or of a layout that cannot be sliced, are not estimated."""
    inputs, targets = batch
    n = _leading(inputs) if n is None else n
    if n is None or n <= 4:
        return
    try:
        small = [saved_bytes(model, loss_fn, (_slice(inputs, k), _slice(targets, k))) for k in (2, 4)]
    except Exception:  # noqa: BLE001 - a layout the estimate does not understand: no estimate
        return
    per_sample = max(0.0, (small[1] - small[0]) / 2)
    need = MEMORY_FACTOR * (small[0] + per_sample * (n - 2))
    p = next(iter(model.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    have = available_bytes(device)
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
    order, seen, stack = [], set(), [(root.grad_fn, False)]
    while stack:
        fn, done = stack.pop()
        if fn is None:
            continue
        if done:
            order.append(fn)
            continue
        if fn in seen:
            continue
        seen.add(fn)
        stack.append((fn, True))
        stack.extend((n, False) for n, _ in fn.next_functions if n is not None and n not in seen)
    above: dict[Any, frozenset] = {}
    by_leaf: dict[int, frozenset] = {}
    for fn in reversed(order):  # parents before children
        mine = above.get(fn, frozenset())
        if _is_custom(fn):
            mine = mine | {fn}
        var = getattr(fn, "variable", None)
        if var is not None:
            by_leaf[id(var)] = by_leaf.get(id(var), frozenset()) | mine
        for n, _ in fn.next_functions:
            if n is not None:
                above[n] = above.get(n, frozenset()) | mine
    return {name: sorted(by_leaf.get(id(t), ()), key=_custom_name) for name, t in leaves.items()}


def check_custom_functions(loss: torch.Tensor, params: dict[str, torch.Tensor]) -> set[str]:
    """The names of the parameters whose loss passes through a custom ``autograd.Function``.

    Its derivatives are the user's claim, which no tool can verify: the Hessian there is what
    autograd computes from the user's ``backward`` (the float64 ``torch.autograd.functional``
    reference gives the same), and a :class:`UserWarning` names the function. A function whose
    backward is ``@once_differentiable`` has no second derivative at all: ``RuntimeError`` naming
    the parameter (rather than the zeros autograd's unused-input rule would give)."""
    above = custom_functions_above(loss, params)
    behind = {n for n, fns in above.items() if fns}
    for name in params:
        once = [f for f in above[name] if _once_differentiable(f)]
        if once:
            raise RuntimeError(f"the Hessian of {name!r} needs the second derivative of the custom autograd.Function "
                               f"{_custom_name(once[0])}, whose backward is marked @once_differentiable: trying to "
                               "differentiate twice a function that was marked with @once_differentiable. Write a "
                               "backward made of differentiable torch operations (and drop the decorator).")
    if behind:
        names = sorted({_custom_name(f) for n in behind for f in above[n]})
        warnings.warn(f"the loss passes through custom autograd.Function(s) {', '.join(names)}: the Hessian of "
                      f"{sorted(behind)} is what autograd derives from their backward (their own claim about "
                      "their derivatives, which cannot be verified); no structural shortcut was taken through them",
                      UserWarning, stacklevel=3)
    return behind


def _error_nodes(roots: list[torch.Tensor]) -> tuple[list, list[torch.Tensor]]:
    """Nodes of the graphs of ``roots`` that refuse differentiation, and the graphs' leaves."""
    seen, stack, errors, leaves = set(), [r.grad_fn for r in roots], [], []
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if type(fn).__name__ in ("Error", "DelayedError"):
            errors.append(fn)
        if getattr(fn, "variable", None) is not None:
            leaves.append(fn.variable)
        stack.extend(n for n, _ in fn.next_functions)
    return errors, leaves


def check_twice_differentiable(grads: dict[str, torch.Tensor | None]) -> None:
    """Raise torch's own error, naming the parameter, when the graph of its gradient holds a node
    that refuses differentiation (a ``@once_differentiable`` backward leaves one): products with
    ``allow_unused=True`` would otherwise read the cut graph as zero curvature. One pass over the
    graphs when nothing is wrong."""
    live = {n: g for n, g in grads.items() if g is not None and g.requires_grad}
    if not live or not _error_nodes(list(live.values()))[0]:
        return
    for name, g in live.items():
        errors, leaves = _error_nodes([g])
        if not errors:
            continue
        try:  # run the error node: torch's own message
            torch.autograd.grad(g, leaves, torch.ones_like(g), retain_graph=True, allow_unused=True)
        except RuntimeError as err:
            raise RuntimeError(f"the Hessian of {name!r} cannot be computed: {err}") from err
        raise RuntimeError(f"the Hessian of {name!r} cannot be computed: its gradient's graph holds a node that "
                           "cannot be differentiated (a backward marked @once_differentiable?)")
