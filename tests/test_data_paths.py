"""Data paths (the engine's extension): a Sequence step with ``data: $response.<GJSON
path>`` or ``$request.<GJSON path>`` is sent the raw JSON the path selects in the
previous answer or in the request; a path that selects nothing makes the step answer
400 without calling its target (Soft and Hard apply as to a model's 400). A path in the
graph applies only when asked (``Policy(data_paths=True)``, ``--data-paths``,
``IGE_DATA_PATHS=1``): KServe's router sends the request for it, and KServe's
controller hands the field over. A TrafficPolicy's ``data``
(``spec.steps["<node>/<step>"].data``) applies either way. Plain ``$request`` and
``$response`` are unchanged."""
from __future__ import annotations

import numpy as np
import pytest

import engine
from engine.errors import GraphValidationError
from engine.oip import InferRequest, InferResponse, from_numpy
from routerkit import ModelServer, RecordingModels, running_router

ANSWER = b'{"predictions": [ {"label":"dog", "score": 0.9}, {"label":"cat","score":0.1} ], "id": "r"}'


def sequence(*steps, router="Sequence"):
    return {"nodes": {"root": {"routerType": router, "steps": list(steps)}}}


def policy(**spec):
    return engine.load_policy({"apiVersion": "ige/v1alpha1", "kind": "TrafficPolicy", "spec": spec})


# an in-process model gets its body decoded as JSON; through_router sees raw bytes
Models = RecordingModels


ON = engine.Policy(data_paths=True)


def infer(loop, graph, body, models, traffic=None):
    plan = engine.load(graph, services=models.services()).compile(
        policy=engine.Policy(data_paths=True, traffic=traffic))
    return loop.run(plan.infer(body))


async def through_router(graph_of, request, first_answer=ANSWER):
    """Run ``graph_of(url_a, url_b)`` on the HTTP router; model a answers
    ``first_answer``, model b echoes: the raw bytes b was sent and the answer."""
    a = await ModelServer(lambda req: (200, first_answer)).start()
    b = await ModelServer(lambda req: (200, req.body)).start()
    try:
        async with running_router(graph_of(a.url, b.url), data_paths=True) as router:
            r = await router.post(request)
        return [bytes(req.body) for req in b.requests], r
    finally:
        await a.close()
        await b.close()


def test_response_path_sends_the_raw_bytes_of_the_match(loop):
    sent, r = loop.run(through_router(lambda a, b: sequence(
        {"serviceUrl": a}, {"serviceUrl": b, "data": "$response.predictions"}), b'{"q":1}'))
    assert sent == [b'[ {"label":"dog", "score": 0.9}, {"label":"cat","score":0.1} ]']
    assert r.status == 200 and bytes(r.body) == sent[0]


def test_request_path_selects_from_the_original_request(loop):
    sent, _ = loop.run(through_router(lambda a, b: sequence(
        {"serviceUrl": a}, {"serviceUrl": b, "data": "$request.instances.1"}),
        b'{"instances": [{"x": 1}, {"x":  2}]}'))
    assert sent == [b'{"x":  2}']


def test_a_response_path_on_the_first_step_selects_from_the_request(loop):
    sent, _ = loop.run(through_router(lambda a, b: sequence(
        {"serviceUrl": b, "data": "$response.instances"}), b'{"instances": [7]}'))
    assert sent == [b"[7]"]


def test_queries_and_modifiers_build_their_json(loop):
    models = Models(a=ANSWER, b=b"{}", c=b"{}")
    infer(loop, sequence({"serviceName": "a"},
                         {"serviceName": "b", "data": '$response.predictions.#(label=="cat")'},
                         {"serviceName": "c", "data": "$request.xs|@reverse"}),
          b'{"xs": [1, 2, 3]}', models)
    assert models.sent[1:] == [("b", {"label": "cat", "score": 0.1}), ("c", [3, 2, 1])]


def test_map_predictions_applies_to_the_selection(loop):
    models = Models(a=b'{"out": {"predictions": [1, 2]}}', b=b"{}")
    infer(loop, sequence({"serviceName": "a"},
                         {"serviceName": "b", "data": "$response.out",
                          "mapPredictionsToInstances": True}), b"{}", models)
    assert models.sent[1] == ("b", {"instances": [1, 2]})


def test_a_path_that_selects_nothing_answers_400_and_soft_goes_on(loop):
    models = Models(a=ANSWER, b=b'{"never": 1}', c=b"{}")
    r = infer(loop, sequence({"serviceName": "a"},
                             {"serviceName": "b", "data": "$response.missing"},
                             {"serviceName": "c", "data": "$response"}), b"{}", models)
    cause = {"error": "Failed to process request",
             "cause": "data $response.missing: the path selects nothing in the previous response"}
    assert [name for name, _ in models.sent] == ["a", "c"]     # b was not called
    assert models.sent[1] == ("c", cause)                       # the 400's body went on
    assert r.status == 200


def test_a_path_that_selects_nothing_ends_a_hard_step_with_400(loop):
    models = Models(a=ANSWER, b=b"{}", c=b"{}")
    r = infer(loop, sequence({"serviceName": "a"},
                             {"serviceName": "b", "data": "$request.instances", "dependency": "Hard"},
                             {"serviceName": "c"}), b'{"inputs": []}', models)
    assert r.status == 400 and r.json() == {
        "error": "Failed to process request",
        "cause": "data $request.instances: the path selects nothing in the request"}
    assert [name for name, _ in models.sent] == ["a"]


def test_a_previous_answer_that_is_not_json_answers_400(loop):
    models = Models(a=b"plain text", b=b"{}")
    r = infer(loop, sequence({"serviceName": "a"},
                             {"serviceName": "b", "data": "$response.x", "dependency": "Hard"}),
              b"{}", models)
    assert r.status == 400
    assert r.json()["cause"] == "data $response.x: the previous response is not JSON"


def test_a_step_skipped_by_its_condition_does_not_evaluate_its_path(loop):
    models = Models(a=b'{"label": "cat"}', b=b"{}")
    r = infer(loop, sequence({"serviceName": "a"},
                             {"serviceName": "b", "condition": "dog", "data": "$response.missing",
                              "dependency": "Hard"}), b"{}", models)
    assert (r.status, bytes(r.body)) == (200, b'{"label": "cat"}')


def test_data_paths_inside_a_nested_merged_sequence(loop):
    models = Models(a=ANSWER, b=b'{"b":1}')
    graph = {"nodes": {
        "root": {"routerType": "Ensemble", "steps": [{"name": "seq", "nodeName": "seq"}]},
        "seq": {"routerType": "Sequence", "outputs": "all", "steps": [
            {"name": "a", "serviceName": "a"},
            {"name": "b", "serviceName": "b", "data": "$response.id"},
            {"name": "miss", "serviceName": "b", "data": "$response.nope"}]}}}
    r = infer(loop, graph, b"{}", models)
    assert models.sent[1] == ("b", "r")
    doc = r.json()["seq"]
    assert doc["b"] == {"b": 1} and doc["miss"]["cause"].startswith("data $response.nope:")


def test_outside_a_sequence_data_is_ignored_as_kserve_ignores_it(loop):
    models = Models(a=b'{"a":1}')
    graph = sequence({"name": "a", "serviceName": "a", "data": "$request.x"}, router="Ensemble")
    infer(loop, graph, b'{"x": 1, "y": 2}', models)
    assert models.sent == [("a", {"x": 1, "y": 2})]


def test_plain_request_and_response_are_unchanged(loop):
    models = Models(a=b'{"a":1}', b=b'{"b":2}', c=b'{"c":3}')
    graph = sequence({"serviceName": "a", "data": "$response"}, {"serviceName": "b", "data": "$response"},
                     {"serviceName": "c", "data": "$request"})
    plan = engine.load(graph, services=models.services()).compile(policy=ON)
    assert [(s.use_response, s.data_path, s.data_text) for s in plan.compiled.nodes[0].steps] == [
        (False, None, ""), (True, None, ""), (False, None, "")]
    r = loop.run(plan.infer(b'{"q":0}'))
    assert models.sent == [("a", {"q": 0}), ("b", {"a": 1}), ("c", {"q": 0})]
    assert bytes(r.body) == b'{"c":3}'


# ---- OIP messages: the path reads the message's v2 JSON form ------------------------

def test_over_v2_a_path_reads_the_message_in_its_json_form(loop):
    def double(req):
        return InferResponse("double", [from_numpy("y", req.as_numpy("x") * 2)])

    models = Models(shape=b"{}", data=b"{}")
    services = {"double": double, **models.services()}
    graph = sequence({"serviceName": "shape", "data": "$request.inputs.0.shape"},
                     {"serviceName": "double"},
                     {"serviceName": "data", "data": "$response.outputs.0.data"})
    plan = engine.load(graph, services=services).compile(policy=ON)
    r = loop.run(plan.infer(InferRequest("g", [from_numpy("x", np.array([1, 2, 3], np.int32))])))
    assert r.status == 200
    assert models.sent == [("shape", [3]), ("data", [2, 4, 6])]


# ---- validation ---------------------------------------------------------------------

def found(graph):
    return [(d.severity, d.path, d.message) for d in engine.load(graph).diagnose()]


URL = "http://m/v1/models/m:predict"


def test_a_data_path_with_bad_syntax_is_an_error_with_its_field_path():
    graph = sequence({"serviceUrl": URL}, {"serviceUrl": URL, "data": "$response.predictions[0"})
    assert found(graph) == [("error", "spec.nodes.root.steps[1].data",
                             "data '$response.predictions[0': GJSON path 'predictions[0' at "
                             "position 11: unbalanced '[' is never closed")]
    with pytest.raises(GraphValidationError, match=r"steps\[1\]\.data"):
        engine.load(graph).compile()
    assert found(sequence({"serviceUrl": URL}, {"serviceUrl": URL, "data": "$request."})) == [
        ("error", "spec.nodes.root.steps[1].data",
         "data '$request.': GJSON path '' at position 0: empty path")]


def test_a_sound_data_path_warns_that_kserve_ignores_it():
    assert found(sequence({"serviceUrl": URL}, {"serviceUrl": URL, "data": "$response.predictions"})) == [
        ("warning", "spec.nodes.root.steps[1].data",
         'data "$response.predictions": KServe\'s router ignores the path and sends the original '
         "request, and so does the engine unless asked (--data-paths, IGE_DATA_PATHS=1, or the "
         "TrafficPolicy's data), which sends part of the previous response")]


def test_without_the_switch_a_graphs_data_path_is_read_as_kserve_reads_it(loop):
    # the graph KServe's controller hands over: the request, as KServe's router sends it
    models = Models(a=ANSWER, b=b"{}")
    graph = sequence({"serviceName": "a"}, {"serviceName": "b", "data": "$response.predictions"})
    plan = engine.load(graph, services=models.services()).compile()
    step = plan.compiled.nodes[0].steps[1]
    assert (step.use_response, step.data_path, step.data_text) == (False, None, "")
    loop.run(plan.infer(b'{"q":1}'))
    assert models.sent == [("a", {"q": 1}), ("b", {"q": 1})]
    # asked for: the selection
    models.sent.clear()
    loop.run(engine.load(graph, services=models.services()).compile(policy=ON).infer(b'{"q":1}'))
    assert models.sent[1] == ("b", [{"label": "dog", "score": 0.9}, {"label": "cat", "score": 0.1}])


def test_the_switch_from_the_command_line_and_the_env(tmp_path):
    from engine.cli import build_parser
    from engine.cli_router import policy_from
    parser = build_parser()
    args = parser.parse_args(["serve", "g.yaml"])
    assert policy_from(args, {}).data_paths is False
    assert policy_from(args, {"IGE_DATA_PATHS": "1"}).data_paths is True
    assert policy_from(parser.parse_args(["serve", "g.yaml", "--data-paths"]), {}).data_paths is True
    assert policy_from(parser.parse_args(["run", "g.yaml", "--data-paths", "--data", "{}"]), {}).data_paths is True


def test_warnings_for_the_first_step_and_outside_a_sequence():
    first = found(sequence({"serviceUrl": URL, "data": "$response.x"}))
    assert first[-1] == ("warning", "spec.nodes.root.steps[0].data",
                         "a Sequence's first step has no previous response: the path selects "
                         'from the request, as "$response" means the request there')
    assert found(sequence({"serviceUrl": URL, "data": "$request.x", "weight": 100},
                          router="Splitter")) == [
        ("warning", "spec.nodes.root.steps[0].data",
         "data applies to Sequence steps only: the steps of Splitter nodes are sent the request as it is")]


def test_other_data_values_keep_kserves_request_reading(loop):
    graph = sequence({"serviceName": "a"}, {"serviceName": "b", "data": "$responses.x"})
    assert found(graph)[0][2].startswith('data "$responses.x" is neither "$request" nor "$response"')
    models = Models(a=b'{"a":1}', b=b"{}")
    infer(loop, graph, b'{"q":1}', models)
    assert models.sent[1] == ("b", {"q": 1})


# ---- the TrafficPolicy --------------------------------------------------------------

def test_the_policy_sets_a_steps_data_path(loop):
    models = Models(a=ANSWER, b=b"{}")
    graph = sequence({"name": "a", "serviceName": "a"}, {"name": "b", "serviceName": "b"})
    infer(loop, graph, b"{}", models, traffic=policy(steps={"root/b": {"data": "$response.id"}}))
    assert models.sent[1] == ("b", "r")


def test_the_policy_wins_over_the_graph_and_a_name_over_an_index(loop):
    models = Models(a=ANSWER, b=b"{}")
    graph = sequence({"name": "a", "serviceName": "a"},
                     {"name": "b", "serviceName": "b", "data": "$response.predictions"})
    traffic = policy(steps={"root/1": {"data": "$response"}, "root/b": {"data": "$request"}})
    infer(loop, graph, b'{"q":1}', models, traffic=traffic)
    assert models.sent[1] == ("b", {"q": 1})


def test_the_policy_data_beside_call_policy(loop):
    models = Models(a=ANSWER, b=b"{}")
    traffic = policy(steps={"root/1": {"data": "$response.id", "timeout": "2s"}})
    plan = engine.load(sequence({"serviceName": "a"}, {"serviceName": "b"}),
                       services=models.services()).compile(policy=traffic)
    step = plan.compiled.nodes[0].steps[1]
    assert step.data_text == "$response.id" and step.policy.timeout == 2.0
    loop.run(plan.infer(b"{}"))
    assert models.sent[1] == ("b", "r")


@pytest.mark.parametrize("data, message", [
    ("$response.a[", "data '$response.a[': GJSON path 'a[' at position 1: unbalanced '[' is never closed"),
    ("predictions", 'Unsupported value: "predictions": supported values: "$request", "$response", '
                    '"$request.<GJSON path>", "$response.<GJSON path>"'),
    (3, 'Invalid value: "integer": must be of type string'),
])
def test_policy_data_is_checked_at_load_with_its_path(data, message):
    with pytest.raises(GraphValidationError) as e:
        policy(steps={"root/1": {"data": data}})
    assert [(d.path, d.message) for d in e.value.diagnostics] == [
        ('spec.steps["root/1"].data', message)]


def test_a_policy_data_entry_for_a_node_step_does_not_warn_about_call_policy():
    graph = engine.load({"nodes": {
        "root": {"routerType": "Sequence", "steps": [{"serviceUrl": URL}, {"nodeName": "n"}]},
        "n": {"routerType": "Ensemble", "steps": [{"serviceUrl": URL}]}}})
    assert policy(steps={"root/1": {"data": "$response.x"}}).diagnose(graph) == []
    assert [(d.path, d.message) for d in policy(steps={"n/0": {"data": "$request.x"}}).diagnose(graph)] == [
        ('spec.steps["n/0"].data',
         "data applies to Sequence steps only: the steps of Ensemble nodes are sent the request as it is")]


def test_explain_shows_the_data_path_and_merged_outputs():
    graph = {"nodes": {"root": {"routerType": "Sequence", "outputs": "all", "steps": [
        {"serviceUrl": URL}, {"serviceUrl": URL, "data": "$response.predictions"},
        {"serviceUrl": URL, "data": "$response"}]}}}
    text = engine.load(graph).compile(policy=ON).explain()
    assert "[0] root: Sequence, outputs all" in text
    assert "(data=$response.predictions)" in text and "(data=$response)" in text
