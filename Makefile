# The two commands: `make run` (serve the console with its worker and beat on the embedded
# defaults) and `make test` (the whole suite on real PostgreSQL, Redis and Chromium).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install install-dev system-libs services browser lint typecheck security pytest pytest-quick migrate demo demo-usage clean

$(VENV)/bin/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3-venv is missing: installing it (Debian)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install -q -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@

install: system-libs $(VENV)/.installed
install-dev: system-libs $(VENV)/.installed-dev

# WeasyPrint (PDF invoices) needs Pango, HarfBuzz, fontconfig and a font from the system: the
# Debian packages are installed only when one is missing, and only where dpkg is.
PDF_DEB_PACKAGES := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 libfontconfig1 fonts-dejavu-core
system-libs:
	@if command -v dpkg-query >/dev/null 2>&1; then \
	  missing=$$(for p in $(PDF_DEB_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "Installing the system libraries for PDFs:" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  fi; \
	else echo "No dpkg here: install Pango, HarfBuzz and fontconfig yourself for PDF invoices (WeasyPrint)."; fi

migrate: install
	@mkdir -p var
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py demo

# With `make run` going, in another terminal: usage that takes the demo balance below the alert threshold.
demo-usage:
	$(PY) manage.py demo_usage

# The localstripe stand-in that `make run` starts for card payments (pinned in requirements-dev.txt).
.PHONY: localstripe
localstripe: $(VENV)/.installed
	@$(PY) -c "import localstripe" 2>/dev/null || $(PY) -m pip install -q "$$(grep -i '^localstripe==' requirements-dev.txt)"

run: demo localstripe
	@echo ""
	@echo "  Serving the console at http://$(HOST):$(PORT)/ with a Celery worker, beat and localstripe, a stand-in for Stripe (Ctrl-C stops them all)."
	@echo "  Demo login: demo@example.com / demo-console-2026   ·   emails: printed here and kept in var/mail.log"
	@echo ""
	@# Links in emails (invitations, alerts) point at this server unless CONSOLE_SITE_URL says otherwise.
	HOST=$(HOST) PORT=$(PORT) CONSOLE_SITE_URL=$${CONSOLE_SITE_URL:-http://$(HOST):$(PORT)} $(VENV)/bin/honcho -f deploy/Procfile.dev -d . start

# --- tests ------------------------------------------------------------------------------------
services:
	@bash .ci/services.sh

browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# Real nginx for tests/gateway (the deploy/nginx sample behind auth_request).
.PHONY: nginx
nginx:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { apt-get update -qq && { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx; }; }

lint: install-dev
	$(VENV)/bin/ruff check .
	DJANGO_SETTINGS_MODULE=console.settings.test $(PY) manage.py makemigrations --check --dry-run

typecheck: install-dev
	$(VENV)/bin/mypy

# Static security analysis of the application code (tests, migrations and bench/ are not shipped).
# Clean, or each exception justified inline: `# nosec BXXX` next to ruff's `# noqa: S… -- why`.
.PHONY: security
security: install-dev
	$(VENV)/bin/bandit -q -r billing console orgs projects manage.py -x '*/tests/*,*/migrations/*'

# Our own redis-server for tests/gateway/test_faults.py (it kills and restarts it on a free port).
.PHONY: redis-server
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }

pytest: install-dev services browser nginx redis-server
	$(VENV)/bin/pytest

# Quick loop: no browser tests, no contract fuzzing or fault injection (`make test` runs them all).
pytest-quick: install-dev services
	$(VENV)/bin/pytest -m "not browser and not slow"

test: install-dev services browser lint typecheck security pytest

# Benchmarks (not tests): gunicorn on PostgreSQL + Redis, ratios against a baseline of the same run.
.PHONY: bench
bench: install-dev services
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
	$(PY) bench/authorize.py
	$(PY) bench/ratelimits.py
	$(PY) bench/ingest.py
	$(PY) bench/enforcement_lag.py
	$(PY) bench/hot_org.py
	@# P2, P4, P6 (builds <db>_history with 10M events once, kept for the next run), then ingest vs COPY on it.
	$(PY) bench/usage_scale.py
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}_history $(PY) bench/ingest.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache test-artifacts
