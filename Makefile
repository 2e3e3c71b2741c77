# c360 — every target sets itself up first (virtualenv, Python packages, JVM jars).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.c360-installed
JAR_STAMP := .jars/.resolved
# Apache Airflow in its own virtualenv (its pins clash with ours): the DAG test imports the DAG there.
AIRFLOW_VENV := .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.c360-installed
RUN_DATE ?= $(shell date -u +%F)
SAMPLE := data/sample
SCALE ?= S
EDGES ?= 1M 10M
export PYSPARK_PYTHON := $(abspath $(BIN)/python)

.PHONY: setup airflow run test test-fast bench bench-graph dist lock clean

setup: $(PY_STAMP) $(JAR_STAMP)

$(PY_STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || command -v $(PYTHON) >/dev/null \
	  || { echo "error: $(PYTHON) not found: c360 needs Python 3.11 (or: make PYTHON=/path/to/python3.11 setup)" >&2; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

# Delta's jars with the Ivy inside pyspark (no Maven), checked against the sha256 pins.
$(JAR_STAMP): $(PY_STAMP) jvm/jars.lock jvm/resolve.sh
	C360_PYTHON=$(BIN)/python bash jvm/resolve.sh

airflow: $(AIRFLOW_STAMP)

$(AIRFLOW_STAMP): deploy/airflow/requirements.lock $(PY_STAMP)
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install -q --disable-pip-version-check -r deploy/airflow/requirements.lock
	touch $@

# Small deterministic sample, then the whole nightly on the embedded warehouse (./warehouse).
run: setup
	$(BIN)/c360 generate --out $(SAMPLE) --profiles 2000 --days 120 --seed 7 --run-date $(RUN_DATE) --force
	$(BIN)/c360 nightly --input $(SAMPLE) --run-date $(RUN_DATE)

test: setup airflow
	$(BIN)/pytest -q --durations=20

# The inner loop: unit and Spark tests in this process; no end-to-end nightly, no subprocess.
test-fast: setup
	$(BIN)/pytest -q -m "not slow and not subprocess"

bench: setup
	$(BIN)/python -m bench.run --scale $(SCALE)

# B1: connected components on 1M/10M-edge graphs vs scipy and a two_phase re-implementation.
bench-graph: setup
	$(BIN)/python -m bench.b1_stitch --edges $(EDGES) --methods distributed default driver graphframes

# Source archive for spark-submit --py-files (see README).
dist: setup
	$(BIN)/python -m jobs.dist dist/c360.zip

lock:
	$(BIN)/pip freeze --exclude-editable | sed '1i # Exact versions installed by `make setup` (pip freeze of a working venv). Regenerate with `make lock`.' > requirements.lock

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) .jars .ivy warehouse data/sample dist
