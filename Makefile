# One entry point for set-up, tests and the demo. The first target that needs the venv creates it.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup test test-slow lint demo bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/lava.txt requirements/nodeps.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements/lava.txt
	$(BIN)/pip install --quiet --no-deps --ignore-requires-python -r requirements/nodeps.txt
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check .

demo: $(STAMP)
	$(BIN)/ternkit pipeline

clean:
	rm -rf $(VENV) build *.egg-info runs
