# The two commands a newcomer needs:  `make serve`  and  `make test`.  Both use .venv at the repository root.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test lint install-serve install-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Serving needs only the base dependencies (onnxruntime, OpenCV, FastAPI; no torch).
install-serve: $(BIN)/python
	$(BIN)/pip install --quiet -e .

# Tests also train and export small models, so they need the training and development extras.
install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[train,dev]'

serve: install-serve
	$(BIN)/python -m service --host $(HOST) --port $(PORT)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest
