# The two commands of the README: `make run` and `make test`. Everything they need is set up here:
# a pinned uv in .tools/, the locked virtualenv in .venv/, the dbt manifest the DAGs load.
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
BIN := .venv/bin
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy

CHROMIUM ?= /usr/bin/chromium
REDIS_SERVER ?= /usr/bin/redis-server
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup run test lint typecheck bench clean

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --extra dev --python $(PYTHON)
	touch $@

setup: .venv/.synced
	$(BIN)/vru dbt-parse >/dev/null

## Runs the nightly chain offline: embedded PostgreSQL, the bundled sample, a real Airflow.
run: setup
	$(BIN)/vru run --sample --docs

# The report tests render pages in a real headless browser: Debian's Chromium (Playwright's own
# browser download needs the internet; the package registry is reachable).
$(CHROMIUM):
	@echo "Installing Debian's chromium for the headless browser tests (apt-get, about 35 s)..."
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium >/dev/null
	@test -x $(CHROMIUM) || { echo "chromium was not installed at $(CHROMIUM)"; exit 1; }

# The scale-out test runs Celery workers against a real Redis: Debian's redis-server (the test
# starts its own on a free port; the package's own service is not used).
$(REDIS_SERVER):
	@echo "Installing Debian's redis-server for the Celery test (apt-get)..."
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends redis-server >/dev/null
	@test -x $(REDIS_SERVER) || { echo "redis-server was not installed at $(REDIS_SERVER)"; exit 1; }

## Sets up and runs every test (real PostgreSQL, real Airflow scheduler, real HTTP on 127.0.0.1,
## a real headless browser, a real Redis with two Celery workers).
## The linters and the type checker first (seconds), then the tests; `pytest -m "not e2e"` runs
## the fast ones only.
test: setup lint typecheck $(CHROMIUM) $(REDIS_SERVER)
	VRU_CHROMIUM=$(CHROMIUM) VRU_REDIS_SERVER=$(REDIS_SERVER) $(BIN)/pytest

lint: setup
	$(BIN)/ruff check plugins dags tests benchmarks scripts
	$(BIN)/sqlfluff lint dbt_project/models dbt_project/macros dbt_project/tests

# strict on plugins/vru and plugins/vru_sample (pyproject.toml [tool.mypy])
typecheck: setup
	$(BIN)/mypy

## The loader against psql \copy on 1M synthetic rows (figures go in docs/decisions.md).
bench: setup
	$(BIN)/python benchmarks/load_stop_searches.py

clean:
	-$(BIN)/vru warehouse stop
	rm -rf .venv .tools .vru dbt_project/target dbt_project/logs
