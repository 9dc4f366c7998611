"""A Sequence with ``outputs: all`` (the engine's extension, KServe #3639, #3521): the
answer holds every answered step's answer keyed as an Ensemble's (name, else index),
in step order, joined from the raw bytes; steps chain, stop and fail as in a plain
Sequence. Also set from the TrafficPolicy (``spec.nodes.<node>.outputs``), since
Kubernetes prunes the field from the graph."""
from __future__ import annotations

import numpy as np
import orjson
import pytest

import engine
from engine.errors import GraphSpecError, GraphValidationError
from engine.oip import InferRequest, InferResponse, from_numpy
from routerkit import ModelServer, RecordingModels, running_router


def sequence(*steps, outputs="all", router="Sequence"):
    node = {"routerType": router, "steps": list(steps)}
    if outputs is not None:
        node["outputs"] = outputs
    return {"nodes": {"root": node}}


def policy(**spec):
    return engine.load_policy({"apiVersion": "ige/v1alpha1", "kind": "TrafficPolicy", "spec": spec})


Recorder = RecordingModels


def infer(loop, graph, body, rec, traffic=None):
    plan = engine.load(graph, services=rec.services()).compile(policy=traffic)
    return loop.run(plan.infer(body))


def test_answers_every_step_in_step_order_from_the_raw_bytes(loop):
    # keys in step order (z before a: an Ensemble would sort them), each answer as sent
    rec = Recorder(z=b'{"b": 1,  "a": 12345678901234567890}', a=b'{"x":[1, 2]}\n', u=b"[true]")
    r = infer(loop, sequence({"name": "z", "serviceName": "z"},
                             {"name": "a", "serviceName": "a", "data": "$response"},
                             {"serviceName": "u"}), {"q": 1}, rec)
    assert r.status == 200 and r.headers == {"Content-Type": "application/json"}
    assert bytes(r.body) == (b'{"z":{"b": 1,  "a": 12345678901234567890},"a":{"x":[1, 2]}\n,'
                             b'"2":[true]}')


def test_steps_still_chain_by_request_and_response(loop):
    rec = Recorder(a=b'{"from":"a"}', b=b'{"from":"b"}', c=b'{"from":"c"}')
    infer(loop, sequence({"name": "a", "serviceName": "a"},
                         {"name": "b", "serviceName": "b", "data": "$response"},
                         {"name": "c", "serviceName": "c"}), {"q": 1}, rec)
    assert rec.sent == [("a", {"q": 1}), ("b", {"from": "a"}), ("c", {"q": 1})]


def test_without_outputs_or_with_last_the_sequence_answers_its_last_step(loop):
    for outputs in (None, "last"):
        rec = Recorder(a=b'{"a":1}', b=b'{"b":2}')
        r = infer(loop, sequence({"serviceName": "a"}, {"serviceName": "b"}, outputs=outputs),
                  b"{}", rec)
        assert (r.status, bytes(r.body)) == (200, b'{"b":2}')
    plan = engine.load(sequence({"serviceName": "a"}, outputs=None), services=rec.services()).compile()
    assert plan.compiled.nodes[0].merge_outputs is False


def test_a_step_skipped_by_its_condition_and_the_later_ones_are_absent(loop):
    rec = Recorder(a=b'{"label":"cat"}', b=b'{"b":1}', c=b'{"c":1}')
    r = infer(loop, sequence({"name": "a", "serviceName": "a"},
                             {"name": "b", "serviceName": "b", "condition": "dog"},
                             {"name": "c", "serviceName": "c"}), b"{}", rec)
    assert (r.status, bytes(r.body)) == (200, b'{"a":{"label":"cat"}}')
    assert [name for name, _ in rec.sent] == ["a"]


def test_a_soft_failure_is_held_as_it_came_and_the_answer_is_200(loop):
    rec = Recorder(a=(503, b'{"error":"busy"}'), b=b'{"ok":true}')
    r = infer(loop, sequence({"name": "a", "serviceName": "a"},
                             {"name": "b", "serviceName": "b"}), b"{}", rec)
    assert (r.status, bytes(r.body)) == (200, b'{"a":{"error":"busy"},"b":{"ok":true}}')


def test_a_hard_failure_answers_for_the_node_with_its_own_body_and_status(loop):
    rec = Recorder(a=b'{"a":1}', b=(503, b"busy"), c=b'{"c":1}')
    r = infer(loop, sequence({"name": "a", "serviceName": "a"},
                             {"name": "b", "serviceName": "b", "dependency": "Hard"},
                             {"name": "c", "serviceName": "c"}), b"{}", rec)
    assert (r.status, bytes(r.body)) == (503, b"busy")
    assert [name for name, _ in rec.sent] == ["a", "b"]


@pytest.mark.parametrize("answer", [b"[1,2]", b'"text"', b"3.5", b"null", b"true"])
def test_any_json_value_is_merged(loop, answer):
    rec = Recorder(a=b'{"a":1}', b=answer)
    r = infer(loop, sequence({"name": "a", "serviceName": "a"}, {"name": "b", "serviceName": "b"}),
              b"{}", rec)
    assert (r.status, bytes(r.body)) == (200, b'{"a":{"a":1},"b":' + answer + b"}")


@pytest.mark.parametrize("answer", [b"not json", b"", b'{"a":'])
def test_an_answer_that_is_not_json_fails_the_node(loop, answer):
    rec = Recorder(a=b'{"a":1}', b=answer)
    r = infer(loop, sequence({"name": "a", "serviceName": "a"}, {"name": "b", "serviceName": "b"}),
              b"{}", rec)
    assert r.status == 500
    assert r.json() == {"error": "Failed to process request",
                        "cause": "sequence step b: the answer is not JSON, so it cannot be merged "
                                 "(outputs: all)"}


def test_nested_merged_sequences_inside_an_ensemble_and_a_sequence(loop):
    rec = Recorder(a=b'{"a":1}', b=b'{"b":2}', c=b'{"c":3}')
    graph = {"nodes": {
        "root": {"routerType": "Sequence", "outputs": "all", "steps": [
            {"name": "both", "nodeName": "ens"}, {"name": "c", "serviceName": "c"}]},
        "ens": {"routerType": "Ensemble", "steps": [{"name": "inner", "nodeName": "inner"},
                                                   {"name": "b", "serviceName": "b"}]},
        "inner": {"routerType": "Sequence", "outputs": "all", "steps": [
            {"serviceName": "a"}, {"serviceName": "b", "data": "$response"}]},
    }}
    r = infer(loop, graph, b"{}", rec)
    assert r.status == 200
    assert r.json() == {"both": {"b": {"b": 2}, "inner": {"0": {"a": 1}, "1": {"b": 2}}},
                        "c": {"c": 3}}
    assert ("b", {"a": 1}) in rec.sent     # the inner Sequence still chained


def test_over_v2_outputs_are_concatenated_in_step_order_and_named_step_dot_output(loop):
    def double(req):
        return req.as_numpy("x") * 2

    def inc(req):
        return InferResponse("inc", [from_numpy("y", req.as_numpy("output0") + 1)])

    graph = sequence({"name": "z", "serviceName": "double"},
                     {"name": "a", "serviceName": "inc", "data": "$response"})
    plan = engine.load(graph, services={"double": double, "inc": inc}).compile()
    x = np.arange(4, dtype=np.float32)
    r = loop.run(plan.infer(InferRequest("g", [from_numpy("x", x)])))
    assert r.status == 200 and isinstance(r.body, InferResponse)
    assert [t.name for t in r.body.outputs] == ["z.output0", "a.y"]
    np.testing.assert_array_equal(r.body.as_numpy("z.output0"), x * 2)
    np.testing.assert_array_equal(r.body.as_numpy("a.y"), x * 2 + 1)


def test_over_v2_a_step_answering_no_v2_response_fails_the_node(loop):
    def double(req):
        return req.as_numpy("x") * 2

    graph = sequence({"name": "m", "serviceName": "double"}, {"name": "j", "serviceName": "json"})
    plan = engine.load(graph, services={"double": double, "json": lambda body: b'{"ok":1}'}).compile()
    r = loop.run(plan.infer(InferRequest("g", [from_numpy("x", np.ones(2))])))
    assert r.status == 500 and r.json()["cause"].startswith("sequence step j: not a v2 response")


def test_through_the_http_router(loop):
    async def go():
        a = await ModelServer(lambda req: (200, b'{"p": [1]}')).start()
        b = await ModelServer(lambda req: (200, req.body)).start()
        try:
            graph = sequence({"name": "a", "serviceUrl": a.url},
                             {"name": "b", "serviceUrl": b.url, "data": "$response"})
            async with running_router(graph) as router:
                return await router.post(b'{"q":1}')
        finally:
            await a.close()
            await b.close()

    r = loop.run(go())
    assert r.status == 200 and bytes(r.body) == b'{"a":{"p": [1]},"b":{"p": [1]}}'


# ---- validation ---------------------------------------------------------------------

def found(graph):
    return [(d.severity, d.path, d.message) for d in engine.load(graph).diagnose()]


def test_an_unsupported_outputs_value_is_an_error_with_its_path():
    assert ("error", "spec.nodes.root.outputs",
            'Unsupported value: "every": supported values: "last", "all"') in found(
        sequence({"serviceUrl": "http://m/v1/models/m:predict"}, outputs="every"))
    with pytest.raises(GraphValidationError):
        engine.load(sequence({"serviceUrl": "http://m"}, outputs=1)).validate()


def test_outputs_outside_a_sequence_is_a_warning_and_ignored(loop):
    graph = sequence({"name": "a", "serviceName": "a"}, router="Ensemble")
    assert found(graph) == [("warning", "spec.nodes.root.outputs",
                             "outputs applies to Sequence nodes only: ignored here")]
    r = infer(loop, graph, b"{}", Recorder(a=b'{"a":1}'))
    assert bytes(r.body) == b'{"a":{"a":1}}'


def test_two_steps_with_one_key_are_an_error():
    graph = sequence({"serviceUrl": "http://m/a"}, {"name": "0", "serviceUrl": "http://m/b"})
    assert found(graph) == [("error", "spec.nodes.root.steps[1]",
                             'outputs: all: steps 0 and 1 would both answer under the key "0"')]
    with pytest.raises(GraphSpecError, match="both answer under the key"):
        engine.load(sequence({"serviceUrl": "http://m/a"}, {"name": "0", "serviceUrl": "http://m/b"},
                             outputs=None)).compile(policy=policy(nodes={"root": {"outputs": "all"}}))


def test_a_full_document_warns_that_kubernetes_prunes_outputs():
    doc = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph",
           "metadata": {"name": "g"}, "spec": sequence({"serviceUrl": "http://m/v1/models/m:predict"})}
    assert found(doc) == [("warning", "spec.nodes.root.outputs",
                           "outputs is the engine's extension, not in KServe's CRD: the Kubernetes "
                           "API server prunes it; in Kubernetes set it in the TrafficPolicy "
                           "(spec.nodes.root.outputs)")]
    # a bare spec reached the router as written: nothing was pruned
    assert found(sequence({"serviceUrl": "http://m/v1/models/m:predict"})) == []
    assert engine.load(doc).to_dict() == doc


# ---- the TrafficPolicy --------------------------------------------------------------

def test_the_policy_sets_outputs_for_a_graph_without_it(loop):
    graph = sequence({"name": "a", "serviceName": "a"}, {"name": "b", "serviceName": "b"},
                     outputs=None)
    rec = Recorder(a=b'{"a":1}', b=b'{"b":2}')
    r = infer(loop, graph, b"{}", rec, traffic=policy(nodes={"root": {"outputs": "all"}}))
    assert bytes(r.body) == b'{"a":{"a":1},"b":{"b":2}}'


def test_the_policy_outputs_last_wins_over_the_graphs_all(loop):
    graph = sequence({"name": "a", "serviceName": "a"}, {"name": "b", "serviceName": "b"})
    rec = Recorder(a=b'{"a":1}', b=b'{"b":2}')
    r = infer(loop, graph, b"{}", rec, traffic=policy(nodes={"root": {"outputs": "last"}}))
    assert bytes(r.body) == b'{"b":2}'


@pytest.mark.parametrize("nodes, where, message", [
    ({"root": {"outputs": "every"}}, "spec.nodes.root.outputs",
     'Unsupported value: "every": supported values: "last", "all"'),
    ({"root": {"outputs": True}}, "spec.nodes.root.outputs",
     'Invalid value: "boolean": must be of type string'),
    ({"root": {"output": "all"}}, "spec.nodes.root.output",
     'unknown field "output": supported fields: "outputs"'),
    ({"root": "all"}, "spec.nodes.root", 'Invalid value: "string": must be of type object'),
    ([], "spec.nodes", 'Invalid value: "array": must be of type object'),
])
def test_policy_node_entries_are_checked_with_their_paths(nodes, where, message):
    with pytest.raises(GraphValidationError) as e:
        policy(nodes=nodes)
    assert [(d.path, d.message) for d in e.value.diagnostics] == [(where, message)]


def test_policy_node_entries_that_apply_to_nothing_warn():
    graph = engine.load({"nodes": {"root": {"routerType": "Sequence", "steps": [{"nodeName": "e"}]},
                                   "e": {"routerType": "Ensemble",
                                         "steps": [{"serviceUrl": "http://m/a"}]}}})
    p = policy(nodes={"nowhere": {"outputs": "all"}, "e": {"outputs": "all"}})
    assert [(d.path, d.message) for d in p.diagnose(graph)] == [
        ("spec.nodes.nowhere", 'the graph has no node "nowhere": the entry applies to nothing'),
        ("spec.nodes.e.outputs", "outputs applies to Sequence nodes only: ignored here")]


def test_the_examples_in_docs_spec_md_load():
    import re
    from pathlib import Path

    import yaml
    text = (Path(__file__).resolve().parent.parent / "docs" / "spec.md").read_text()
    section = text[text.index("## Extensions"):text.index("## Serialising back")]
    graph_block, policy_block = re.findall(r"```yaml\n(.*?)```", section, re.S)
    graph = engine.load(yaml.safe_load(graph_block)["spec"])
    assert all(d.severity == "warning" for d in graph.diagnose())
    traffic = engine.load_policy(policy_block)
    assert traffic.nodes["root"].outputs == "all"
    assert traffic.data == {"root/classify": "$response.predictions"}
    assert traffic.diagnose(graph) == []
