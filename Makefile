# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# The suite runs every storage test on SQLite and on this PostgreSQL.
PIMBOT_TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/test
export PIMBOT_TEST_DATABASE_URL

.PHONY: demo test lint typecheck unit clean

# Editable, mode compat: the checkout itself goes on sys.path, so the stand-ins (stand_ins/,
# not in the pimbot wheel) are importable next to pimbot for `make demo` and the tests.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,emulator]' --config-settings editable_mode=compat
	touch $@

demo: $(BIN)/.installed
	$(BIN)/pimbot demo

lint: $(BIN)/.installed
	$(BIN)/ruff check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

unit: $(BIN)/.installed
	$(BIN)/pytest -n auto

test: lint typecheck unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
