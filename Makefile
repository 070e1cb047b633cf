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

# checkov lives in its own venv: its dependency pins must not move the runtime's.
TOOLS ?= .venv-tools
$(TOOLS)/.installed:
	test -d $(TOOLS) || python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --upgrade pip
	$(TOOLS)/bin/pip install --quiet 'checkov>=3.2,<4'
	touch $@

test: venv $(TOOLS)/.installed
	$(PY) -m ruff check .
	CHECKOV=$(TOOLS)/bin/checkov $(PY) -m pytest -q

lint: venv
	$(PY) -m ruff check .

# kustomize cannot read files outside k8s/: refresh its copies of the serving configs (a test checks them).
.PHONY: k8s-config
k8s-config:
	cp serving/models.config serving/batching.config serving/monitoring.config k8s/base/config/
	cp serving/models.canary.config k8s/overlays/canary/models.config
