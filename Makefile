# shop-search: `make run` serves the shop; `make test` runs the suite. Both install first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: install install-dev run test bench lint clean-data

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

$(VENV)/.installed: pyproject.toml requirements/offline-assets.txt
	@echo "run: installing dependencies into $(VENV) (the first time takes a few minutes)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: a bare `torch` would resolve to a multi-GB CUDA build.
	$(PIP) install torch==2.13.0
	$(PIP) install -e .
	$(PIP) install --no-deps -r requirements/offline-assets.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -e '.[dev]'
	touch $@

run: install
	$(PY) -m shop_search.launcher

test: install-dev lint
	bash scripts/test.sh

bench: install-dev
	bash scripts/bench.sh

# Style, types and shell scripts; any finding fails (make test runs this first).
lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/shellcheck -x scripts/*.sh

# The only thing that forgets the shop's data (database, photos, queue, logs).
clean-data:
	rm -rf .data
