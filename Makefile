# Set-up is part of every target: on a fresh machine `make run` and `make test`
# create .venv/, install the package with its test extra and build the extensions.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EXT_SOURCES := $(wildcard ext/*.pyx ext/*.pxi ext/engine/*.pxd) setup.py

.PHONY: install build run test bench clean

install: $(STAMP) build

$(STAMP): pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip setuptools wheel "Cython>=3.0.8"
	$(PY) -m pip install -q --no-build-isolation -e '.[test,bench]'
	touch $@

# cythonize always from source: generated .c files are never committed
build: $(STAMP) .stamp-build

.stamp-build: $(EXT_SOURCES) $(STAMP)
	$(PY) setup.py -q build_ext --inplace -j 2
	touch $@

run: install
	$(PY) -m engine.demo

test: install
	$(PY) -m pytest -q

bench: install
	sh bench/setup.sh
	$(PY) -m bench.load

clean:
	rm -rf build .stamp-build engine/*.so ext/*.c ext/*.html
