# npc-runtime: the two commands a newcomer needs are `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# quiet: setuptools prints an 'Editable installation' banner for every editable install of a multi-root
# layout (proto/, export/, runtime/); it is informational only
PIP := PYTHONWARNINGS='ignore:Editable installation' $(BIN)/pip -q --disable-pip-version-check
# torch for the `export` extra (make test). From the public index, torch on Linux pulls the CUDA stack
# (several GB); for the CPU build: make test TORCH_PIP_ARGS='--index-url https://download.pytorch.org/whl/cpu'
TORCH_PIP_ARGS ?=
RUNTIME_STAMP := $(VENV)/.runtime-stamp
TEST_STAMP := $(VENV)/.test-stamp

.PHONY: setup setup-runtime demo test clients-test proto bench bench-report clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install --upgrade pip

# The runtime alone: no extras, no torch (the built-in models ship as ready-to-serve packages).
$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	touch $@

# Everything the tests need: torch pinned and installed first, then the export and dev extras.
$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install $(TORCH_PIP_ARGS) torch==2.13.0
	$(PIP) install -e '.[export,dev]'
	touch $@ $(RUNTIME_STAMP)

setup-runtime: $(RUNTIME_STAMP)
setup: $(TEST_STAMP)

demo: $(RUNTIME_STAMP)
	$(BIN)/npcrt demo

# pytest runs everything: the Python suites and, through tests/clients, the C# and C++ client checks.
test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -ra

# The engine-client checks alone (C# under Mono, C++ core + Unreal syntax checks + live-server test).
clients-test: setup
	$(MAKE) -C clients_test PYTHON=$(abspath $(BIN)/python)

proto: setup
	$(BIN)/python proto/generate.py

bench: setup
	$(BIN)/python -m bench.run_all

# README's and docs/performance.md's performance tables, regenerated from bench/results/*.json (stdlib only)
bench-report:
	$(PY) -m bench.report

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
