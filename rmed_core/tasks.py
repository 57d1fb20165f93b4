"""The task registry: each experiment's data, model, loss and sizes, looked up by name and scale.

Tasks (for the paper's language-model claim and its image control, Jiang, Malik, Li 2023; the
paper's own tasks, models and sizes are not known, so every task below is this project's choice):

* ``ptb_lm`` (this project's main task, the default): next-token prediction on Penn Treebank with a causal transformer.
  Character level at ``ci``/``book`` scale (49 symbols: the output softmax, which dominates every
  Hessian-vector product, stays small enough for exact Hessian diagonals on a 2-core CPU), word
  level with the standard 10k vocabulary at ``paper`` scale.
* ``polarity_cls``: Pang & Lee sentence polarity with a transformer encoder (a second language task).
* ``mnist_cnn``, ``fashion_cnn``: the control — a CNN on images, where the paper reports no gap
  (as Ahn et al. 2023 report it).

Scales: ``ci`` runs training and probes in seconds (tests, notebooks under nbval); ``book`` is
meaningful on a 2-core CPU (minutes per run, exact probes); ``paper`` is this project's choice of a
larger setting for a GPU (a transformer with more than 22 parameter tensors, since the published
table indexes layer 22; thousands of iterations, since it reports iteration 1250). The paper's own
sizes are not known.

Why the ``book`` models are this small: the exact Hessian diagonal of a transformer tensor whose
positions are coupled costs about ``min(T, d_in) * K`` products (``T`` positions, ``K`` output
units; see :mod:`rmed_core.hessian.exact`), and every run is probed several times for every seed.
How the cost of a probe grows with the width ``d`` and the sequence length ``T`` is measured, not
stated here: ``python benchmarks/bench_transformer.py`` prints the products and seconds per
probe of the whole model at the sizes it is given. A larger ``book`` model is one ``ScaleSpec`` line away;
its learning rates must then be tuned again, and the book's build time measured again.

Learning rates: every optimizer is tuned on the grid :data:`LR_GRID` at each scale by the final
training loss (:func:`rmed_core.runs.tuning.tune_lr`: mean mini-batch loss over the last 10% of steps,
seed 0, no probes; a diverged run loses). :data:`TUNED_LR` records the winners and how they were
obtained; an optimizer without a tuned value needs an explicit ``lr``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import data as _data
from .models import CNN, TransformerClassifier, TransformerLM, lm_loss
from .validation import SCALES, check_choice

__all__ = ["SCALES", "LR_GRID", "TUNED_LR", "ScaleSpec", "Task", "TASKS", "get_task", "task_names",
           "check_scale", "DEFAULT_TASK"]

DEFAULT_TASK = "ptb_lm"
LR_GRID: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
"""Learning rates tried for every optimizer (half-decades)."""

# Winners of `tune_lr(task, opt, scale)` over the whole LR_GRID (seed 0, no probes, mean training loss of the
# last 10% of steps), measured on the 2-core CPU with a loop over `rmed_core.runs.tuning.tune_lr(task, opt, scale)`
# (equivalently `rmed train --task T --opt adam sgdm --scale S --tune`). Caveats: at `ci` (20 steps) mnist_cnn does not learn, so its ci picks are noise; at `book`
# SGD-M on polarity_cls stayed at ln 2 for every lr (the pick 3e-4 is the least bad, not a tuned optimum).
# fashion_cnn is not tuned (Fashion-MNIST is not installed here) and `paper` is not tuned (no GPU): pass lr.
# At the `study` scales the grid is the half-decades around each optimizer's best (sweeps/study-tuning.yaml,
# sweeps/study-control-tuning.yaml); the tuning runs are kept in the study's results bundle (`load_results("runs",
# bundle="study")`, sweep "study-tuning"), and the "Is Adam faster here?" chapter shows them.
TUNED_LR: dict[str, dict[str, dict[str, float]]] = {
    "ptb_lm": {"ci": {"adam": 3e-2, "sgdm": 3e-1}, "book": {"adam": 1e-2, "sgdm": 1e-1},
               "study": {"adam": 1e-3, "sgdm": 1e-1}},
    "polarity_cls": {"ci": {"adam": 1e-2, "sgdm": 3e-3}, "book": {"adam": 3e-3, "sgdm": 3e-4}},
    "mnist_cnn": {"ci": {"adam": 1e-2, "sgdm": 1e-4}, "book": {"adam": 1e-2, "sgdm": 3e-2},
                  "study": {"adam": 3e-3, "sgdm": 1e-1}},
}


def check_scale(scale: str) -> str:
    """``scale`` if it is one of :data:`SCALES`, else a ``ValueError`` naming the parameter."""
    return check_choice("scale", scale, SCALES)


@dataclass(frozen=True)
class ScaleSpec:
    """Sizes of a task at one scale.

    Attributes:
        data: keyword arguments of the task's data builder (vocabulary cap, sequence length...).
        model: keyword arguments of the model.
        steps: training iterations.
        batch_size: training mini-batch size (sequences or images).
        probe_every: iterations between probes (R_med on the fixed Hessian batch); 0 = none.
        hessian_batch: size of that fixed batch (sequences or images).
        probe_method: the engine's method for the Hessian diagonal.
    """

    data: dict[str, Any]
    model: dict[str, Any]
    steps: int
    batch_size: int
    probe_every: int
    hessian_batch: int
    probe_method: str = "exact"


@dataclass(frozen=True)
class Task:
    """One experiment: ``build_data(**spec.data)``, ``build_model(data, **spec.model)``,
    ``loss_fn(model(inputs), targets)`` (a scalar mean loss), sizes per scale."""

    name: str
    description: str
    build_data: Callable[..., Any]
    build_model: Callable[..., nn.Module]
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    scales: dict[str, ScaleSpec]
    data_key: str = ""
    notes: dict[str, str] = field(default_factory=dict)
    model_options: tuple[str, ...] = ()
    """The run-level model options (:class:`~rmed_core.runs.config.TrainConfig` fields such as
    ``init``, ``output_bias``) that ``build_model`` accepts."""

    def spec(self, scale: str) -> ScaleSpec:
        """The sizes at ``scale``; a ``ValueError`` naming the scales this task has otherwise."""
        if check_scale(scale) not in self.scales:
            raise ValueError(f"scale={scale!r}: task {self.name!r} is not defined at this scale; it has "
                             f"{', '.join(self.scales)}")
        return self.scales[scale]

    def data(self, scale: str) -> Any:
        """The task's data at ``scale`` (cached for the process)."""
        self.spec(scale)
        return _cached_data(self.name, scale)

    def model(self, scale: str, data: Any = None, **options: Any) -> nn.Module:
        """A freshly initialised model (seed the global RNG first for a reproducible init), with the
        run-level ``options`` of :attr:`model_options` (an option this task lacks is refused)."""
        extra = set(options) - set(self.model_options)
        if extra:
            raise ValueError(f"task {self.name!r} takes no model option {', '.join(sorted(extra))} "
                             f"(it takes: {', '.join(self.model_options) or 'none'})")
        return self.build_model(data if data is not None else self.data(scale), **self.spec(scale).model, **options)

    def default_lr(self, opt: str, scale: str) -> float:
        """The tuned learning rate of ``opt`` at ``scale`` (:data:`TUNED_LR`)."""
        tuned = TUNED_LR.get(self.name, {}).get(check_scale(scale), {})
        if opt not in tuned:
            raise ValueError(f"lr=None but opt={opt!r} has no tuned learning rate for task {self.name!r} at scale "
                             f"{scale!r} (tuned: {sorted(tuned) or 'none'}); pass lr explicitly (a notebook: `-p lr VALUE`), "
                             f"e.g. one found by rmed_core.runs.tuning.tune_lr")
        return tuned[opt]


_ptb = lru_cache(maxsize=4)(_data.ptb)


def _lm_data(level: str, seq_len: int, max_vocab: int | None = None) -> _data.LMData:
    c = _ptb(level, max_vocab)
    return _data.LMData(c.splits, seq_len=seq_len, vocab_size=len(c.vocab), vocab=c.vocab)


def _lm_model(d: _data.LMData, **kw: Any) -> nn.Module:
    return TransformerLM(d.vocab_size, seq_len=d.seq_len, **kw)


def _cls_model(d: _data.ClassificationData, **kw: Any) -> nn.Module:
    return TransformerClassifier(d.vocab_size, d.n_classes, seq_len=d.x.shape[1], **kw)


def _cnn_model(d: _data.ClassificationData, **kw: Any) -> nn.Module:
    return CNN(in_channels=d.x.shape[1], n_classes=d.n_classes, size=d.x.shape[-1], **kw)


def _tf(d: int, layers: int, heads: int) -> dict[str, int]:
    return dict(d_model=d, n_layers=layers, n_heads=heads)


#: The study model (word-level Penn Treebank): the smallest size at which this project tests the paper's
#: claim (a choice of this project; the paper's sizes are not known). Pre-LN decoder, d_model 64, 2 blocks,
#: 4 heads, MLP width 256, 32 tokens of context, batch 32, 1,250 iterations; R_med from the sampled estimate
#: on a fixed Hessian batch of 16 sequences (512 tokens). ``study-10k`` keeps the full 10k vocabulary.
STUDY_SCALES: dict[str, ScaleSpec] = {
    "study": ScaleSpec(dict(level="word", seq_len=32, max_vocab=2000), _tf(64, 2, 4), steps=1250, batch_size=32,
                       probe_every=250, hessian_batch=16, probe_method="sampled"),
    "study-10k": ScaleSpec(dict(level="word", seq_len=32, max_vocab=None), _tf(64, 2, 4), steps=1250,
                           batch_size=64, probe_every=250, hessian_batch=16, probe_method="sampled"),
}


#: The image control's sizes, the same for MNIST and Fashion-MNIST (28×28 grey images, 10 classes).
_CNN_SCALES = {
    "ci": ScaleSpec({}, dict(width=2), steps=20, batch_size=16, probe_every=10, hessian_batch=16),
    "book": ScaleSpec({}, dict(width=4), steps=600, batch_size=64, probe_every=150, hessian_batch=64),
    # exact at every scale: the CNN (conv-ReLU-maxpool) takes the verified Gauss-Newton shortcut, ten
    # backward passes for all layers (50k parameters, 512 images: about 4 s on the 2-core CPU)
    # the control beside the word-level study: the same iterations and probes, exact (Gauss-Newton shortcut)
    "study": ScaleSpec({}, dict(width=16), steps=1250, batch_size=64, probe_every=250, hessian_batch=512),
    "paper": ScaleSpec({}, dict(width=32), steps=2000, batch_size=128, probe_every=250, hessian_batch=512),
}

TASKS: dict[str, Task] = {
    "ptb_lm": Task(
        "ptb_lm", "Penn Treebank language model, causal transformer (this project's main task)",
        _lm_data, _lm_model, lm_loss, {
            "ci": ScaleSpec(dict(level="char", seq_len=8), _tf(8, 1, 2), steps=20, batch_size=8, probe_every=10,
                            hessian_batch=4),
            "book": ScaleSpec(dict(level="char", seq_len=8), _tf(16, 2, 2), steps=600, batch_size=32,
                              probe_every=150, hessian_batch=8),
            **STUDY_SCALES,
            "paper": ScaleSpec(dict(level="word", seq_len=128), _tf(256, 6, 4), steps=2000, batch_size=32,
                               probe_every=250, hessian_batch=16, probe_method="sampled"),
        }, model_options=("init", "output_bias")),
    "polarity_cls": Task(
        "polarity_cls", "Pang & Lee sentence polarity, transformer encoder (mean-pooled)",
        _data.polarity, _cls_model, F.cross_entropy, {
            "ci": ScaleSpec(dict(max_vocab=200, seq_len=16), _tf(8, 1, 2), steps=20, batch_size=16, probe_every=10,
                            hessian_batch=8),
            "book": ScaleSpec(dict(max_vocab=500, seq_len=16), _tf(8, 2, 2), steps=600, batch_size=32,
                              probe_every=200, hessian_batch=32),
            "paper": ScaleSpec(dict(max_vocab=None, seq_len=64), _tf(128, 4, 4), steps=2000, batch_size=64,
                               probe_every=250, hessian_batch=256, probe_method="sampled"),
        }),
    "mnist_cnn": Task(
        "mnist_cnn", "MNIST (5,000 digits), CNN (the control: no R_med gap expected, as Ahn et al. report the paper)",
        _data.mnist5k, _cnn_model, F.cross_entropy, _CNN_SCALES),
    "fashion_cnn": Task(
        "fashion_cnn", "Fashion-MNIST, CNN (control on a harder image task)",
        _data.fashion_mnist, _cnn_model, F.cross_entropy, _CNN_SCALES),
}


def study_task(size: str = "study") -> tuple[_data.LMData, Callable[[], nn.Module], ScaleSpec]:
    """The study model's data, a model factory (seed the RNG first) and its sizes;
    ``size`` is ``"study"`` (vocabulary 2,000) or ``"study-10k"`` (the full vocabulary)."""
    spec = STUDY_SCALES[check_choice("size", size, STUDY_SCALES)]
    data = _lm_data(**spec.data)
    return data, lambda: _lm_model(data, **spec.model), spec


def task_names() -> list[str]:
    return sorted(TASKS)


def get_task(name: str) -> Task:
    """The task registered as ``name``; ``ValueError`` listing the valid names otherwise."""
    if name not in TASKS:
        raise ValueError(f"task={name!r} is not a known task; valid tasks: {', '.join(task_names())}")
    return TASKS[name]


@lru_cache(maxsize=8)
def _cached_data(name: str, scale: str) -> Any:
    task = TASKS[name]
    return task.build_data(**task.scales[scale].data)
