"""Every page of the built book (``_build/html``, from ``make book``), as a reader's browser shows it.

Each page is loaded once (served over 127.0.0.1, requests off the site aborted); each check is a
separate test per page, so a failure names the check, the page and the element.
"""
from __future__ import annotations

import pytest

import book_checks as bc
from book_checks import SCREENSHOTS, SITE

PAGES = bc.site_pages(SITE) if SITE.is_dir() else []
# Full-page screenshots: the opening page, the theorem's page and one experiment's page.
SCREENSHOT_PAGES = {"intro.html": "intro.png", "notebooks/theorem.html": "theorem.png",
                    "notebooks/fig3.html": "fig3.png"}


def test_book_was_built():
    assert PAGES, f"no HTML pages under {SITE}: run `make book` first (`make check-book` does)"
    for name in SCREENSHOT_PAGES:
        assert name in PAGES, f"{name} is not in the built book; pages: {PAGES}"


@pytest.fixture(scope="module")
def base():
    with bc.serve(SITE) as url:
        yield url


@pytest.fixture(scope="module")
def visits(base, chromium):
    """Pages loaded so far, by name: each is loaded once and checked by every test."""
    opened: dict[str, bc.Visit] = {}
    yield lambda name: opened.setdefault(name, bc.visit(chromium, base, name))
    for v in opened.values():
        v.page.close()


def _report(problems: list[str]) -> str:
    return f"{len(problems)} problem(s):\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("name", PAGES)
def test_no_console_errors(visits, name):
    v = visits(name)
    problems = bc.console_problems(v)
    assert not problems, _report(problems)
    for line in v.ignored:
        print(f"ignored on {name}: {line}")


@pytest.mark.parametrize("name", PAGES)
def test_images_load(visits, name):
    problems = bc.image_problems(visits(name))
    assert not problems, _report(problems)


@pytest.mark.parametrize("name", PAGES)
def test_internal_links_resolve(visits, name):
    problems = bc.link_problems(visits(name), SITE)
    assert not problems, _report(problems)


@pytest.mark.parametrize("name", PAGES)
def test_every_figure_has_provenance(visits, name):
    problems = bc.provenance_problems(visits(name))
    assert not problems, _report(problems)


@pytest.mark.parametrize("name", PAGES)
def test_outputs_are_clean(visits, name):
    problems = bc.output_problems(visits(name))
    assert not problems, _report(problems)


@pytest.mark.parametrize("name", PAGES)
def test_no_launch_link_to_a_jupytext_source(visits, name):
    problems = bc.launch_problems(visits(name))
    assert not problems, _report(problems)


NOTEBOOKS = sorted(p.stem for p in (bc.ROOT / "notebooks").glob("*.py"))


def _tagged_hide_input(notebook: str) -> int:
    import jupytext

    nb = jupytext.read(bc.ROOT / "notebooks" / f"{notebook}.py")
    return sum("hide-input" in c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_plumbing_is_collapsed(visits, notebook):
    """Every code cell tagged hide-input in the source is on its page, with its code collapsed."""
    name = f"notebooks/{notebook}.html"
    assert name in PAGES, f"{name} is not in the built book"
    v = visits(name)
    problems = bc.collapsed_problems(v)
    assert not problems, _report(problems)
    expected = _tagged_hide_input(notebook)
    assert expected > 0, f"notebooks/{notebook}.py tags no cell hide-input: its plumbing shows before its claims"
    assert len(bc.hidden_input_cells(v)) == expected, f"{name}: {expected} cells tagged hide-input in the source"


def test_data_page_lists_every_data_set(visits):
    """The data page is in the book and its table names every data set of rmed_core.data.LICENCES."""
    from rmed_core.data import LICENCES

    assert "data.html" in PAGES, f"data.html is not in the built book; pages: {PAGES}"
    text = visits("data.html").page.inner_text("article.bd-article")
    missing = [v["name"] for v in LICENCES.values() if v["name"] not in text]
    assert not missing, f"data.html does not list {missing}"
    for phrase in ("personal", "CC BY-SA 3.0", "MIT", "10,662"):
        assert phrase in text, f"data.html does not say {phrase!r}"


@pytest.mark.parametrize("name, n_figures", [("notebooks/theorem.html", 2), ("notebooks/fig3.html", 1)])
def test_figure_pages_show_their_figures(visits, name, n_figures):
    """The figure pages the screenshots cover really have figures (so the provenance check bites)."""
    v = visits(name)
    n = v.page.evaluate("() => document.querySelectorAll('article.bd-article figure img').length")
    assert n >= n_figures, f"{name}: expected {n_figures} glued figure(s), found {n} figure images"


@pytest.mark.parametrize("name", list(SCREENSHOT_PAGES))
def test_screenshot(visits, name):
    """Full-page screenshots to _build/screenshots/, for a person to look at."""
    v = visits(name)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    out = SCREENSHOTS / SCREENSHOT_PAGES[name]
    v.page.screenshot(path=str(out), full_page=True)
    assert out.stat().st_size > 10_000, f"{out}: screenshot of {name} is nearly empty"
    print(f"screenshot of {name}: {out}")
