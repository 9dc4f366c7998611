"""Load scenarios: the graphs in bench/graphs/, their request bodies and the answers
a faithful router gives (checked before the load starts)."""
from __future__ import annotations

import dataclasses
import json
import os

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))


def small_body() -> bytes:
    """The ~100 byte request of the small scenarios."""
    return b'{"instances":[[6.8,2.8,4.8,1.4],[6.0,3.4,4.5,1.6],[5.1,3.5,1.4,0.2],[4.9,3.0,1.4,0.2]]}'


def switch_body(size: int = 16 * 1024) -> bytes:
    """`size` bytes of instances with modelId "0" and, last, one with modelId "2"."""
    def instance(model_id: str, n: int) -> str:
        return '{"modelId":"%s","features":[%s]}' % (model_id, ",".join("%.4f" % ((i * 7 % 97) / 97) for i in range(n)))
    last = instance("2", 16)
    items: list[str] = []
    used = len('{"instances":[]}') + len(last)
    while True:
        item = instance("0", 16)
        if used + len(item) + 1 > size:
            break
        items.append(item)
        used += len(item) + 1
    body = '{"instances":[' + ",".join(items + [last]) + "]}"
    return body.encode()


def mb_body(size: int = 1 << 20) -> bytes:
    """About `size` bytes of JSON: rows of 16 floats."""
    row = "[" + ",".join("%.6f" % (i / 17) for i in range(16)) + "]"
    n = (size - len('{"instances":[]}')) // (len(row) + 1)
    return ('{"instances":[' + ",".join([row] * n) + "]}").encode()


def model_answer(name: str) -> bytes:
    """The fixed answer of mock model `name` (66-70 bytes): naming the model lets the
    harness check that a router called the right one."""
    return b'{"model":"%s","predictions":[[0.1,0.9],[0.8,0.2],[0.3,0.7]]}' % name.encode()


def answer_of(name: str):
    """Expectation: the scenario answers model `name`'s answer."""
    def expected(request: bytes):
        return json.loads(model_answer(name))
    return expected


def echoed(request: bytes):
    """Expectation for echoing models: the request itself."""
    return json.loads(request)


def ensemble_answer(request: bytes):
    """KServe's Ensemble answer for ens4: every step's response under its step name."""
    return {step: json.loads(model_answer(f"model-{step}")) for step in "abcd"}


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One graph, its models (all served alike by one mock process) and its request."""

    name: str
    services: tuple[str, ...]
    body: object  # () -> bytes
    echo_body: bool = False
    bare_chain: str | None = None  # bare forward: "response"/"request", None: not expressible
    large_bodies: bool = False  # the bare forward's cheapest mode for this scenario: --direct-bodies
    goal: str = ""
    expected: object = None  # (request body) -> the answer's JSON, checked before the load

    @property
    def graph(self) -> str:
        return os.path.join(BENCH_DIR, "graphs", f"{self.name}.yaml")


SCENARIOS = {s.name: s for s in [
    Scenario("seq1", ("model-a",), small_body, bare_chain="response", goal="<= 1.2x nginx",
             expected=answer_of("model-a")),
    Scenario("seq2", ("model-a", "model-b"), small_body, bare_chain="response", goal="<= 45 us",
             expected=answer_of("model-b")),
    Scenario("ens4", ("model-a", "model-b", "model-c", "model-d"), small_body, goal="<= 90 us",
             expected=ensemble_answer),
    Scenario("switch16k", ("model-a", "model-b", "model-c"), switch_body, goal="<= 60 us",
             expected=answer_of("model-b")),
    Scenario("seq3-1mb", ("model-a", "model-b", "model-c"), mb_body, echo_body=True, bare_chain="response",
             large_bodies=True, goal="<= 800 us", expected=echoed),
]}
