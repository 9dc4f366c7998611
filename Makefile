# Set-up is part of every target: on a fresh machine `make run` and `make test`
# create .venv/, install the package with its test extra and build the extensions.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install build run test bench clean

install: $(STAMP) build

# scripts/system-deps.sh installs libnghttp2-dev (linked by engine._core) when missing
$(STAMP): pyproject.toml setup.py scripts/system-deps.sh
	sh scripts/system-deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip setuptools wheel "Cython>=3.0.8" "grpcio-tools>=1.60"
	$(PY) -m pip install -q --no-build-isolation -e '.[test,bench]'
	touch $@

# cythonize always from source: generated .c files are never committed. setup.py
# decides what is stale (sources, .pxd, include files, debug/release switch), so this
# runs every time; with nothing to do it takes about a second.
build: $(STAMP)
	$(PY) setup.py -q build_ext --inplace -j 2

run: install
	$(PY) -m engine.demo

# tests/setup.sh installs what tests need from Debian when it is missing: chromium
# (tests/test_graph_page.py) and h2load (tests/test_bench_grpc.py)
test: install
	sh tests/setup.sh
	$(PY) -m pytest -q

# the same suite on a debug build: invariant checks and leak counters compiled in
# (the next `make build` or `make test` builds release again)
test-debug: $(STAMP)
	sh tests/setup.sh
	ENGINE_DEBUG=1 $(PY) setup.py -q build_ext --inplace -j 2
	$(PY) -m pytest -q -p no:cacheprovider

bench: install
	sh bench/setup.sh
	$(PY) -m bench.load
	$(PY) -m bench.oip_load
	$(PY) -m bench.grpc_load
	$(PY) -m pytest bench/test_gjson_bench.py -q -p no:cacheprovider --benchmark-only \
		--benchmark-columns=min,median --benchmark-max-time=0.5

clean:
	rm -rf build engine/*.so ext/*.c ext/*.html ext/.build-mode engine/protos/*_pb2*.py
