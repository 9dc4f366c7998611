"""GJSON micro benchmarks: KServe's condition shapes on 1 KB, 16 KB and 1 MB bodies.

    .venv/bin/python -m pytest bench/test_gjson_bench.py --benchmark-only

The matching element sits at the end of each document, so every evaluation scans
the whole body (the worst case for a Switch condition).
"""
from __future__ import annotations

import json

import pytest

from bench.load import mb_body, switch_body
from engine import gjson

SIZES = {"1KB": 1 << 10, "16KB": 16 << 10, "1MB": 1 << 20}
CONDITIONS = {
    "dot": "parameters.route",
    "instances": 'instances.#(modelId=="2")',
    "predictions": 'predictions.#(label=="dog")',
    "this_query": "[@this].#(decision_picker==ERROR)",
}


def make_doc(size: int) -> bytes:
    """An inference request of about ``size`` bytes; the matches come last."""
    row = {"modelId": "1", "data": [0.125, -3.5, 42, 7.0e-3], "tag": "a \"quoted\" name"}
    pred = {"label": "cat", "score": 0.1}

    def build(count: int) -> bytes:
        doc = {
            "instances": [row] * count + [{"modelId": "2"}],
            "predictions": [pred] * count + [{"label": "dog"}],
            "parameters": {"route": "b"},
            "decision_picker": "ERROR",
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    per_row = len(build(2)) - len(build(1))
    count = max(1, (size - len(build(0))) // per_row)
    return build(count)


DOCS = {name: make_doc(size) for name, size in SIZES.items()}


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("cond", list(CONDITIONS))
def test_path_get(benchmark, size, cond):
    doc = DOCS[size]
    path = gjson.compile(CONDITIONS[cond])
    assert path.get(doc).exists
    benchmark.extra_info["bytes"] = len(doc)
    benchmark(path.get, doc)


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("cond", list(CONDITIONS))
def test_path_exists(benchmark, size, cond):
    doc = DOCS[size]
    path = gjson.compile(CONDITIONS[cond])
    benchmark.extra_info["bytes"] = len(doc)
    assert benchmark(path.exists, doc) is True


@pytest.mark.parametrize("size", list(SIZES))
def test_valid(benchmark, size):
    doc = DOCS[size]
    benchmark.extra_info["bytes"] = len(doc)
    assert benchmark(gjson.valid, doc) is True


def make_tensor_doc(size: int) -> bytes:
    """A v1-protocol tensor request: numbers only, the shape of most model inputs."""
    row = [round(i * 0.37, 3) for i in range(256)]
    per_row = len(json.dumps(row, separators=(",", ":"))) + 1
    doc = {"instances": [row] * max(1, size // per_row), "parameters": {"route": "b"}}
    return json.dumps(doc, separators=(",", ":")).encode()


TENSOR = make_tensor_doc(1 << 20)


def test_tensor_1MB_path(benchmark):
    path = gjson.compile("parameters.route")
    benchmark.extra_info["bytes"] = len(TENSOR)
    assert benchmark(path.exists, TENSOR) is True


def test_tensor_1MB_valid(benchmark):
    benchmark.extra_info["bytes"] = len(TENSOR)
    assert benchmark(gjson.valid, TENSOR) is True


# The router's own request shapes (bench/scenarios.py): a 16 KB Switch request whose
# matching instance comes last, and the 1 MB Sequence body of 16-float rows.  The
# router runs c_valid on each, then Path.c_exists for the Switch conditions.
ROUTER_DOCS = {"switch16k": switch_body(), "seq3_1mb": mb_body()}


@pytest.mark.parametrize("name", list(ROUTER_DOCS))
def test_router_valid(benchmark, name):
    doc = ROUTER_DOCS[name]
    benchmark.extra_info["bytes"] = len(doc)
    assert benchmark(gjson.valid, doc) is True


@pytest.mark.parametrize("model", ["1", "2"])
def test_router_switch_condition(benchmark, model):
    doc = ROUTER_DOCS["switch16k"]
    path = gjson.compile(f'instances.#(modelId=="{model}")')
    benchmark.extra_info["bytes"] = len(doc)
    assert benchmark(path.exists, doc) is (model == "2")
