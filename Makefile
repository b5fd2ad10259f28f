# The README's commands. Each target installs what it needs from the committed lock file.
.DEFAULT_GOAL := help
.PHONY: help run test test-fast lint check-defs dev stop dbt clean

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
# dg runs the code location with the project's venv; saying it is active silences its warning.
export VIRTUAL_ENV := $(CURDIR)/$(VENV)

DBT_FLAGS := --project-dir dbt_project --profiles-dir dbt_project
# The browser tests drive Debian's chromium (Playwright's own browser download needs the network).
CHROMIUM := /usr/bin/chromium
MANIFEST := dbt_project/target/manifest.json
DBT_SOURCES := $(shell find dbt_project/models dbt_project/macros dbt_project/tests -type f 2>/dev/null) \
	dbt_project/dbt_project.yml dbt_project/profiles.yml

help:
	@echo "make run [START=YYYY-MM-DD] [END=YYYY-MM-DD] [DOMAIN=name] [VERBOSE=1]"
	@echo "                      materialize every domain (or DOMAIN) for a range, one run per"
	@echo "                      partitions definition; default range: the last 20 KRX sessions"
	@echo "make test             lint, dg check defs, then the whole test suite (what CI runs)"
	@echo "make test-fast        the unit tier only (under 2 minutes)"
	@echo "make lint             ruff, mypy on stock_platform/, sqlfluff on the dbt models"
	@echo "make dev              Dagster webserver + daemon on 127.0.0.1:3000 (PORT=...)"
	@echo "make stop             stop the embedded PostgreSQL server of the data dir"
	@echo "make dbt [DBT_ARGS=...]  dbt build against the local warehouse"
	@echo "make bench [BENCH_ARGS=--quick]  the platform benchmark (bench/results/)"
	@echo "make bench-api        data.go.kr client vs. its rate bound (fake API)"
	@echo "make dataproc-bundle  a release's code and wheels for Dataproc (build/dataproc/)"
	@echo "Data goes to STOCK_PLATFORM_DATA_DIR (default .data/); see README.md for settings."

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
	$(PY) -m stock_platform.cli run $(if $(START),--start $(START)) $(if $(END),--end $(END)) \
		$(if $(DOMAIN),--domain $(DOMAIN)) $(if $(VERBOSE),--verbose)

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check stock_platform tests bench deploy
	$(VENV)/bin/mypy stock_platform
	@# dbt's templater opens the local target: give it an empty warehouse of its own.
	STOCK_PLATFORM_DATA_DIR=$$(mktemp -d) $(VENV)/bin/sqlfluff lint dbt_project/models

# Both environments load offline (gcp settings are only checked when a run needs them).
GCP_OFFLINE := STOCK_PLATFORM_ENV=gcp GCP_PROJECT=offline-check BQ_LOCATION=US GCS_LAKE_URI=gs://offline-check/lake
check-defs: $(MANIFEST)
	$(VENV)/bin/dg check defs
	$(VENV)/bin/dg list defs > /dev/null
	$(GCP_OFFLINE) $(VENV)/bin/dg check defs
	$(GCP_OFFLINE) $(VENV)/bin/dg list defs > /dev/null

test: lint check-defs | $(CHROMIUM)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(MANIFEST)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

dev: $(MANIFEST)
	$(PY) -m stock_platform.cli dev $(if $(PORT),--port $(PORT))

stop: $(VENV)/.synced
	$(PY) -m stock_platform.cli stop

dbt: $(MANIFEST)
	STOCK_PLATFORM_DATA_DIR=$${STOCK_PLATFORM_DATA_DIR:-$(CURDIR)/.data} $(VENV)/bin/dbt build $(DBT_FLAGS) $(DBT_ARGS)

.PHONY: bench bench-api
bench: $(MANIFEST)
	$(PY) bench/pipeline.py $(BENCH_ARGS)

bench-api: $(MANIFEST)
	$(PY) bench/api_ingest.py $(BENCH_ARGS)

# A release's Dataproc code: spark_job.py, stock_platform.zip, the initialization action and the
# job's dependencies as wheels (deploy/README.md, "Spark on Dataproc"). Downloads from PyPI.
.PHONY: dataproc-bundle
dataproc-bundle: $(VENV)/.synced
	$(UV) run --no-sync --with pip python deploy/dataproc/bundle.py build/dataproc

clean:
	rm -rf .data dbt_project/target dbt_project/logs build
