# One entry point for every task. Targets create .venv on first use, so a fresh machine with Python needs
# nothing else installed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check bench lint format clean

# Every package is installed at the exact version the pins files name (the runtime closure the image also
# installs, and the test tools'), so a fresh clone tests what was tested, whatever PyPI published since.
CONSTRAINTS := deploy/image/constraints.txt tests/constraints.txt
PIP_VERSION := 26.3

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet 'pip==$(PIP_VERSION)'
	$(BIN)/python -m pip install --quiet $(addprefix --constraint ,$(CONSTRAINTS)) -e '.[test]'
	touch $(STAMP)

## run: start both emulators and the operator, apply examples/, and keep running until Ctrl-C
run: $(STAMP)
	$(BIN)/python -m local_stack

## test: the whole test suite
test: $(STAMP)
	$(BIN)/python -m pytest

## check: lint, format check, strict typing and the layering contracts
check: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

## bench: speed and memory figures of the emulators and the operator
bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info
