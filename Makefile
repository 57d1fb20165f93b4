# Two commands do all the set-up: `make book` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.installed
export PATH := $(BIN):$(PATH)

.PHONY: venv data book test check-book lock clean

venv: $(STAMP)

# The environment: pinned by constraints.txt (the versions the book was built with); environment.yml
# gives the same one with conda (tests/test_packaging.py checks that the two agree).
# BackPACK and PyHessian are benchmark peers; BackPACK declares torchvision, which it does not
# import, so both are installed without their declared dependencies. The polarity data is fetched
# on first use (rmed_core.data.sentences), not here.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "constraints.txt is locked for Python 3.11: run make PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -c constraints.txt backpack-for-pytorch pyhessian
	touch $(STAMP)

# `jupyter-book build book` alone is enough: the book's own Sphinx extension (book/_ext/fresh_outputs.py)
# re-executes every page when rmed_core changed, and copies the book's static files.
book: $(STAMP)
	$(BIN)/jupyter-book build book -W -n --keep-going

# Fashion-MNIST, the image control that does not interpolate, is Debian's dataset-fashion-mnist
# (rmed_core.data.images.fashion_mnist; or a copy named by $RMED_FASHION_MNIST); the control's
# reproduction test retrains one of its runs. Installed here when missing (CI runs as root).
FASHION ?= /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
data:
	@if [ -z "$$RMED_FASHION_MNIST" ] && [ ! -f "$(FASHION)" ]; then \
		echo "installing Debian's dataset-fashion-mnist"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y dataset-fashion-mnist || { apt-get update && apt-get install -y dataset-fashion-mnist; }; fi

# The unit tests and every notebook at ci scale (nbval), then every docstring example of the package.
test: $(STAMP) data
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest --doctest-modules rmed_core

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
	{ echo "# python $$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"; \
	  $(BIN)/python -m pip freeze --exclude-editable | sed -e 's/+cpu$$//'; } > constraints.txt

clean:
	rm -rf _build
