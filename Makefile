# Two entry points (see README): `make demo` runs the pipeline, `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= ../shared/datasets

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

.PHONY: venv demo test lint docs
venv: $(VENV)/.installed

demo: venv
	$(PY) -m clients.demo --data $(DATA)

# checkov lives in its own venv: its dependency pins must not move the runtime's.
TOOLS ?= .venv-tools
$(TOOLS)/.installed:
	test -d $(TOOLS) || python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --upgrade pip
	$(TOOLS)/bin/pip install --quiet 'checkov>=3.2,<4'
	touch $@

test: venv $(TOOLS)/.installed
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir .cache/site
	CHECKOV=$(TOOLS)/bin/checkov $(PY) -m pytest -q

lint: venv
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

# The documentation site at http://127.0.0.1:8000 while you edit docs/.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve
