# Set-up and checks. Every target creates/uses .venv, so a fresh clone needs only `make test` or `make demo`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BASE_STAMP := $(VENV)/.installed-base

.PHONY: test test-all install demo clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall when the package metadata changes.
# jax2onnx (ONNX export) pins an older orbax-checkpoint in its metadata but runs beside ours: its own
# dependencies without the pin.
ONNX_DEPS := onnx onnx-ir onnxruntime toolz
ONNX_NODEPS := jax2onnx==0.17.1 dm-pix equinox jaxtyping wadler-lindig chex

# `make demo` needs the package and its data extra (TensorFlow and TFDS for the input); `make test` adds the
# test extra (torch, transformers, timm, libtpu, Apache Beam) and the ONNX tools on top of it.
$(BASE_STAMP): $(PY) setup.cfg setup.py pyproject.toml Makefile
	$(PY) -m pip install --quiet -e ".[data]"
	touch $(BASE_STAMP)

$(STAMP): $(BASE_STAMP)
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m pip install --quiet $(ONNX_DEPS)
	$(PY) -m pip install --quiet --no-deps $(ONNX_NODEPS)
	touch $(STAMP)

install: $(STAMP)

# `make test`: every test but the end-to-end ones marked `slow` (training runs, tool subprocesses, meshes of
# simulated devices, large compiles); with CI set (.ci/run sets it) and in `make test-all`, all of them.
TEST_SELECTION := $(if $(CI),,-m "not slow")

test: $(STAMP)
	$(PY) -m pytest -n 2 $(TEST_SELECTION) tests

test-all: $(STAMP)
	$(PY) -m pytest -n 2 tests

# Builds the generated dataset, trains divided and space-only attention on CPU, prints the comparison table.
# `make demo SEED=3`: another seed (model initialisation and data order).
SEED ?= 0
demo: $(BASE_STAMP)
	$(VENV)/bin/timesformer demo --workdir demo_runs --seed $(SEED)

clean:
	rm -rf $(VENV) build *.egg-info demo_runs
