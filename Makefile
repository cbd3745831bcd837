# npc-runtime: the two commands a newcomer needs are `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test clients-test proto bench clean

setup: $(STAMP)

# torch is pinned and installed first: an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[export,dev]'
	touch $(STAMP)

demo: setup
	$(BIN)/npcrt demo

# pytest runs everything: the Python suites and, through tests/clients, the C# and C++ client checks.
test: setup
	$(BIN)/python -m pytest -q -ra

# The engine-client checks alone (C# under Mono, C++ core + Unreal syntax checks + live-server test).
clients-test: setup
	$(MAKE) -C clients_test PYTHON=$(abspath $(BIN)/python)

proto: setup
	$(BIN)/python proto/generate.py

bench: setup
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
