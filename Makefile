# `make quickstart` runs the main job, `make test` the test suite; both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: quickstart demo test test-fast test-native-free lint clean native dist docs

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	-@$(MAKE) --no-print-directory native
	touch $@

# The optional oneDNN extension (`impl="onednn"`): built into jaxconv/tuning/ when CMake and a
# C++ compiler are present, with oneDNN's CPU-only OpenMP wheels installed into the venv;
# jaxconv works without it. Prints one line saying whether it was built.
NATIVE_LIB := jaxconv/tuning/libjaxconv_onednn.so
ONEDNN_WHEELS := onednn-cpu-gomp==2023.2.0 onednn-devel-cpu-gomp==2023.2.0

native:
	@if [ ! -x $(PY) ]; then \
	  echo "jaxconv: native extension not built (no $(VENV) yet: make test or make quickstart creates it)"; \
	  exit 1; \
	elif ! command -v cmake >/dev/null || ! command -v $${CXX:-c++} >/dev/null; then \
	  echo "jaxconv: native extension not built (needs cmake and a C++ compiler); impl='onednn' unavailable"; \
	elif ! mkdir -p build || ! $(PY) -m pip install --quiet $(ONEDNN_WHEELS) >build/native.log 2>&1 \
	  || ! cmake -S native -B build/native -DCMAKE_PREFIX_PATH="$$($(PY) -c 'import sys; print(sys.prefix)')" \
	     -DJAX_FFI_INCLUDE_DIR="$$($(PY) -c 'import jax; print(jax.ffi.include_dir())')" \
	     -DOUTPUT_DIR="$(CURDIR)/jaxconv/tuning" >>build/native.log 2>&1 \
	  || ! cmake --build build/native -j2 >>build/native.log 2>&1; then \
	  echo "jaxconv: native extension build failed; impl='onednn' unavailable. build/native.log ends:"; \
	  tail -n 20 build/native.log; \
	  exit 1; \
	else \
	  echo "jaxconv: native extension built ($(NATIVE_LIB)); impl='onednn' available"; \
	fi

quickstart: $(VENV)/.installed
	$(VENV)/bin/jaxconv run configs/quickstart.yaml

demo: $(VENV)/.installed
	$(PY) experiments/demo.py

test: $(VENV)/.installed
	$(PY) -m pytest -n 2 -q --durations=25

test-fast: $(VENV)/.installed
	$(PY) -m pytest -n 2 -q -m "not slow"

# The documentation site, built into site/ with warnings as errors: API pages and the config
# reference generated from the code, the docstring check, every guide's code run with its output
# checked, then mkdocs (docs/build.py; needs the docs extra).
docs: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[docs]'
	$(PY) docs/build.py

# Without the native extension, where it is built: the oneDNN tests' native-free checks and the
# formulation tests, as a user without a compiler gets them (JAXCONV_NATIVE=0).
test-native-free: $(VENV)/.installed
	JAXCONV_NATIVE=0 $(PY) -m pytest -n 2 -q -m "not slow" tests/functional/test_onednn.py \
	  tests/functional/test_formulations.py tests/functional/test_policy_version.py \
	  tests/functional/test_transpose.py tests/nnx

# The release: an sdist and a wheel in dist/ (python -m build), checked with twine. The wheel holds
# the package, py.typed and the example configs; never tests, results or the machine-specific
# native library (each install builds that itself with make native).
dist: $(VENV)/.installed
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check jaxconv tests experiments

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache build/native $(NATIVE_LIB) dist
