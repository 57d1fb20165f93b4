"""Mini-batches as pure functions of ``(seed, step)``.

Every batch is drawn from a ``torch.Generator`` seeded by a hash of ``(seed, step)`` (or of
``(seed, epoch)``), never from global random state. So a run resumed at step ``s`` sees exactly the
batches an uninterrupted run sees, with no data-loader state to checkpoint, and the fixed Hessian
batch of a seed is the same for every optimizer.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch

__all__ = ["stream_seed", "LMData", "ClassificationData"]


def stream_seed(*keys: object) -> int:
    """A 63-bit seed from a stable hash of ``keys`` (independent of ``PYTHONHASHSEED``)."""
    digest = hashlib.sha256(repr(keys).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _gen(*keys: object) -> torch.Generator:
    return torch.Generator().manual_seed(stream_seed(*keys))


@dataclass(frozen=True)
class LMData:
    """A token stream cut into windows: a batch is ``(x, y)`` with ``x = s[o:o+T]`` and
    ``y = s[o+1:o+T+1]`` (shifted by one) at uniformly random offsets ``o``.

    Attributes:
        splits: ``{"train"|"valid"|"test": 1-D int64 tensor}``.
        seq_len: ``T``.
        vocab_size: ``V``.
    """

    splits: dict[str, torch.Tensor]
    seq_len: int
    vocab_size: int
    vocab: object = field(default=None, compare=False, repr=False)

    def _windows(self, offsets: torch.Tensor, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.splits[split]
        idx = offsets[:, None] + torch.arange(self.seq_len + 1)[None]
        w = s[idx]
        return w[:, :-1].contiguous(), w[:, 1:].contiguous()

    def _offsets(self, n: int, split: str, gen: torch.Generator) -> torch.Tensor:
        high = self.splits[split].numel() - self.seq_len - 1
        if high <= 0:
            raise ValueError(f"split {split!r} has {self.splits[split].numel()} tokens: too few for seq_len={self.seq_len}")
        return torch.randint(0, high, (n,), generator=gen)

    def batch(self, step: int, seed: int, batch_size: int, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """The training batch of ``step``: ``(N, T)`` inputs and ``(N, T)`` next-token targets."""
        return self._windows(self._offsets(batch_size, split, _gen("lm", seed, step, split)), split)

    def hessian_batch(self, seed: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed batch the probes evaluate the Hessian on (from the training split; the same
        for every optimizer and step of a seed)."""
        return self._windows(self._offsets(batch_size, "train", _gen("hessian", seed)), "train")

    def eval_batch(self, split: str = "valid", batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed evaluation batch of ``split`` (windows at evenly spaced offsets)."""
        high = self.splits[split].numel() - self.seq_len - 1
        offsets = torch.linspace(0, high - 1, batch_size).long()
        return self._windows(offsets, split)


@dataclass(frozen=True)
class ClassificationData:
    """Inputs and labels; training batches walk through a fresh permutation of the training set
    each epoch (the last incomplete batch of an epoch is dropped).

    Attributes:
        x, y: training inputs ``(n, ...)`` and labels ``(n,)``.
        x_test, y_test: held-out inputs and labels.
        n_classes: ``C``; ``vocab_size`` for token inputs (else 0).
    """

    x: torch.Tensor
    y: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    vocab_size: int = 0
    vocab: object = field(default=None, compare=False, repr=False)

    def batch(self, step: int, seed: int, batch_size: int, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        n = self.y.numel()
        if not 0 < batch_size <= n:
            raise ValueError(f"batch_size={batch_size}: must be in 1..{n} (the training set size)")
        epoch, i = divmod(step, n // batch_size)
        idx = torch.randperm(n, generator=_gen("cls", seed, epoch))[i * batch_size:(i + 1) * batch_size]
        return self.x[idx], self.y[idx]

    def hessian_batch(self, seed: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed batch of training examples the probes evaluate the Hessian on."""
        n = self.y.numel()
        idx = torch.randperm(n, generator=_gen("hessian", seed))[:min(batch_size, n)]
        return self.x[idx], self.y[idx]

    def eval_batch(self, split: str = "test", batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = (self.x_test, self.y_test) if split == "test" else (self.x, self.y)
        return x[:batch_size], y[:batch_size]
