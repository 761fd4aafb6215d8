# CreditFlow: `make run` sets up everything and serves the API; `make test` runs lint and tests.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint install bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "CreditFlow needs Python 3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/creditflow db upgrade
	$(BIN)/creditflow catalog load
	$(BIN)/creditflow demo seed
	$(BIN)/creditflow serve

lint: install
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/engine_throughput.py
	$(BIN)/python bench/inbox.py
	$(BIN)/python bench/escalation.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
