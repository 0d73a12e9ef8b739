# ocpi-bridge: `make run` starts the bridge with the example site, `make test` runs every check.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint typecheck imports pytest clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: install Python 3.11+ or run 'make PYTHON=python3 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

run: $(STAMP)
	@mkdir -p var
	$(BIN)/ocpi-bridge serve --site examples/site.toml

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck imports pytest

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache

# Benchmarks (docs/benchmarks.md): each scenario median of 3 runs, a few minutes each.
.PHONY: bench-connections bench-ingest bench-push bench-reads bench-cdrs bench-all bench-smoke bench-report

bench-connections: $(STAMP)
	$(BIN)/python -m bench connections --runs 3 --hold 30

bench-ingest: $(STAMP)
	$(BIN)/python -m bench ingest --runs 3 --duration 15

bench-push: $(STAMP)
	$(BIN)/python -m bench push --runs 3

bench-reads: $(STAMP)
	$(BIN)/python -m bench reads --runs 3

bench-cdrs: $(STAMP)
	$(BIN)/python -m bench cdrs --runs 3

bench-all: bench-ingest bench-push bench-cdrs bench-reads bench-connections

bench-smoke: $(STAMP)
	$(BIN)/pytest tests/bench

bench-report: $(STAMP)
	$(BIN)/python -m bench report
