# CreditFlow: `make run` sets up everything and serves the API; `make test` runs lint and tests.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# Contracts: LibreOffice (kept warm) for PDF/A, CJK fonts, poppler for checks, NSS tools for pdfsig's trust store.
APT_PACKAGES := libreoffice-writer-nogui python3-uno fonts-noto-cjk fonts-liberation2 poppler-utils libnss3-tools

.PHONY: run test lint install system-packages bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "CreditFlow needs Python 3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Installs the Debian packages when it can (root with apt-get); otherwise says exactly what is missing.
system-packages:
	@if command -v soffice >/dev/null && command -v pdftotext >/dev/null && command -v certutil >/dev/null \
		&& fc-list | grep -q "Noto Serif CJK" && /usr/bin/python3 -c "import uno" 2>/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	else \
		echo "Contracts need Debian packages that are missing. Install them with:"; \
		echo "  sudo apt-get install --no-install-recommends $(APT_PACKAGES)"; exit 1; \
	fi

run: install system-packages
	$(BIN)/creditflow db upgrade
	$(BIN)/creditflow catalog load
	$(BIN)/creditflow demo seed
	$(BIN)/creditflow pki init
	$(BIN)/creditflow serve

lint: install
	$(BIN)/ruff check .

test: lint system-packages
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/engine_throughput.py
	$(BIN)/python bench/engine_phases.py
	$(BIN)/python bench/inbox.py
	$(BIN)/python bench/escalation.py
	$(BIN)/python bench/documents.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
