# One task runner: `make demo`, `make check`, `make test`, `make lint`, `make bench`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo check test lint bench bench-reports install test-deps docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## demo: install into .venv and serve the portal with the development identity provider
demo: $(STAMP)
	$(VENV)/bin/launcher demo

## test-deps: Node peers (oidc-provider, axe-core), Chromium and wrk for the whole suite
test-deps: $(STAMP)
	scripts/install-test-deps.sh

## test: install test dependencies and run the whole suite (PostgreSQL tests need the local server)
test: test-deps
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

## lint: ruff (check + format) and mypy --strict, on the code and the tests
lint: $(STAMP)
	$(VENV)/bin/ruff check launcher tests bench
	$(VENV)/bin/ruff format --check launcher tests bench
	$(VENV)/bin/mypy --strict launcher tests

## check: lint, then the fast tests (in process; no browser, oidc-provider, PostgreSQL,
## live server or writer process: those are `make test`)
FAST := not browser and not interop and not postgres and not slow
check: lint
	$(PY) -m pytest -p no:cacheprovider -q -m "$(FAST)" $(PYTEST_ARGS)

## bench: launch throughput against a bare redirect, and what rollup upkeep adds per launch
bench: test-deps
	$(PY) bench/bench_launch.py
	$(PY) bench/bench_upkeep.py

## bench-reports: every report at ten million launches, SQLite and PostgreSQL (about 25 min)
bench-reports: $(STAMP)
	$(PY) bench/bench_reports.py

## docs: regenerate docs/CLI.md and docs/apps.schema.json
docs: $(STAMP)
	$(PY) -m tests.test_cli

clean:
	rm -rf $(VENV) tests/node_modules .mypy_cache .ruff_cache build *.egg-info
