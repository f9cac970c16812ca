# The README's two commands. Both create .venv with Python 3.11 and install exact versions.
#   make pipeline   install, run the whole DVC pipeline on the embedded default, print the headline metrics
#   make test       install what the tests need, run the test suite (what CI runs)
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: pipeline test install install-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch==2.13.0 is pinned in requirements.txt: a loose pin would pull several GB of CUDA wheels.
install: $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt -e .
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.txt

install-dev: $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt -r requirements-dev.txt -e .
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.txt

pipeline: install
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc repro
	PATH="$(CURDIR)/$(BIN):$$PATH" vietlegal summary

test: install-dev
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m pytest -q -p no:cacheprovider
