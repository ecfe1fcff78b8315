# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# Pinning torch picks the local CPU build where there is one (no CUDA download).
	$(BIN)/pip install -q "torch==2.13.0" -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# A short training on 2 cores (registered in ./mlflow.db), then the version it registered against the
# baselines (promoted to champion only if it beat them).
demo: $(STAMP)
	$(BIN)/aigcsched train configs/edge_ppo.yaml --stop-minutes 3
	$(BIN)/aigcsched evaluate edge --episodes 10 --seed 100 \
		-p random -p greedy -p myopic -p models:/aigcsched-edge/latest

lint: $(STAMP)
	$(BIN)/ruff check .

# Two workers, each taking whole test files (their module fixtures start Ray once): most tests wait
# on Ray's start-up and subprocesses, so two at once take 0.6-0.8x the time on 2 cores. The files go
# in collection order, the slowest first (tests/conftest.py), not by their number of tests.
test: lint
	$(BIN)/pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=15

bench: $(STAMP)
	$(BIN)/python benchmarks/env_speed.py
	$(BIN)/python benchmarks/train_edge.py
	$(BIN)/python benchmarks/datacenter.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
