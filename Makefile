# The project's vocabulary: run, test, lint, bench, broker.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run demo test test-unit test-integration lint format broker broker-stop clean bench

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The main job: broker + worker + simulated orders with live progress, until Ctrl-C.
run: install
	$(BIN)/orderstream run

## Bounded run: N orders, a summary table, exit 0 only if the invariants hold.
demo: install
	$(BIN)/orderstream demo --orders $${ORDERS:-5000}

test: install
	$(BIN)/pytest -q

test-unit: install
	$(BIN)/pytest -q tests/unit

test-integration: install
	$(BIN)/pytest -q -m integration

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## The benchmark on a dedicated local broker: table on stdout, figures in bench/results/latest.json.
## BENCH_ARGS passes options, e.g. BENCH_ARGS="--quick" or "--only throughput,raw --profile".
QUIX_VENV := var/bench-quix-venv
$(QUIX_VENV)/.installed: bench/requirements-quix.txt
	$(PY) -m venv $(QUIX_VENV)
	$(QUIX_VENV)/bin/pip install -q --upgrade pip
	$(QUIX_VENV)/bin/pip install -q -r bench/requirements-quix.txt
	touch $@

bench: install $(QUIX_VENV)/.installed
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench.run --quix-python $(QUIX_VENV)/bin/python $(BENCH_ARGS)

broker: install
	$(BIN)/orderstream broker start

broker-stop: install
	$(BIN)/orderstream broker stop

clean:
	rm -rf var .mypy_cache .ruff_cache .pytest_cache
