"""Real-browser checks of the built book: Debian's Chromium driven by Playwright.

Kept out of the default ``pytest`` run (``make test``): this folder is collected only when it is
named on the command line, as ``make check-book`` does (``pytest tests/browser``). Playwright is
imported only then, so ``make test`` needs neither it nor a browser.

Why Playwright: its pip wheel carries its own driver, so nothing is downloaded at run time; it
drives any Chromium given by ``executable_path`` (Debian's, since Playwright's own browser download
does not work offline); and it reports console messages, uncaught exceptions and requests as
events, takes full-page screenshots and can abort requests off the loopback. Selenium would need
chromium-driver too and has no console/request events for Chromium without BiDi.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _requested(config) -> bool:
    for arg in config.args:
        path = Path(arg.split("::")[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path, config):
    """Collect the browser checks only when tests/browser (or a file in it) is named explicitly."""
    if not _requested(config):
        return True
    return None


@pytest.fixture(scope="session")
def chromium():
    """A headless Chromium (``$RMED_CHROMIUM``, default /usr/bin/chromium) with a fresh profile."""
    from playwright.sync_api import sync_playwright

    from book_checks import CHROMIUM_ARGS

    executable = os.environ.get("RMED_CHROMIUM", "/usr/bin/chromium")
    if not Path(executable).exists():
        pytest.fail(f"no Chromium at {executable}: `make check-book` installs Debian's chromium "
                    f"(apt-get install -y chromium), or set RMED_CHROMIUM")
    with tempfile.TemporaryDirectory(prefix="rmed-chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=executable, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900}, device_scale_factor=1, service_workers="block")
        try:
            yield context
        finally:
            context.close()
