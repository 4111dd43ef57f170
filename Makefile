# The two commands a newcomer needs:  `make serve`  and  `make test`.  Both use .venv at the repository root.
# Training is not here: every experiment is a recipe (trainer/recipes/), run with `python -m trainer run RECIPE`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
RUNS ?= runs
LABEL ?= run

.PHONY: serve test lint install-serve install-dev recipes report bench bench-faults

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Serving needs only the base dependencies (onnxruntime, OpenCV, FastAPI; no torch).
install-serve: $(BIN)/python
	$(BIN)/pip install --quiet -e .

# Tests also train and export small models and try every face detector, so they need the training, development and
# MTCNN extras.
install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[train,dev,mtcnn]'

serve: install-serve
	$(BIN)/python -m service --host $(HOST) --port $(PORT)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest

# The training recipes and the published models each one made (docs/results.md).
recipes: install-dev
	$(BIN)/python -m trainer recipes

# docs/results.md's tables and figures from the runs' records (RUNS=<runs folder>).
report: install-dev
	$(BIN)/python -m trainer report $(RUNS) --plots docs/figures

# Every benchmark in one run (docs/benchmarks.md); needs Debian's wrk, and the bench extra for the TensorFlow timing.
bench: install-dev
	$(BIN)/pip install --quiet -e '.[train,dev,bench]'
	$(BIN)/python -m benchmarks --label "$(LABEL)"

# The load-and-faults run (docs/reliability.md, "Load and faults"); its short version runs in CI as a test.
bench-faults: install-dev
	$(BIN)/python -m benchmarks.load_faults --out benchmarks/faults/$$(date -u +%Y%m%dT%H%M%SZ)-load-faults.json
