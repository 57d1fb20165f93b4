"""What a reader's browser sees of the built book: one checker per defect, each returning a list of
problems as sentences that name the page and the element (empty when the page is clean).

The checkers run in Chromium through Playwright; ``test_checkers.py`` proves each of them on a
tiny synthetic site with one planted defect of each kind, ``test_book.py`` runs them on every page
of ``_build/html``.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "_build" / "html"  # what `make book` builds
SCREENSHOTS = ROOT / "_build" / "screenshots"

# Pages Sphinx generates that are not the book's content.
SKIP_PAGES = {"genindex.html", "search.html", "py-modindex.html"}
SKIP_DIRS = {"_static", "_sources", "_images", "_downloads"}

# Requests leaving 127.0.0.1 are aborted (the book must not need the network to be read offline;
# the build machine has none). A failed load from one of these hosts is expected and ignored, and
# each is listed with the reason; any other external request is a problem.
EXPECTED_EXTERNAL: dict[str, str] = {}  # MathJax is bundled (sphinx-mathjax-offline): nothing off-site

# Console errors and uncaught exceptions that are known defects of the pinned toolchain, not of this book, each with its
# reason; matched exactly. Delete an entry once its cause is fixed (the lead's, see the report):
# the checks then hold the pages to no error at all.
KNOWN_PAGE_ERRORS: dict[str, str] = {}

# What must never appear in a rendered output cell.
BAD_OUTPUT = [
    (re.compile(r"Traceback \(most recent call last\)"), "a traceback"),
    (re.compile(r"\b\w*Error\b"), "an error"),
    (re.compile(r"\b\w*Warning\b"), "a warning"),
    (re.compile(r"<Figure size [^>]*>"), "a raw matplotlib figure repr"),
    (re.compile(r"<matplotlib[.\w]*[^>]*>"), "a raw matplotlib object repr"),
    (re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>"), "a raw object repr"),
    (re.compile(r"\bnp\.(?:u?int|float|bool_?|str_)\d*\("), "a raw numpy scalar repr"),
]

# The content of a page (pydata-sphinx-theme / sphinx-book-theme: the article; plain Sphinx: body).
CONTENT = ["article.bd-article", "main", "div.body", "body"]
# (tried in this order: the first that exists is the content)

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def site_pages(root: Path) -> list[str]:
    """The HTML pages under ``root`` as site-relative paths, without Sphinx's generated pages."""
    pages = []
    for path in sorted(root.rglob("*.html")):
        rel = path.relative_to(root)
        if rel.parts[0] in SKIP_DIRS or rel.as_posix() in SKIP_PAGES:
            continue
        pages.append(rel.as_posix())
    return pages


# ---------------------------------------------------------------------------------------------
# Serving: a loopback HTTP server on a random port, as a reader's browser would get the pages.

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # noqa: D102 - keep pytest's output for failures
        pass


@contextlib.contextmanager
def serve(root: Path) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1 at a random free port; yields the base URL (ending in ``/``)."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------------------------
# Loading a page and recording what the console says.

@dataclass
class Visit:
    """One page loaded in the browser, with everything the console and the network reported."""
    page_name: str
    url: str
    page: object  # playwright.sync_api.Page
    console_errors: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


def visit(context, base: str, page_name: str) -> Visit:
    """Open ``base + page_name`` in a new tab of ``context``; requests off 127.0.0.1 are aborted
    and recorded, console errors and uncaught exceptions are recorded."""
    page = context.new_page()
    v = Visit(page_name, base + page_name, page)

    def route(r):
        host = _host(r.request.url)
        if host in ("127.0.0.1", "localhost", "") or r.request.url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            v.external.append(r.request.url)
            r.abort("internetdisconnected")

    def on_console(msg):
        if msg.type != "error":
            return
        source = (msg.location or {}).get("url", "")
        host = _host(source)
        if msg.text in KNOWN_PAGE_ERRORS:
            v.ignored.append(f"console error: {msg.text}: {KNOWN_PAGE_ERRORS[msg.text]}")
        elif host in EXPECTED_EXTERNAL:
            v.ignored.append(f"{msg.text} ({source}): {EXPECTED_EXTERNAL[host]}")
        elif source in v.external:
            pass  # an aborted request off the site: reported once, by console_problems
        else:
            v.console_errors.append(f"console error: {msg.text}" + (f" (at {source})" if source else ""))

    page.route("**/*", route)
    page.on("console", on_console)
    def on_pageerror(exc):
        if str(exc.message if hasattr(exc, "message") else exc) in KNOWN_PAGE_ERRORS:
            v.ignored.append(f"uncaught exception: {exc}: {KNOWN_PAGE_ERRORS[str(getattr(exc, 'message', exc))]}")
        else:
            v.console_errors.append(f"uncaught exception: {exc}")

    page.on("pageerror", on_pageerror)
    response = page.goto(v.url, wait_until="load")
    if response is None or not response.ok:
        v.console_errors.append(f"HTTP {response.status if response else 'no response'} for {v.url}")
    page.wait_for_load_state("networkidle")
    return v


# ---------------------------------------------------------------------------------------------
# The checkers.

def console_problems(v: Visit) -> list[str]:
    """Console errors and uncaught exceptions, and any request to a host not in EXPECTED_EXTERNAL."""
    problems = [f"{v.page_name}: {e}" for e in v.console_errors]
    problems += [f"{v.page_name}: requests {u} (not on this site; the book must read offline)"
                 for u in v.external if _host(u) not in EXPECTED_EXTERNAL]
    return problems


_IMAGES_JS = """async (sels) => {
  const root = sels.map(s => document.querySelector(s)).find(e => e);
  const imgs = Array.from(root.querySelectorAll('img'));
  await Promise.all(imgs.map(img => {
    img.loading = 'eager';
    if (img.complete) return null;
    return new Promise(done => { img.addEventListener('load', done); img.addEventListener('error', done); });
  }));
  return imgs.map((img, i) => ({i, src: img.getAttribute('src') || '', alt: img.alt,
                                 ok: img.complete && img.naturalWidth > 0}));
}"""


def image_problems(v: Visit) -> list[str]:
    """Every ``<img>`` in the content has loaded (``naturalWidth > 0``)."""
    images = v.page.evaluate(_IMAGES_JS, CONTENT)
    return [f"{v.page_name}: image #{im['i']} (src={im['src']!r}, alt={im['alt']!r}) did not load"
            for im in images if not im["ok"]]


class _Anchors(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key == "id" or (tag == "a" and key == "name"):
                self.ids.add(value or "")


@functools.lru_cache(maxsize=None)
def _anchors(path: Path) -> frozenset[str]:
    parser = _Anchors()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


def link_problems(v: Visit, root: Path) -> list[str]:
    """Every same-site ``<a href>`` on the page (content, navigation and footer) points to a file
    of the site, and its ``#fragment``, when it has one, to an element id of the target page.
    The fragment is checked in the HTML as served, and on the page itself also in the live DOM."""
    links = v.page.evaluate("""() => Array.from(document.querySelectorAll('a[href]')).map(a => ({
        href: a.getAttribute('href'), url: a.href, text: (a.textContent || '').trim().slice(0, 60)}))""")
    live_ids = set(v.page.evaluate("() => Array.from(document.querySelectorAll('[id]')).map(e => e.id)"))
    base = urlsplit(v.page.url)  # after any redirect (index.html -> intro.html)
    problems, seen = [], set()
    for link in links:
        href, url = link["href"], urlsplit(link["url"])
        if url.scheme not in ("http", "https") or url.netloc != base.netloc or href in ("#", ""):
            continue
        key = (url.path, url.fragment)
        if key in seen:
            continue
        seen.add(key)
        target = root / unquote(url.path).lstrip("/")
        if target.is_dir():
            target = target / "index.html"
        what = f"{v.page_name}: link {href!r} ({link['text']!r})"
        if not target.is_file():
            problems.append(f"{what} points to a missing page {url.path}")
            continue
        fragment = unquote(url.fragment)
        if not fragment or target.suffix != ".html":
            continue
        same_page = url.path == base.path
        if fragment not in _anchors(target) and not (same_page and fragment in live_ids):
            problems.append(f"{what} points to a missing anchor #{fragment} in {url.path}")
    return problems


_FIGURES_JS = """(sels) => {
  const root = sels.map(s => document.querySelector(s)).find(e => e);
  if (!root.querySelector('div.cell, div.cell_output')) return null;   // not a notebook page
  const items = Array.from(root.querySelectorAll('figure, .cell_output img, .output img, details.provenance'));
  const out = [];
  let pending = null, n = 0;
  const describe = (el) => {
    n += 1;
    const fig = el.closest('figure') || el;
    const cap = fig.querySelector('figcaption');
    const label = fig.id || (fig.querySelector('[id]') || {}).id || '';
    return `figure #${n}` + (label ? ` (id=${label})` : '') +
           (cap ? ` "${cap.textContent.trim().replace(/\\s+/g, ' ').slice(0, 70)}"` :
                  ` (img src=${(el.tagName === 'IMG' ? el : el.querySelector('img') || {}).getAttribute?.('src')})`);
  };
  for (const el of items) {
    if (el.matches('details.provenance')) { pending = null; continue; }
    if (el.tagName === 'IMG' && el.closest('figure')) continue;   // counted with its figure
    if (pending) out.push(pending);
    pending = describe(el);
  }
  if (pending) out.push(pending);
  return out;
}"""


def provenance_problems(v: Visit) -> list[str]:
    """On a notebook page (one with output cells), every figure and every image output is followed
    by a ``details.provenance`` panel before the next figure."""
    missing = v.page.evaluate(_FIGURES_JS, CONTENT)
    return [f"{v.page_name}: {m} has no provenance panel (details.provenance) after it, before the next figure"
            for m in (missing or [])]


def output_problems(v: Visit) -> list[str]:
    """No traceback, error, warning or raw object repr in the text of any rendered output cell."""
    texts = v.page.evaluate("""(sels) => Array.from(sels.map(s => document.querySelector(s)).find(e => e)
        .querySelectorAll('.cell_output')).map(e => e.innerText)""", CONTENT)
    problems = []
    for i, text in enumerate(texts):
        for pattern, what in BAD_OUTPUT:
            m = pattern.search(text)
            if m:
                lo, hi = max(0, m.start() - 40), min(len(text), m.end() + 40)
                excerpt = text[lo:hi].replace("\n", " ")
                problems.append(f"{v.page_name}: output cell #{i + 1} shows {what}: ...{excerpt}...")
    return problems


# Launch services that open a notebook file: each must be given a notebook it can open (.ipynb).
LAUNCH_HOSTS = ("colab.research.google.com", "mybinder.org")


def launch_problems(v: Visit) -> list[str]:
    """No launch link (Colab, Binder) that points at a file such a service cannot open (a ``.py``
    or ``.md`` jupytext source)."""
    hrefs = v.page.evaluate("() => Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
    return [f"{v.page_name}: launch link {h} opens a jupytext source, which {_host(h)} cannot open"
            for h in hrefs if _host(h).endswith(LAUNCH_HOSTS) and re.search(r"\.(py|md)(?:$|[?#&])", unquote(h))]


_HIDDEN_INPUT_JS = """() => Array.from(document.querySelectorAll('.cell.tag_hide-input')).map((c, i) => {
  const input = c.querySelector('.cell_input');
  const details = input ? input.closest('details') : null;
  return {i: i + 1, input: !!input, collapsed: !!details && !details.open && !input.checkVisibility()};
})"""


def hidden_input_cells(v: Visit) -> list[dict]:
    """The cells tagged ``hide-input`` on the page, each with whether its code is collapsed."""
    return v.page.evaluate(_HIDDEN_INPUT_JS)


def collapsed_problems(v: Visit) -> list[str]:
    """Every cell tagged ``hide-input`` (plumbing) shows its output with its code collapsed."""
    return [f"{v.page_name}: code cell #{c['i']} is tagged hide-input but its code is "
            f"{'missing' if not c['input'] else 'expanded'}" for c in hidden_input_cells(v) if not c["collapsed"]]
