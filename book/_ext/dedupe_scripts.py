"""Sphinx extension: drop repeated <script> entries from each page.

sphinx-thebe 0.3.1 (pulled in by Jupyter Book 1) registers its inline
``const THEBE_JS_URL = ...`` script twice under Sphinx 7.4, so every page throws
"Identifier 'THEBE_JS_URL' has already been declared". Two entries are the same script when
their file name (``''`` and ``None`` alike) and inline body agree; the first is kept.
"""
from __future__ import annotations


def _dedupe(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for js in scripts:
        key = (getattr(js, "filename", js) or None, getattr(js, "attributes", {}).get("body"))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    scripts[:] = kept


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
