# Two commands do all the set-up: `make book` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.installed
export PATH := $(BIN):$(PATH)

.PHONY: venv book test lock clean

venv: $(STAMP)

# The environment: pinned by constraints.txt (the versions the book was built with).
# BackPACK and PyHessian are benchmark peers; BackPACK declares torchvision, which it
# does not import, so both are installed without their declared dependencies.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -c constraints.txt backpack-for-pytorch pyhessian
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build book -W -n --keep-going

test: $(STAMP)
	$(BIN)/python -m pytest

# Refresh the lock file from the current environment.
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | sed -e 's/+cpu$$//' > constraints.txt

clean:
	rm -rf _build
