# Every target creates or reuses .venv and installs the project into it first,
# so `make demo` and `make test` are the only steps a fresh machine needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint demo bench fuzz clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,model,bench]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check camelid tests bench

test: lint
	$(BIN)/python -m pytest -q -ra

fuzz: $(STAMP)
	CAMELID_FUZZ_EXAMPLES=20000 $(BIN)/python -m pytest -q tests/test_p2p_fuzz.py

demo: $(STAMP)
	$(BIN)/python -m camelid.demo

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
