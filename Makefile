# GLCF: `make help` lists the targets. Every target creates the environment first if it is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_VERSION := 0.13.8
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.synced-$(shell cat uv.lock pyproject.toml | cksum | cut -d' ' -f1)
export UV_PYTHON_DOWNLOADS := never

.PHONY: help install demo test test-fast lint format

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP):
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"
	python3 -m uv sync --frozen --all-groups
	@rm -f $(VENV)/.synced-* && touch $@

install: $(STAMP) ## create or update the virtual environment from uv.lock

test: $(STAMP) ## run the whole test suite (unit + integration on loopback)
	$(BIN)/pytest

test-fast: $(STAMP) ## unit tests only
	$(BIN)/pytest -m "not integration and not slow"

lint: $(STAMP) ## ruff check
	$(BIN)/ruff check .

format: $(STAMP) ## ruff format + import sort
	$(BIN)/ruff check --fix --select I .
	$(BIN)/ruff format .
