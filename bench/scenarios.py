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


def routes_body(size: int = 15 * 1024) -> bytes:
    """`size` bytes (about) of instances with id 0 and, last, one with id 64: the
    request of the switch64 and switch1 scenarios, whose matching route is the last."""
    def instance(model_id: int) -> str:
        return '{"id":%d,"features":[%s]}' % (model_id, ",".join("%.4f" % ((i * 7 % 97) / 97) for i in range(16)))
    last = instance(64)
    items: list[str] = []
    used = len('{"instances":[]}') + len(last)
    while used + len(instance(0)) + 1 <= size:
        items.append(instance(0))
        used += len(items[-1]) + 1
    return ('{"instances":[' + ",".join(items + [last]) + "]}").encode()


ROUTES = tuple(f"model-{k}" for k in range(1, 65))


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


def seq1_policy(urls: dict) -> dict:
    """A TrafficPolicy that never fires on healthy models: a timeout, retries, two
    endpoints and a breaker on seq1's step."""
    return {"apiVersion": "ige/v1alpha1", "kind": "TrafficPolicy", "metadata": {"name": "bench"}, "spec": {
        "default": {"timeout": "5s", "retry": {"maxRetries": 2, "initialDelayMs": 50, "maxDelayMs": 1000}},
        "services": {"model-a": {"endpoints": [urls["model-a"], urls["model-a-2"]],
                                 "circuitBreaker": {"consecutiveFailures": 5, "openFor": "10s"}}}}}


def fault_policy(urls: dict) -> dict:
    """Retries over both endpoints, no backoff, no breaker: every 503 of the failing
    endpoint is retried on the other one."""
    return {"apiVersion": "ige/v1alpha1", "kind": "TrafficPolicy", "metadata": {"name": "fault"}, "spec": {
        "default": {"retry": {"maxRetries": 2, "initialDelayMs": 0, "maxDelayMs": 0}},
        "services": {"model-a": {"endpoints": [urls["model-a"], urls["model-a-2"]]}}}}


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One graph, its models (all served alike by one mock process) and its request.

    Resilience scenarios add ``replicas`` (more mocks answering as ``services[0]``),
    ``fail_every`` (mock name -> every n-th request answers 503), ``policy`` (mock
    URLs -> a TrafficPolicy, given to the router with ``--policy FILE``: the engine
    only) and ``expect_errors`` (a row whose errors are the point, not a failure)."""

    name: str
    services: tuple[str, ...]
    body: object  # () -> bytes
    echo_body: bool = False
    bare_chain: str | None = None  # bare forward: "response"/"request", None: not expressible
    large_bodies: bool = False  # the bare forward's cheapest mode for this scenario: --direct-bodies
    goal: str = ""
    expected: object = None  # (request body) -> the answer's JSON, checked before the load
    graph_name: str = ""  # bench/graphs/<graph_name>.yaml; default: the scenario's name
    replicas: tuple[str, ...] = ()
    fail_every: tuple[tuple[str, int], ...] = ()
    policy: object = None  # (mock name -> URL) -> TrafficPolicy document
    expect_errors: bool = False

    @property
    def graph(self) -> str:
        return os.path.join(BENCH_DIR, "graphs", f"{self.graph_name or self.name}.yaml")

    @property
    def mocks(self) -> tuple[tuple[str, str], ...]:
        """(mock name, the model it answers as) for every mock of the scenario."""
        return tuple((n, n) for n in self.services) + tuple((r, self.services[0]) for r in self.replicas)


SCENARIOS = {s.name: s for s in [
    Scenario("seq1", ("model-a",), small_body, bare_chain="response", goal="<= 1.2x nginx",
             expected=answer_of("model-a")),
    Scenario("seq2", ("model-a", "model-b"), small_body, bare_chain="response", goal="<= 45 us",
             expected=answer_of("model-b")),
    Scenario("ens4", ("model-a", "model-b", "model-c", "model-d"), small_body, goal="<= 90 us",
             expected=ensemble_answer),
    Scenario("switch16k", ("model-a", "model-b", "model-c"), switch_body, goal="<= 60 us",
             expected=answer_of("model-b")),
    # routing by model id over 64 models (KServe's e2e form instances.#(id==K)), the
    # match last: against switch1, one route on the same request, what more routes cost
    Scenario("switch64", ROUTES, routes_body, goal="<= 1.5x switch1", expected=answer_of("model-64")),
    Scenario("switch1", ("model-64",), routes_body, expected=answer_of("model-64")),
    Scenario("seq3-1mb", ("model-a", "model-b", "model-c"), mb_body, echo_body=True, bare_chain="response",
             large_bodies=True, goal="<= 800 us", expected=echoed),
    # seq1 under a policy that never fires: what the resilience runtime costs (issue 10)
    Scenario("seq1-policy", ("model-a",), small_body, goal="<= seq1 + 2 us", expected=answer_of("model-a"),
             graph_name="seq1", replicas=("model-a-2",), policy=seq1_policy),
    # model-a answers 503 to every second request, model-a-2 never: with the policy
    # the client sees no error; without it the step calls model-a and sees its 503s
    Scenario("fault-503", ("model-a",), small_body, goal="0 errors", expected=answer_of("model-a"),
             graph_name="seq1", replicas=("model-a-2",), fail_every=(("model-a", 2),), policy=fault_policy),
    Scenario("fault-503-nopolicy", ("model-a",), small_body, goal="half the requests 503",
             expected=answer_of("model-a"), graph_name="seq1", replicas=("model-a-2",),
             fail_every=(("model-a", 2),), expect_errors=True),
]}

# `python -m bench.load` without --scenarios (and `make bench`): the fault pair is
# a correctness check more than a cost figure, so it runs only when asked for
DEFAULT_SCENARIOS = ["seq1", "seq2", "ens4", "switch16k", "switch64", "switch1", "seq3-1mb", "seq1-policy"]
