"""The router runs what KServe's controller really hands it.

The controller resolves every ``serviceName`` step to its InferenceService's predictor
URL and keeps the name beside it, then passes ``json.Marshal(spec)`` as
``--graph-json`` (see tests/controllerkit.py). These tests build that exact argument
for every router type, nested nodes, v1 and v2 predictors, transformers, runtimes and
namespaces, and run it through the router: in the test's loop, and once as the pod
runs it (``ige --graph-json <json>``, a subprocess).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import orjson
import pytest

import engine
from controllerkit import (PROTOCOL_V2, ControllerError, InferenceService, graph_json,
                           marshal_spec, pod_args, predictor_endpoint)
from routerkit import ModelServer, ThreadedModel, free_port, running_router

# --graph-json arguments asserted by KServe's own controller tests
# (pkg/controller/v1alpha1/inferencegraph/controller_test.go, raw_ig_test.go), with
# the spec each was made from: our generator must produce them byte for byte.
KSERVE_ARGS = [
    ({"nodes": {"root": {"routerType": "Sequence",
                         "steps": [{"serviceUrl": "http://someservice.example.com"}]}}},
     '{"nodes":{"root":{"routerType":"Sequence","steps":[{"serviceUrl":'
     '"http://someservice.example.com"}]}},"resources":{}}'),
    ({"nodes": {"root": {"routerType": "Sequence",
                         "steps": [{"serviceUrl": "http://someservice.example.com"}]}},
      "resources": {"requests": {"memory": "123Mi", "cpu": "123m"},
                    "limits": {"cpu": "123m", "memory": "123Mi"}}},
     '{"nodes":{"root":{"routerType":"Sequence","steps":[{"serviceUrl":'
     '"http://someservice.example.com"}]}},"resources":{"limits":{"cpu":"123m",'
     '"memory":"123Mi"},"requests":{"cpu":"123m","memory":"123Mi"}}}'),
    ({"nodes": {"root": {"routerType": "Sequence",
                         "steps": [{"serviceUrl": "http://someservice.example.com"}]}},
      "affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
          {"weight": 100, "podAffinityTerm": {
              "labelSelector": {"matchExpressions": [
                  {"key": "serving.kserve.io/inferencegraph", "operator": "In",
                   "values": ["singlenode3"]}]},
              "topologyKey": "topology.kubernetes.io/zone"}}]}}},
     '{"nodes":{"root":{"routerType":"Sequence","steps":[{"serviceUrl":'
     '"http://someservice.example.com"}]}},"resources":{},"affinity":{"podAffinity":'
     '{"preferredDuringSchedulingIgnoredDuringExecution":[{"weight":100,"podAffinityTerm":'
     '{"labelSelector":{"matchExpressions":[{"key":"serving.kserve.io/inferencegraph",'
     '"operator":"In","values":["singlenode3"]}]},"topologyKey":'
     '"topology.kubernetes.io/zone"}}]}}}'),
    ({"nodes": {"root": {"routerType": "Sequence",
                         "steps": [{"serviceUrl": "http://someservice.example.com"}]}},
      "tolerations": [{"effect": "NoSchedule", "value": "value1", "key": "key1",
                       "operator": "Equal"}]},
     '{"nodes":{"root":{"routerType":"Sequence","steps":[{"serviceUrl":'
     '"http://someservice.example.com"}]}},"resources":{},"tolerations":[{"key":"key1",'
     '"operator":"Equal","value":"value1","effect":"NoSchedule"}]}'),
]


@pytest.mark.parametrize("spec,expected", KSERVE_ARGS)
def test_generator_reproduces_kserve_controller_tests(spec, expected):
    assert marshal_spec(spec) == expected
    graph = engine.load(expected)
    assert graph.bare
    assert [d for d in graph.diagnose() if d.severity == "error"] == []


def _document(spec, name="g", namespace="default"):
    return {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def test_every_spec_field_the_controller_marshals_is_accepted():
    spec = {
        "nodes": {"root": {"routerType": "Sequence",
                           "steps": [{"name": "a", "serviceName": "a"}]}},
        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "100m"}},
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "gpu", "operator": "Exists"}]}]}}},
        "timeout": 30,
        "routerTimeouts": {"serverRead": 5, "serverWrite": 6, "serverIdle": 7, "serviceClient": 2},
        "minReplicas": 0, "maxReplicas": 3, "scaleTarget": 10, "scaleMetric": "rps",
        "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute",
                         "tolerationSeconds": 30}],
        "nodeSelector": {"zone": "b", "disk": "ssd"},
        "nodeName": "node-1", "serviceAccountName": "router",
    }
    arg = graph_json(_document(spec), [InferenceService("a", "http://a.default.svc.cluster.local")])
    decoded = json.loads(arg)
    assert list(decoded) == ["nodes", "resources", "affinity", "timeout", "routerTimeouts",
                             "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric",
                             "tolerations", "nodeSelector", "nodeName", "serviceAccountName"]
    assert decoded["nodes"]["root"]["steps"][0] == {
        "name": "a", "serviceName": "a",
        "serviceUrl": "http://a.default.svc.cluster.local/v1/models/a:predict"}
    graph = engine.load(arg)
    assert graph.diagnose() == []
    timeouts = graph.effective_router_timeouts()
    assert (timeouts.server_read, timeouts.server_write, timeouts.server_idle,
            timeouts.service_client) == (5, 6, 7, 2)
    plan = graph.compile()
    try:
        assert "http://a.default.svc.cluster.local/v1/models/a:predict" in plan.explain()
    finally:
        import asyncio
        asyncio.run(plan.aclose())


def test_user_documents_keep_the_webhook_rule():
    """What users write gets the webhook's one-target rule; the controller's output
    (the same step, resolved) is accepted."""
    step = {"serviceName": "a", "serviceUrl": "http://a/v1/models/a:predict"}
    doc = _document({"nodes": {"root": {"routerType": "Sequence", "steps": [step]}}})
    errors = [d for d in engine.load(doc).diagnose() if d.severity == "error"]
    assert [d.message for d in errors] == [
        'Step 0 ("") in node "root" of InferenceGraph "g" specifies more than one of '
        "nodeName, serviceName, serviceUrl"]
    bare = engine.load(doc["spec"])
    assert bare.diagnose() == []


def test_bare_step_with_node_and_service_warns_that_the_node_wins():
    spec = {"nodes": {"root": {"routerType": "Sequence",
                               "steps": [{"nodeName": "n", "serviceUrl": "http://x/"}]},
                      "n": {"routerType": "Sequence", "steps": [{"serviceUrl": "http://y/"}]}}}
    found = engine.load(spec).diagnose()
    assert [(d.severity, d.path) for d in found] == [
        ("warning", "spec.nodes.root.steps[0].nodeName")]


def test_predictor_endpoints_follow_the_controller():
    base = "http://m.ns.svc.cluster.local"
    assert predictor_endpoint(InferenceService("m", base)) == base + "/v1/models/m:predict"
    assert predictor_endpoint(InferenceService("m", base, protocol="v2")) == base + "/v2/models/m/infer"
    assert predictor_endpoint(InferenceService("m", base, model_name="x")) == base + "/v1/models/x:predict"
    # a runtime's first IG-compatible protocol wins over the predictor's default
    assert predictor_endpoint(InferenceService("m", base, runtime_protocols=["grpc-v2", "v2", "v1"])) \
        == base + "/v2/models/m/infer"
    assert predictor_endpoint(InferenceService("m", base, transformer_protocol="v2")) \
        == base + "/v2/models/m/infer"
    assert predictor_endpoint(InferenceService("m", base, multi_model=True)) == base
    assert predictor_endpoint(InferenceService("m", base, protocol="grpc-v2")) == base
    with pytest.raises(ControllerError):
        predictor_endpoint(InferenceService("m", None))
    with pytest.raises(ControllerError):
        predictor_endpoint(InferenceService("m", base, runtime_protocols=["grpc-v2"]))


def test_services_resolve_in_the_graph_namespace_and_given_urls_stay():
    spec = {"nodes": {"root": {"routerType": "Sequence", "steps": [
        {"serviceName": "a"}, {"serviceUrl": "http://given/v1/models/z:predict"}]}}}
    services = [InferenceService("a", "http://a.team-b.example", namespace="team-b"),
                InferenceService("a", "http://a.default.example")]
    arg = json.loads(graph_json(_document(spec, namespace="team-b"), services))
    assert [s["serviceUrl"] for s in arg["nodes"]["root"]["steps"]] == [
        "http://a.team-b.example/v1/models/a:predict", "http://given/v1/models/z:predict"]
    with pytest.raises(ControllerError):
        graph_json(_document(spec, namespace="other"), services)


# ---- the router runs the controller's output ----------------------------------------

def echo_model(tag):
    """Answers what it was sent, tagged, so the test sees which model ran on what."""
    def answer(request):
        return 200, {"model": tag, "path": request.path.decode(),
                     "got": orjson.loads(bytes(request.body) or b"null")}
    return answer


class Cluster:
    """InferenceServices backed by loopback model servers."""

    def __init__(self):
        self.models: dict[str, ModelServer] = {}

    async def add(self, name, answer, **isvc):
        self.models[name] = await ModelServer(answer).start()
        return InferenceService(name, f"http://127.0.0.1:{self.models[name].port}", **isvc)

    async def close(self):
        for m in self.models.values():
            await m.close()


def _run_graph(loop, spec, isvcs_factory, request, namespace="default", check=None):
    async def go():
        cluster = Cluster()
        try:
            isvcs = await isvcs_factory(cluster)
            arg = graph_json(_document(spec, namespace=namespace), isvcs)
            async with running_router(arg) as router:
                resp = await router.post(request, path="/")
            return cluster, resp
        finally:
            await cluster.close()
    return loop.run(go())


def test_sequence_of_service_names(loop):
    spec = {"nodes": {"root": {"routerType": "Sequence", "steps": [
        {"name": "first", "serviceName": "pre"},
        {"name": "second", "serviceName": "model", "data": "$response"}]}}}

    async def isvcs(c):
        return [await c.add("pre", echo_model("pre")), await c.add("model", echo_model("model"))]

    cluster, resp = _run_graph(loop, spec, isvcs, {"instances": [1]})
    assert resp.status == 200
    body = orjson.loads(resp.body)
    assert body["model"] == "model" and body["path"] == "/v1/models/model:predict"
    assert body["got"]["model"] == "pre" and body["got"]["got"] == {"instances": [1]}
    assert [r.path for r in cluster.models["pre"].requests] == [b"/v1/models/pre:predict"]


def test_switch_with_html_escaped_conditions(loop):
    """json.Marshal writes '>' and '<' in conditions as \\u003e and \\u003c."""
    spec = {"nodes": {"root": {"routerType": "Switch", "steps": [
        {"serviceName": "big", "condition": "instances.#(x>5)"},
        {"serviceName": "small", "condition": "instances.#(x<=5)"}]}}}

    async def isvcs(c):
        return [await c.add("big", echo_model("big")), await c.add("small", echo_model("small"))]

    arg = graph_json(_document(spec), [InferenceService("big", "http://b"), InferenceService("small", "http://s")])
    assert "\\u003e" in arg and "\\u003c" in arg
    _, resp = _run_graph(loop, spec, isvcs, {"instances": [{"x": 3}]})
    assert resp.status == 200 and orjson.loads(resp.body)["model"] == "small"
    _, resp = _run_graph(loop, spec, isvcs, {"instances": [{"x": 9}]})
    assert resp.status == 200 and orjson.loads(resp.body)["model"] == "big"


def test_splitter_of_service_names(loop):
    spec = {"nodes": {"root": {"routerType": "Splitter", "steps": [
        {"serviceName": "a", "weight": 100}, {"serviceName": "b", "weight": 0}]}}}

    async def isvcs(c):
        return [await c.add("a", echo_model("a")), await c.add("b", echo_model("b"))]

    cluster, resp = _run_graph(loop, spec, isvcs, {"instances": [1]})
    assert resp.status == 200 and orjson.loads(resp.body)["model"] == "a"
    assert cluster.models["b"].requests == []


def test_ensemble_with_a_nested_node_and_namespace(loop):
    spec = {"nodes": {
        "root": {"routerType": "Ensemble", "steps": [
            {"name": "direct", "serviceName": "a"},
            {"name": "nested", "nodeName": "inner"}]},
        "inner": {"routerType": "Sequence", "steps": [
            {"serviceName": "b"}, {"serviceName": "c", "data": "$response",
                                   "dependency": "Hard"}]}}}

    async def isvcs(c):
        return [await c.add(n, echo_model(n), namespace="ml") for n in ("a", "b", "c")]

    _, resp = _run_graph(loop, spec, isvcs, {"instances": [2]}, namespace="ml")
    assert resp.status == 200
    body = orjson.loads(resp.body)
    assert body["direct"]["model"] == "a"
    assert body["nested"]["model"] == "c" and body["nested"]["got"]["model"] == "b"


def test_v2_predictor_and_v1_transformer_urls(loop):
    """A v2 predictor gets KServe's /v2/models/<m>/infer URL; KServe's router POSTs the
    bytes it has there, and so does the engine."""
    spec = {"nodes": {"root": {"routerType": "Sequence", "steps": [
        {"serviceName": "xf"}, {"serviceName": "triton", "data": "$response"}]}}}
    v2_request = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}

    def transformer(request):
        return 200, v2_request

    def triton(request):
        return 200, {"model_name": "triton", "outputs": [
            {"name": "y", "shape": [1], "datatype": "FP32", "data": [2.0]}],
            "path": request.path.decode()}

    async def isvcs(c):
        return [await c.add("xf", transformer, transformer_protocol="v1"),
                await c.add("triton", triton, protocol=PROTOCOL_V2)]

    cluster, resp = _run_graph(loop, spec, isvcs, {"instances": [[1.0]]})
    assert resp.status == 200, resp.body
    assert orjson.loads(resp.body)["path"] == "/v2/models/triton/infer"
    assert orjson.loads(bytes(cluster.models["triton"].requests[0].body)) == v2_request


def test_v2_url_forwards_a_v1_body_unchanged(loop):
    spec = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceName": "m"}]}}}

    async def isvcs(c):
        return [await c.add("m", echo_model("m"), protocol=PROTOCOL_V2)]

    cluster, resp = _run_graph(loop, spec, isvcs, {"instances": [[1, 2]]})
    assert resp.status == 200, resp.body
    assert bytes(cluster.models["m"].requests[0].body) == b'{"instances":[[1,2]]}'
    assert orjson.loads(resp.body)["path"] == "/v2/models/m/infer"


def test_the_pod_command_line(tmp_path):
    """``ige`` started with exactly the pod's args (plus a free port), as the
    controller starts KServe's router image."""
    spec = {"nodes": {"root": {"routerType": "Sequence", "steps": [
        {"name": "one", "serviceName": "m"}]}}, "routerTimeouts": {"serviceClient": 5}}
    with ThreadedModel(echo_model("m")) as model:
        args = pod_args(_document(spec), [InferenceService("m", f"http://127.0.0.1:{model.port}")])
        port = free_port()
        env = dict(os.environ, PROPAGATE_HEADERS="X-Request-Id")
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", *args, "--http-port", str(port), "--grpc-port", "0",
             "--drain-seconds", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                        assert r.status == 200
                        break
                except OSError:
                    assert proc.poll() is None, proc.stderr.read().decode()
                    assert time.monotonic() < deadline, "router did not become ready"
                    time.sleep(0.05)
            req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=b'{"instances":[7]}',
                                         headers={"X-Request-Id": "abc"}, method="POST")
            with urllib.request.urlopen(req, timeout=5) as r:
                assert r.status == 200
                body = orjson.loads(r.read())
            assert body == {"model": "m", "path": "/v1/models/m:predict", "got": {"instances": [7]}}
            assert (b"X-Request-Id", b"abc") in model.requests[0].headers
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                assert proc.wait(20) == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.stderr.close()


def test_explain_shows_the_called_url_and_the_fields_the_router_ignores():
    from engine.spec.render import text_tree
    spec = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"name": "a", "serviceName": "a"}]}},
            "resources": {"limits": {"cpu": "1"}}, "routerTimeouts": {"serviceClient": 3},
            "minReplicas": 1, "tolerations": [{"key": "k", "operator": "Exists"}]}
    arg = graph_json(_document(spec), [InferenceService("a", "http://a.ns")])
    text = text_tree(engine.load(arg))
    assert "service a at http://a.ns/v1/models/a:predict" in text
    assert "routerTimeouts: serviceClient=3s" in text
    assert "for KServe's controller, ignored by the router: resources, tolerations, minReplicas" in text
