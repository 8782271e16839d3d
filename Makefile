# The two commands a newcomer needs: `make demo` and `make test`.
# Both do all set-up themselves: a virtualenv in .venv with the project installed, and
# Prometheus/Alertmanager from the distribution's packages when they are missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sysnotify-installed

.PHONY: setup binaries test bench demo lint check-rules mutation clean

setup: $(STAMP) binaries

$(STAMP): pyproject.toml scripts/setup-python.sh
	PYTHON=$(PYTHON) VENV=$(VENV) scripts/setup-python.sh
	touch $(STAMP)

binaries:
	scripts/ensure-binaries.sh

# Lint and types first: they take seconds and name a broken tree before the suite starts.
test: setup lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m bench $(BENCH_ARGS)

demo: setup
	$(BIN)/python -m stack.demo $(DEMO_ARGS)

# Mutation testing of the decision, claim and fencing code (CONTRIBUTING.md); not part of
# `make test`. MUTATION_ARGS go to `mutmut run`, e.g. mutant name globs.
mutation: setup
	scripts/mutation.sh $(MUTATION_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	MYPY=$(BIN)/mypy scripts/typecheck.sh

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
