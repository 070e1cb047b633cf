# Two entry points (see README): `make demo` runs the pipeline, `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= ../shared/datasets

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

.PHONY: venv demo test lint
venv: $(VENV)/.installed

demo: venv
	$(PY) -m clients.demo --data $(DATA)

test: venv
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: venv
	$(PY) -m ruff check .
