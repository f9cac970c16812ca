# The README's commands. Each creates .venv if missing and installs exact versions (docs/dependencies.md).
#   make pipeline   the CPU set, then the whole DVC pipeline on the embedded default, then the headline metrics
#   make test       the CPU set and the test tools, Debian's Chromium where it can, then the test suite (CI: .ci/run)
#   make gpu        the whole GPU environment (requirements-gpu.txt: vLLM, Unsloth, torch 2.14.0 for CUDA 13)
# A .venv that holds the GPU environment never gets the CPU set (torch 2.13.0 under vLLM's 2.14.0): there
# `make pipeline` and `make test` install nothing but the test tools and run on what is there.
PYTHON ?= python3.11
# The GPU lock is for Python 3.11 and 3.12 (Ubuntu 24.04 has 3.12).
GPU_PYTHON ?= $(firstword $(shell command -v python3.11 python3.12 2>/dev/null) python3.11)
VENV ?= .venv
BIN := $(VENV)/bin
GPU_MARK := $(VENV)/gpu-environment
# The GPU environment: made by `make gpu`, or vllm installed by hand.
IS_GPU_ENV = [ -e $(GPU_MARK) ] || ls -d $(VENV)/lib/python3*/site-packages/vllm >/dev/null 2>&1
APT_GET ?= apt-get

.PHONY: pipeline test install install-dev gpu browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch==2.13.0 is the CPU build (requirements.txt): a loose pin would pull several GB of CUDA wheels.
install: $(BIN)/python
	@if $(IS_GPU_ENV); then \
	  echo "$(VENV) holds the GPU environment (make gpu): not installing the CPU set over it"; \
	else \
	  command -v nvidia-smi >/dev/null 2>&1 && echo "a CUDA GPU is here: \`make gpu\` installs the GPU environment; this installs the CPU set"; \
	  $(BIN)/pip install -q -r requirements.txt -e . && $(BIN)/pip install -q --no-deps -r requirements-nodeps.txt; \
	fi

install-dev: install
	@if $(IS_GPU_ENV); then \
	  $(BIN)/pip install -q -r requirements-dev.txt -c requirements-gpu.txt; \
	else \
	  $(BIN)/pip install -q -r requirements-dev.txt -c requirements.txt; \
	fi

# One command for a GPU machine (Linux x86-64, NVIDIA driver for CUDA 13): the lock holds every package, xgrammar's
# dependencies included, so nothing else is resolved; the project goes in without dependencies.
gpu:
	@test -x $(BIN)/python || { $(GPU_PYTHON) -m venv $(VENV) && $(BIN)/pip install -q --upgrade pip; }
	$(BIN)/pip install -r requirements-gpu.txt
	$(BIN)/pip install --no-deps -e .
	@touch $(GPU_MARK)
	@echo "GPU environment ready: . $(BIN)/activate, then dvc repro (docs/production.md)"

pipeline: install
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc repro
	PATH="$(CURDIR)/$(BIN):$$PATH" vietlegal summary

# The review page's browser tests drive Debian's headless Chromium: installed here where root or passwordless
# sudo can run apt-get; elsewhere those tests skip and say why (CI sets VIETLEGAL_REQUIRE_BROWSER=1: they fail).
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif command -v $(APT_GET) >/dev/null 2>&1 && { [ "$$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
	  echo "installing Debian's Chromium for the browser tests ($(APT_GET) install chromium)"; \
	  { $$SUDO $(APT_GET) update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq chromium chromium-driver >/dev/null; } \
	    || echo "could not install Chromium: the browser tests will skip, saying why"; \
	else \
	  echo "no Chromium, and no root or passwordless sudo with $(APT_GET) to install it: the browser tests will skip (Debian: apt-get install -y chromium)"; \
	fi

test: install-dev browser
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m pytest -q -p no:cacheprovider
