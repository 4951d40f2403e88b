# `make quickstart` runs the main job, `make test` the test suite; both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: quickstart demo test test-fast lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

quickstart: $(VENV)/.installed
	$(VENV)/bin/jaxconv run configs/quickstart.yaml

demo: $(VENV)/.installed
	$(PY) experiments/demo.py

test: $(VENV)/.installed
	$(PY) -m pytest -n 2 -q --durations=25

test-fast: $(VENV)/.installed
	$(PY) -m pytest -n 2 -q -m "not slow"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check jaxconv tests experiments

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
