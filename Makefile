# Set-up and checks. Every target creates/uses .venv, so a fresh clone needs only `make test` or `make demo`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test install demo clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall when the package metadata changes.
$(STAMP): $(PY) setup.cfg pyproject.toml
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n 2 tests

# Builds the generated dataset, trains divided and space-only attention on CPU, prints the comparison table.
demo: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) tools/demo.py --workdir demo_runs

clean:
	rm -rf $(VENV) build *.egg-info demo_runs
