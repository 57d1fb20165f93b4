"""``python -m rmed_core sweep SPEC ...``: the ``rmed`` command without the console script."""
import sys

from .cli import main

sys.exit(main())
