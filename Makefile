# GLCF: `make help` lists the targets. Every target creates the environment first if it is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.8
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synced-$(shell cat uv.lock pyproject.toml | cksum | cut -d' ' -f1)
export UV_PYTHON_DOWNLOADS := never
# uv runs from the system's Python: the environment's own comes first on PATH below and has no uv
SYSTEM_PYTHON := $(shell command -v python3)
# dvc.yaml runs `glcf stage ...`: the environment's tools come first on PATH
export PATH := $(CURDIR)/$(BIN):$(PATH)
CATEGORY ?= pushpins
PORT ?= 5001

.PHONY: help install demo flow test test-fast lint format serve ui infra-up infra-down

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# --compile-bytecode: each pipeline stage is a new process that imports torch, timm, scikit-learn and
# MLflow; compiled once here, not at every start (always, where PYTHONDONTWRITEBYTECODE is set).
$(STAMP):
	@$(SYSTEM_PYTHON) -m uv --version >/dev/null 2>&1 || $(SYSTEM_PYTHON) -m pip install --quiet "uv==$(UV_VERSION)"
	$(SYSTEM_PYTHON) -m uv sync --frozen --all-groups --extra ray --extra peers --extra export --compile-bytecode
	@rm -f $(VENV)/.synced-* && touch $@

install: $(STAMP) ## create or update the virtual environment from uv.lock

demo: $(STAMP) ## the main job: dvc repro of the whole pipeline on the embedded default data
	dvc repro
	glcf report

flow: $(STAMP) ## the same pipeline as Prefect flows (local mode unless PREFECT_API_URL is set)
	glcf flow

serve: $(STAMP) ## serve the champion of CATEGORY on 127.0.0.1:PORT
	glcf serve --category $(CATEGORY) --port $(PORT)

ui: $(STAMP) ## the MLflow UI on the local store (127.0.0.1:5000)
	mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

infra-up: $(STAMP) ## start the local team stack (PostgreSQL, S3, MLflow, Prefect) as plain processes
	python infra/local/stack.py up

infra-down: $(STAMP) ## stop the local team stack
	python infra/local/stack.py down

test: $(STAMP) ## run the whole test suite (unit + integration on loopback)
	$(BIN)/pytest

test-fast: $(STAMP) ## unit tests only
	$(BIN)/pytest -m "not integration and not slow"

lint: $(STAMP) ## ruff check
	$(BIN)/ruff check .

format: $(STAMP) ## ruff format + import sort
	$(BIN)/ruff check --fix --select I .
	$(BIN)/ruff format .
