"""What only the book needs: figures (:mod:`~rmed_core.book.plots`), the glue of numbers and figures
into its pages and the provenance panel under every figure (:mod:`~rmed_core.book.report`), and
papermill's reader of jupytext ``.py`` notebooks (:mod:`~rmed_core.book.papermill_io`). Nothing
here computes a result.
"""
