# labelwise developer targets. `make demo` and `make test` work from a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DATASETS ?= ../shared/datasets

.PHONY: demo test lint venv bench clean browser postgres

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,text]'
	$(PY) -m labelwise.warmup
	touch $(STAMP)

venv: $(STAMP)

## the main job end to end on a real dataset
demo: $(STAMP)
	$(PY) -m labelwise.demo --datasets $(DATASETS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

## headless Chromium for the HTML report's screenshot test (installed when root with apt-get)
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "note: chromium not installed; the report screenshot test will skip"

## Debian's PostgreSQL server binaries for the review tests' throwaway cluster (when root)
postgres:
	@test -x /usr/lib/postgresql/15/bin/initdb || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } \
	  || echo "note: postgresql not installed; the review tests' PostgreSQL cases will skip"

## lint + the whole suite
test: $(STAMP) browser postgres
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) benchmarks/read.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
