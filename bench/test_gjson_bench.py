"""GJSON micro benchmarks: KServe's condition shapes on 1 KB, 16 KB and 1 MB bodies.

    .venv/bin/python -m pytest bench/test_gjson_bench.py --benchmark-only

The matching element sits at the end of each document, so every evaluation scans
the whole body (the worst case for a Switch condition).
"""
from __future__ import annotations

import json

import pytest

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
