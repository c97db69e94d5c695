# Two commands set everything up on a fresh machine:
#   make repro   create .venv if missing, install, run the whole pipeline (dvc repro)
#   make test    create .venv if missing, install, run the whole test suite
# The workflows in .github/ call these same targets.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
# A CPU build of PyTorch installed first: an unpinned torch pulls a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.atriom-installed
PYTEST_ARGS ?=

# DVC stage commands (`atriom run ...`) must find the venv's tools.
export PATH := $(BIN):$(PATH)

.PHONY: help install repro test test-fast lint format compose lock report dvc-pull dvc-push clean

help:
	@echo "make repro      install (if needed) and run the pipeline: dvc repro"
	@echo "make test       install (if needed) and run the whole test suite (slow tests included)"
	@echo "make test-fast  the fast tests only (pytest default selection)"
	@echo "make lint       pre-commit on every file (ruff, YAML/TOML, whitespace, compose --check, actionlint)"
	@echo "make report     metric and param changes against BASE (default origin/main), as Markdown"
	@echo "make compose    regenerate params.yaml from conf/"
	@echo "make lock       record the installed packages in requirements.lock (drift reference)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

repro: install
	$(BIN)/dvc repro
	@echo
	@echo "Results:"
	@echo "  data/reservoir/            environment & resource reports, dataset manifest, videos"
	@echo "  data/conduit/              splits, label map, clip index, previews/"
	@echo "  data/active/metrics.json   test metrics       -> dvc metrics show"
	@echo "  data/active/history.csv    per-epoch curves   -> dvc plots show"
	@echo "  data/active/runs/          run_<timestamp>/best_model_adapters/"
	@echo "  mlflow.db + mlruns/        MLflow runs        -> $(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db"
	@$(BIN)/dvc metrics show

# pytest exits 5 when it collected nothing: a failure, said so plainly.
test: install
	@$(BIN)/python -m pytest -m "" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5): failing." >&2; fi; \
	exit $$rc

test-fast: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/pre-commit run --all-files --show-diff-on-failure

format: install
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

compose: install
	$(BIN)/atriom compose

lock: install
	$(BIN)/atriom lock

# Metric and param changes against another revision, as Markdown (CI posts it on PRs).
BASE ?= origin/main
report: install
	@echo "## Pipeline report"
	@echo
	@echo "### Metrics (vs \`$(BASE)\`)"
	@echo
	@$(BIN)/dvc metrics diff --md --all $(BASE)
	@echo
	@echo "### Params (vs \`$(BASE)\`)"
	@echo
	@$(BIN)/dvc params diff --md $(BASE)

# A DVC remote from the DVC_REMOTE_URL environment variable (CI secret), kept out of git.
dvc-pull: install
	$(BIN)/dvc remote add --local --force --default ci "$$DVC_REMOTE_URL"
	$(BIN)/dvc pull --allow-missing || echo "dvc pull: nothing to pull yet"

dvc-push: install
	$(BIN)/dvc remote add --local --force --default ci "$$DVC_REMOTE_URL"
	$(BIN)/dvc push

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
