# The README's commands. Each target installs what it needs from the committed lock file.
.DEFAULT_GOAL := help
.PHONY: help run test dev dbt clean

PYTHON ?= python3
UV_VERSION := 0.13.9
# Use the machine's uv if there is one, else a private copy installed from PyPI.
UV := $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python
export UV_PYTHON_DOWNLOADS := never
# Install .pyc files: without them (and with PYTHONDONTWRITEBYTECODE set, as on CI) every process
# recompiles dagster, dbt and pandas from source, seconds per process.
export UV_COMPILE_BYTECODE := 1
export UV_PROJECT_ENVIRONMENT := $(VENV)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

DBT_FLAGS := --project-dir dbt_project --profiles-dir dbt_project
# The browser tests drive Debian's chromium (Playwright's own browser download needs the network).
CHROMIUM := /usr/bin/chromium
MANIFEST := dbt_project/target/manifest.json
DBT_SOURCES := $(shell find dbt_project/models dbt_project/macros dbt_project/tests -type f 2>/dev/null) \
	dbt_project/dbt_project.yml dbt_project/profiles.yml

help:
	@echo "make run [START=YYYY-MM-DD END=YYYY-MM-DD]  materialize the whole graph for a range"
	@echo "make test                                   the test suite"
	@echo "make dev                                    Dagster webserver + daemon on 127.0.0.1:3000"
	@echo "make dbt [DBT_ARGS=...]                     dbt build against the local warehouse"
	@echo "make bench [BENCH_ARGS=--quick]             the platform benchmark (about 25 min; bench/results/)"
	@echo "make bench-api                              data.go.kr client vs. its rate bound (fake API)"

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@

$(MANIFEST): $(VENV)/.synced $(DBT_SOURCES)
	$(VENV)/bin/dbt parse $(DBT_FLAGS) --quiet

$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else \
		echo "note: tests/test_ui.py needs $(CHROMIUM): run 'sudo apt-get install -y chromium'" \
			"(Debian/Ubuntu) or run make test as root; without it the browser tests fail." >&2; \
	fi

run: $(MANIFEST)
	$(PY) -m stock_platform.cli run $(if $(START),--start $(START)) $(if $(END),--end $(END))

test: $(MANIFEST) | $(CHROMIUM)
	$(PY) -m pytest $(PYTEST_ARGS)

dev: $(MANIFEST)
	$(PY) -m stock_platform.cli dev

dbt: $(MANIFEST)
	STOCK_PLATFORM_DATA_DIR=$${STOCK_PLATFORM_DATA_DIR:-$(CURDIR)/.data} $(VENV)/bin/dbt build $(DBT_FLAGS) $(DBT_ARGS)

.PHONY: bench bench-api
bench: $(MANIFEST)
	$(PY) bench/pipeline.py $(BENCH_ARGS)

bench-api: $(MANIFEST)
	$(PY) bench/api_ingest.py $(BENCH_ARGS)

clean:
	rm -rf .data dbt_project/target dbt_project/logs
