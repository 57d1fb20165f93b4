"""Batched vector-Jacobian products in chunks sized to free memory, with a retry on CUDA OOM.

Every Hessian routine in this package reduces to many products ``grad(outputs, inputs, v)`` with
the same graph and different ``v``: :func:`batched_grad` runs them ``chunk`` at a time through
``torch.autograd.grad(..., is_grads_batched=True)`` (vmap over the backward pass), halves the
chunk when CUDA runs out of memory, and falls back to a Python loop when an operation in the
graph has no batching rule.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ._memory import free_bytes

_MAX_CHUNK = 1024


def bit_masks(n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``(ceil(log2 n), n)`` booleans: row ``b`` marks the indices whose bit ``b`` is clear.

    The bit test of a map's block structure over an axis of size ``n``: a random probe supported
    on row ``b``'s indices must give an exactly zero response off them, for every ``b``; any
    coupled pair of indices differs in some bit, so ``ceil(log2 n)`` probes see every coupling."""
    bits = math.ceil(math.log2(n)) if n > 1 else 0
    idx = torch.arange(n, device=device)
    return torch.stack([((idx >> b) & 1) == 0 for b in range(bits)]) if bits else \
        torch.ones(0, n, dtype=torch.bool, device=device)


#: bytes one vmapped chunk may span: beyond about this, a chunk is bound by memory traffic and a
#: product gets slower, not faster (on the 2-core CPU, 256 probes of the study model's attention
#: layer took 12 s in chunks of 16 or 64 and 36 s in one chunk of 256)
_CHUNK_BYTES = 2**30


def auto_chunk(bytes_per_probe: float, device: torch.device, fraction: float = 0.25) -> int:
    """How many probes fit in ``fraction`` of the free memory (:func:`._memory.free_bytes`) and in
    :data:`_CHUNK_BYTES`, between 1 and 1024 (a GPU takes the memory bound alone)."""
    b = max(bytes_per_probe, 1.0)
    n = int(fraction * free_bytes(device) / b)
    if device.type != "cuda":
        n = min(n, int(_CHUNK_BYTES / b))
    return max(1, min(_MAX_CHUNK, n))


def graph_bytes(tensors: Sequence[torch.Tensor]) -> float:
    """A rough per-probe memory cost: a small multiple of the activations involved."""
    return 16.0 * sum(t.numel() * t.element_size() for t in tensors)


class BatchedGrad:
    """Apply ``v -> grad(outputs, inputs, v)`` to a stack of cotangents, chunk by chunk.

    ``outputs``/``inputs`` are sequences of tensors; ``__call__`` takes a list (one per output)
    of stacked cotangents ``(P, *output.shape)`` and returns a list (one per input) of
    ``(P, *input.shape)``. The graph is retained so the same object can be called repeatedly.
    ``post`` (optional) maps the chunk of results to what is kept (e.g. a diagonal), so that the
    full results of all probes never need to be in memory at once.
    """

    def __init__(self, outputs: Sequence[torch.Tensor], inputs: Sequence[torch.Tensor],
                 chunk: int | None = None, activations: Sequence[torch.Tensor] = ()):
        self.outputs, self.inputs = list(outputs), list(inputs)
        dev = self.outputs[0].device
        # every probe of a chunk carries its own copy of each activation the backward pass
        # traverses; the largest of them (the model's output, e.g. a vocabulary-sized softmax)
        # is named by the caller in ``activations``
        self.chunk = chunk or auto_chunk(graph_bytes(self.outputs + self.inputs + list(activations)) + 1e6, dev)
        self.vmap_ok = True
        self.n_calls = 0  # cotangents processed (each is one Hessian-vector product)

    def _one(self, cot: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.vmap_ok:
            try:
                out = torch.autograd.grad(self.outputs, self.inputs, cot, retain_graph=True,
                                          is_grads_batched=True, allow_unused=True)
                p = cot[0].shape[0]
                return [torch.zeros((p, *x.shape), dtype=x.dtype, device=x.device) if o is None else o
                        for o, x in zip(out, self.inputs)]
            except torch.OutOfMemoryError:
                raise
            except RuntimeError as err:  # no batching rule for some op: loop instead
                if "out of memory" in str(err):
                    raise
                self.vmap_ok = False
        rows = []
        for p in range(cot[0].shape[0]):
            g = torch.autograd.grad(self.outputs, self.inputs, [c[p] for c in cot], retain_graph=True,
                                    allow_unused=True)
            rows.append([torch.zeros_like(x) if o is None else o for o, x in zip(g, self.inputs)])
        return [torch.stack(col) for col in zip(*rows)]

    def map(self, n: int, make: Callable[[int, int], list[torch.Tensor]],
            post: Callable[[int, int, list[torch.Tensor]], None]) -> None:
        """For probes ``0..n-1``: ``cot = make(start, stop)``, ``post(start, stop, grads)``."""
        start = 0
        while start < n:
            stop = min(n, start + self.chunk)
            try:
                res = self._one(make(start, stop))
            except (torch.OutOfMemoryError, RuntimeError) as err:
                if "out of memory" not in str(err) or self.chunk == 1:
                    raise
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                self.chunk = max(1, self.chunk // 2)
                continue
            self.n_calls += stop - start
            post(start, stop, res)
            start = stop
