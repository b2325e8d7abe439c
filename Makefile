# The README's two commands: `make dev` (run the product locally) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STATE ?= .state

.PHONY: drills install lint typecheck unit integration e2e test bench dev stack-up stack-down clean

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
	$(BIN)/mypy tradesignals_dagster bench tests/unit tests/integration tests/guide_blocks.py
	$(BIN)/mypy tests/e2e
	for app in pipelines/*/app.py; do $(BIN)/mypy $$app || exit 1; done

unit: install
	$(BIN)/pytest tests/unit -q

integration: install
	$(BIN)/pytest tests/integration -q

# The product as its users meet it: `dg` against the project, and the Dagster UI in headless
# Chromium (/usr/bin/chromium; screenshots in test-results/).
e2e: install
	$(BIN)/pytest tests/e2e -q

# Lint, types, then every test, fault drills and the browser test included; integration and e2e
# tests start their own Kafka brokers, schema registry, ClickHouse endpoint, S3 server and
# dockerd on free loopback ports, the e2e browser test also `tradesignals dev`.
test: lint typecheck
	$(BIN)/pytest tests -q

# The fault drills alone, with what each measured printed (also part of `make test`).
drills: install
	$(BIN)/pytest tests -q -m drill -s

bench: install
	$(BIN)/pip install -q -e '.[dev,bench]'
	eval "$$(scripts/dockerd.sh)" && $(PY) -m bench.run

stack-up: install
	$(BIN)/tradesignals stack up

stack-down: install
	$(BIN)/tradesignals stack down

dev: install
	$(BIN)/tradesignals dev

# Pipeline images for the docker runtime (starts the private Docker engine if needed).
images: install
	eval "$$(scripts/dockerd.sh)" && $(BIN)/tradesignals images build

dockerd:
	@scripts/dockerd.sh

clean:
	-$(BIN)/tradesignals stack down
	rm -rf $(STATE) build *.egg-info
