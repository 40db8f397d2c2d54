# Every target creates or reuses .venv and installs the project into it first,
# so `make demo` and `make test` are the only steps a fresh machine needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint demo fuzz clean browser

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,model,bench]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check camelid tests bench

# The status-page test drives Debian's headless Chromium; install it when missing and we may.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } || \
		echo "chromium not installed: the status-page test will try again or skip"

test: lint browser
	$(BIN)/python -m pytest -q -ra

fuzz: $(STAMP)
	CAMELID_FUZZ_EXAMPLES=20000 $(BIN)/python -m pytest -q tests/test_p2p_fuzz.py

demo: $(STAMP)
	$(BIN)/python -m camelid.demo

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
