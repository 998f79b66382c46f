# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck contracts pytest smoke bench install clean db-stop up down logs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,embedded]'
	touch $(STAMP)

install: $(STAMP)

## run: database, migrations, one ETL pass, then scheduler and API until Ctrl-C
run: $(STAMP)
	$(BIN)/kaspero run

## test: lint, types, layering contracts, the whole pytest suite, and the smoke run
test: lint typecheck contracts pytest smoke

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP)
	$(BIN)/pytest

## smoke: the whole system as an operator runs it, on this machine, with a short report
smoke: $(STAMP)
	$(BIN)/python -m tests.smoke

## up / down / logs: the Docker Compose stack (needs a Docker engine and an .env, see .env.example)
up:
	docker compose up --build --detach

down:
	docker compose down

logs:
	docker compose logs --follow

bench: $(STAMP)
	$(BIN)/python -m benchmarks

db-stop: $(STAMP)
	$(BIN)/kaspero db stop

clean: db-stop
	rm -rf $(VENV) .kaspero .pytest_cache .mypy_cache .ruff_cache .hypothesis
