"""Each checker catches its defect: a tiny synthetic site, served and loaded the same way as the
book, with a clean page and one page per planted defect."""
from __future__ import annotations

import base64

import pytest

import book_checks as bc

# A 2x1 PNG (red, blue).
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAABCAIAAAB7QOjdAAAAD0lEQVR4nGP4z8DAwMAAAAMBAQD3kV/nAAAAAElFTkSuQmCC")
PANEL = '<details class="provenance"><summary>Provenance</summary>papermill ...</details>'


def page(body: str, notebook: bool = True) -> str:
    cell = '<div class="cell"><div class="cell_output"><pre>ok</pre></div></div>' if notebook else ""
    return f'<!doctype html><html><head><meta charset="utf-8"><title>t</title></head><body>' \
           f'<main><article class="bd-article">{cell}{body}</article></main>' \
           f'<nav><a href="/index.html">home</a></nav></body></html>'


FIGURE = '<figure id="fig-a"><img src="_images/a.png" alt="a"><figcaption>Figure A</figcaption></figure>'
SITE = {
    "index.html": page('<h1 id="top">Home</h1><p><a href="#top">top</a> <a href="sub/clean.html#sec">clean</a> '
                       '<a href="https://example.org/x">external link, not followed</a></p>', notebook=False),
    "broken_link.html": page('<a href="missing.html">gone</a> <a href="index.html#nowhere">bad anchor</a>'),
    "missing_image.html": page('<img src="_images/missing.png" alt="lost">'),
    "no_provenance.html": page(f'{FIGURE}<p>text</p><figure id="fig-b"><img src="_images/a.png"></figure>{PANEL}'
                               '<div class="cell_output"><img src="_images/a.png"></div>'),
    "bad_output.html": page('<div class="cell_output"><pre>Traceback (most recent call last):\n  File "x"\n'
                            'ValueError: boom</pre></div>'
                            '<div class="cell_output"><pre>&lt;Figure size 640x480 with 1 Axes&gt;</pre></div>'
                            '<div class="cell_output"><pre>/x.py:3: UserWarning: careful</pre></div>'
                            '<div class="cell_output"><pre>steps [np.int64(0), np.int64(150)]</pre></div>'),
    "console_error.html": page('<script>console.error("boom from the page")</script>'
                               '<script>null.nope()</script>'),
    "external.html": page('<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"></script>'
                          '<script src="https://example.org/tracker.js"></script>', notebook=False),
    "launch.html": page('<a href="https://colab.research.google.com/github/o/r/blob/main/notebooks/fig2.py">Colab</a>'
                        '<a href="https://colab.research.google.com/github/o/r/blob/main/x.ipynb">fine</a>'),
    "expanded.html": page('<div class="cell tag_hide-input"><details class="hide above-input" open><summary>code'
                          '</summary><div class="cell_input"><pre>x = 1</pre></div></details>'
                          '<div class="cell_output"><pre>ok</pre></div></div>'
                          '<div class="cell tag_hide-input"><details class="hide above-input"><summary>code</summary>'
                          '<div class="cell_input"><pre>y = 2</pre></div></details></div>'),
}
SITE["sub/clean.html"] = page(f'<h2 id="sec">S</h2>{FIGURE.replace("_images/", "../_images/")}{PANEL}'
                              f'<div class="cell_output"><img src="../_images/a.png"></div>{PANEL}'
                              '<a href="../index.html#top">up</a> <a href="#">menu</a>')
SITE["genindex.html"] = page('<a href="nowhere.html">skipped: generated page</a>')


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    for name, text in SITE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "_images").mkdir()
    (root / "_images" / "a.png").write_bytes(PNG)
    (root / "_static").mkdir()
    (root / "_static" / "skipped.html").write_text(page('<a href="nowhere.html">x</a>'))
    with bc.serve(root) as base:
        yield root, base


@pytest.fixture
def load(site, chromium):
    root, base = site
    opened = []

    def _load(name):
        v = bc.visit(chromium, base, name)
        opened.append(v.page)
        return v

    yield _load
    for p in opened:
        p.close()


def all_problems(v, root):
    return (bc.console_problems(v) + bc.image_problems(v) + bc.link_problems(v, root)
            + bc.provenance_problems(v) + bc.output_problems(v) + bc.launch_problems(v) + bc.collapsed_problems(v))


def test_site_pages_skip_generated_pages(site):
    root, _ = site
    assert bc.site_pages(root) == sorted(n for n in SITE if n != "genindex.html")


@pytest.mark.parametrize("name", ["index.html", "sub/clean.html"])
def test_clean_pages_pass_every_check(site, load, name):
    root, _ = site
    assert all_problems(load(name), root) == []


def test_link_checker_catches_missing_page_and_anchor(site, load):
    root, _ = site
    problems = bc.link_problems(load("broken_link.html"), root)
    assert len(problems) == 2, problems
    assert "broken_link.html: link 'missing.html' ('gone') points to a missing page /missing.html" in problems[0]
    assert "missing anchor #nowhere in /index.html" in problems[1]


def test_image_checker_catches_missing_image(load):
    problems = bc.image_problems(load("missing_image.html"))
    assert problems == ["missing_image.html: image #0 (src='_images/missing.png', alt='lost') did not load"]


def test_provenance_checker_catches_figures_without_panel(load):
    problems = bc.provenance_problems(load("no_provenance.html"))
    assert len(problems) == 2, problems
    assert 'figure #1 (id=fig-a) "Figure A" has no provenance panel' in problems[0]
    assert "figure #3 (img src=_images/a.png) has no provenance panel" in problems[1]


def test_provenance_checker_ignores_pages_without_outputs(load):
    assert bc.provenance_problems(load("index.html")) == []


def test_output_checker_catches_traceback_error_warning_and_repr(load):
    problems = bc.output_problems(load("bad_output.html"))
    kinds = [p.split(" shows ")[1].split(":")[0] for p in problems]
    assert kinds == ["a traceback", "an error", "a raw matplotlib figure repr", "a warning",
                     "a raw numpy scalar repr"], problems
    assert problems[0].startswith("bad_output.html: output cell #2 shows a traceback")


def test_console_checker_catches_errors_and_exceptions(load):
    problems = bc.console_problems(load("console_error.html"))
    assert any("console error: boom from the page" in p for p in problems), problems
    assert any("uncaught exception" in p and "null" in p for p in problems), problems


def test_external_requests_are_aborted_and_reported(load):
    v = load("external.html")
    problems = bc.console_problems(v)
    assert "external.html: requests https://example.org/tracker.js (not on this site; the book must read offline)" \
        in problems
    assert any("cdn.jsdelivr.net" in p for p in problems), problems
    assert not v.ignored


def test_launch_checker_catches_colab_link_to_a_py_file(load):
    problems = bc.launch_problems(load("launch.html"))
    assert len(problems) == 1 and "notebooks/fig2.py" in problems[0], problems


def test_collapsed_checker_catches_expanded_plumbing(load):
    v = load("expanded.html")
    assert [c["collapsed"] for c in bc.hidden_input_cells(v)] == [False, True]
    assert bc.collapsed_problems(v) == ["expanded.html: code cell #1 is tagged hide-input but its code is expanded"]
