# The README's two commands: `make dev` (run the product locally) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STATE ?= .state

.PHONY: install lint typecheck unit integration test bench dev stack-up stack-down clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy tradesignals_dagster bench tests
	for app in pipelines/*/app.py; do $(BIN)/mypy $$app || exit 1; done

unit: install
	$(BIN)/pytest tests/unit -q

integration: install
	$(BIN)/pytest tests/integration -q

# Lint, types, then every test; integration tests start their own Kafka broker and schema
# registry on free loopback ports.
test: lint typecheck
	$(BIN)/pytest tests -q

bench: install
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(PY) -m bench.run

stack-up: install
	$(BIN)/tradesignals stack up

stack-down: install
	$(BIN)/tradesignals stack down

dev: install
	$(BIN)/tradesignals dev

clean:
	-$(BIN)/tradesignals stack down
	rm -rf $(STATE) build *.egg-info
