"""What the book shows under each figure: the command that regenerates it and the provenance panel."""
from __future__ import annotations

import pandas as pd

from rmed_core.book.report import papermill_command, provenance_panel, ratio_columns


def test_the_command_quotes_what_a_shell_would_split():
    assert papermill_command("fig2", {"opt": "sgdm", "lr": "sgdm:0.1,adam:1e-3"}) == \
        "papermill notebooks/fig2.py out.ipynb -p opt sgdm -p lr sgdm:0.1,adam:1e-3"
    assert papermill_command("fig2", {"task": "a b"}).endswith("-p task 'a b'")


def test_the_panel_merges_records_and_escapes_html():
    html = provenance_panel("fig1", {"scale": "ci"}, [{"device": "cpu", "wall_time_s": 1.5, "git_commit": "<abc>"},
                                                      {"device": "cuda:0", "wall_time_s": 2.0, "git_commit": "<abc>"}])
    assert html.startswith('<details class="provenance">')
    assert "3.5 s in all (2 runs)" in html and "cpu, cuda:0" in html
    assert "&lt;abc&gt;" in html and "<abc>" not in html
    assert "papermill notebooks/fig1.py out.ipynb -p scale ci" in html


def test_ratio_columns_reads_as_one_interval_column():
    t = pd.DataFrame({"paper iteration": [750, 750], "tensors": ["all", "MLP"], "ratio": [1.234, 0.5],
                      "lower": [1.0, 0.25], "upper": [1.5, 1.0], "p": [0.03125, 0.5], "published": ["x", "x"]})
    out = ratio_columns(t)
    assert list(out["ratio [95% interval]"]) == ["1.23 [1.00, 1.50]", "0.50 [0.25, 1.00]"]
    assert list(out.published) == ["x", ""] and list(out.p) == [0.031, 0.5]
