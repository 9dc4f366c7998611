"""KServe's end-to-end InferenceGraph scenarios, restated against our router over HTTP.

Source: kserve/kserve test/e2e/graph/test_inference_graph.py (``test_inference_graph``
and ``test_ig_scenario1`` .. ``test_ig_scenario10``) and its test-resources
(``ig_test_*_scenario_*.yaml``, ``switch_call_*_input.json``). KServe deploys real
InferenceServices and a router pod; here each InferenceService is a loopback HTTP
model server that answers as the KServe image does, the graph documents keep KServe's
structure (the Jinja placeholders ``{{ success_200_isvc_id }}`` / ``{{ error_404_isvc_id
}}`` become fixed service names, mapped to the loopback URLs the way KServe's
controller maps a serviceName to its predictor URL), and each request goes through
the real router over HTTP to ``/``, the path KServe's ``predict_ig`` posts to.

Every test asserts what KServe's test asserts: the status (KServe's client raises on
4xx/5xx, so "raises" means an error status) and the decoded JSON body. Where the
scenario's description states which services run (a Hard step stops the flow), the
calls each model received are checked too.
"""
from __future__ import annotations

import contextlib

import orjson

from routerkit import ModelServer, running_router

SUCCESS = "success-200-isvc"
ERROR = "error-404-isvc"

# What kserve/success-200-isvc and kserve/error-404-isvc answer: a kserve.Model whose
# predict returns the SUCCESS payload, and one that raises FastAPI's
# HTTPException(404, "Intentional 404 code"), which FastAPI renders as {"detail": ...}.
SUCCESS_BODY = {"predictions": [{"message": "SUCCESS"}]}
ERROR_BODY = {"detail": "Intentional 404 code"}
SWITCH_MISS = {"error": "Failed to process request",
               "cause": "None of the routes matched with the switch condition"}

# switch_call_*_input.json: a decision_picker that the Switch conditions look at.
ERROR_PICKER = {"decision_picker": "ERROR", "key1": {"name": "abc"}}
SUCCESS_PICKER = {"decision_picker": "SUCCESS", "key1": {"name": "abc"}}
NO_MATCH = {"decision_picker": "NO_MATCH", "key1": {"name": "abc"}}
# test/e2e/data/iris_input.json
IRIS = {"instances": [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]}
# custom_predictor_input.json is not in the stored copy of KServe; the success and
# error images ignore the payload, so any JSON request exercises the same path.
CUSTOM = {"instances": [[1.0, 2.0, 3.0]]}


def kserve_model(status, body):
    """A custom kserve.Model: it answers 400 to a body that is not JSON (KServe's
    model server decodes the request before predict), otherwise (status, body)."""
    def answer(request):
        try:
            orjson.loads(bytes(request.body))
        except orjson.JSONDecodeError:
            return 400, {"error": "Unrecognized request format"}
        return status, body
    return answer


def iris_classifier(request):
    """Stands in for the sklearn/xgboost iris models: a depth-two decision tree on
    petal length and width that gives the real models' classes for iris_input.json."""
    rows = orjson.loads(bytes(request.body))["instances"]
    classes = [0 if r[2] < 2.45 else (1 if r[2] < 4.95 and r[3] < 1.75 else 2) for r in rows]
    return 200, {"predictions": classes}


@contextlib.asynccontextmanager
async def models(**answers):
    """Start one loopback model per service name; yield {name: ModelServer}."""
    started = {}
    try:
        for name, answer in answers.items():
            started[name] = await ModelServer(answer).start()
        yield started
    finally:
        for m in started.values():
            await m.close()


def kserve_pair():
    return {SUCCESS: kserve_model(200, SUCCESS_BODY), ERROR: kserve_model(404, ERROR_BODY)}


async def ask(graph_doc, servers, *bodies):
    """POST each body to the graph's root path; return [(status, decoded JSON)]."""
    services = {name: m.url for name, m in servers.items()}
    out = []
    async with running_router(graph_doc, services=services) as router:
        for body in bodies:
            r = await router.post(body, path="/")
            out.append((r.status, orjson.loads(r.body)))
    return out


def calls(servers):
    return {name: len(m.requests) for name, m in servers.items()}


def sequence(*steps):
    return {"nodes": {"root": {"routerType": "Sequence", "steps": list(steps)}}}


# ---- test_inference_graph: sklearn -> xgboost -> sklearn, all Hard ---------------

def test_model_chainer_sklearn_xgboost_sklearn(loop):
    graph = sequence(
        {"serviceName": "isvc-sklearn-graph-1", "dependency": "Hard"},
        {"serviceName": "isvc-xgboost-graph", "data": "$request", "dependency": "Hard"},
        {"serviceName": "isvc-sklearn-graph-2", "data": "$request", "dependency": "Hard"})

    async def go():
        async with models(**{"isvc-sklearn-graph-1": iris_classifier,
                             "isvc-xgboost-graph": iris_classifier,
                             "isvc-sklearn-graph-2": iris_classifier}) as servers:
            [(status, body)] = await ask(graph, servers, IRIS)
            assert status == 200
            assert body["predictions"] == [1, 1]
            # data: $request: every step got the client's request, not a predecessor's answer
            for m in servers.values():
                assert [orjson.loads(bytes(r.body)) for r in m.requests] == [IRIS]
    loop.run(go())


# ---- Sequence ----------------------------------------------------------------------

def test_scenario1_sequence_soft_success_then_soft_error(loop):
    """success (soft) -> error (soft): the graph answers the error step's 404."""
    graph = sequence({"serviceName": SUCCESS}, {"serviceName": ERROR, "data": "$request"})

    async def go():
        async with models(**kserve_pair()) as servers:
            [(status, body)] = await ask(graph, servers, CUSTOM)
            assert status == 404
            assert body == ERROR_BODY
            assert calls(servers) == {SUCCESS: 1, ERROR: 1}
    loop.run(go())


def test_scenario2_sequence_soft_error_then_soft_success(loop):
    """error (soft) -> success (soft): the soft failure does not stop the sequence."""
    graph = sequence({"serviceName": ERROR}, {"serviceName": SUCCESS, "data": "$request"})

    async def go():
        async with models(**kserve_pair()) as servers:
            [(status, body)] = await ask(graph, servers, CUSTOM)
            assert status == 200
            assert body == SUCCESS_BODY
            assert calls(servers) == {SUCCESS: 1, ERROR: 1}
    loop.run(go())


SEQ_SCENARIO_3 = f"""
# The call stops at rootStep1: a Hard dependency that answers non-200.
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata:
  name: sequence-graph-e2e
spec:
  nodes:
    root:
      routerType: Sequence
      steps:
      - serviceName: {ERROR}
        name: "rootStep1"
        dependency: Hard
      - serviceName: {SUCCESS}
        name: "rootStep2"
        dependency: Soft
"""


def test_scenario3_sequence_hard_error_stops(loop):
    async def go():
        async with models(**kserve_pair()) as servers:
            [(status, body)] = await ask(SEQ_SCENARIO_3, servers, CUSTOM)
            assert status == 404
            assert body == ERROR_BODY
            assert calls(servers) == {SUCCESS: 0, ERROR: 1}
    loop.run(go())


# ---- Switch ------------------------------------------------------------------------

SWITCH_SCENARIO_4 = f"""
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata:
  name: switch-graph-e2e
spec:
  nodes:
    root:
      routerType: Switch
      steps:
      - name: "rootStep1"
        serviceName: {ERROR}
        condition: "[@this].#(decision_picker==ERROR)"
        dependency: Soft
      - name: "rootStep2"
        serviceName: {SUCCESS}
        condition: "[@this].#(decision_picker==SUCCESS)"
        dependency: Soft
"""


def test_scenario4_switch_picks_by_condition_or_misses_with_404(loop):
    async def go():
        async with models(**kserve_pair()) as servers:
            error, success, miss = await ask(SWITCH_SCENARIO_4, servers,
                                             ERROR_PICKER, SUCCESS_PICKER, NO_MATCH)
            assert error == (404, ERROR_BODY)          # case 1
            assert success == (200, SUCCESS_BODY)      # case 2
            assert miss == (404, SWITCH_MISS)          # case 3
            assert calls(servers) == {SUCCESS: 1, ERROR: 1}
            # the picked step gets the client's request as sent
            assert orjson.loads(bytes(servers[ERROR].requests[0].body)) == ERROR_PICKER
            assert orjson.loads(bytes(servers[SUCCESS].requests[0].body)) == SUCCESS_PICKER
    loop.run(go())


SWITCH_SCENARIO_5 = f"""
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata:
  name: switch-graph-e2e
spec:
  nodes:
    root:
      routerType: Sequence
      steps:
      - name: "rootStep1"
        nodeName: node1
        dependency: Soft
      - name: "rootStep2"
        serviceName: {SUCCESS}
    node1:
      routerType: Switch
      steps:
        - name: "node1Step1"
          serviceName: {ERROR}
          condition: "[@this].#(decision_picker==ERROR)"
"""


def test_scenario5_nested_switch_soft_error_continues(loop):
    async def go():
        async with models(**kserve_pair()) as servers:
            [(status, body)] = await ask(SWITCH_SCENARIO_5, servers, ERROR_PICKER)
            assert status == 200
            assert body == SUCCESS_BODY
            assert calls(servers) == {SUCCESS: 1, ERROR: 1}
    loop.run(go())


SWITCH_SCENARIO_6 = f"""
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata:
  name: switch-graph-e2e
spec:
  nodes:
    root:
      routerType: Sequence
      steps:
      - name: "rootStep1"
        nodeName: node1
        dependency: Hard
      - name: "rootStep2"
        serviceName: {SUCCESS}
    node1:
      routerType: Switch
      steps:
        - name: "node1Step1"
          serviceName: {ERROR}
          condition: "[@this].#(decision_picker==ERROR)"
          dependency: Hard
"""


def test_scenario6_nested_switch_hard_error_stops(loop):
    async def go():
        async with models(**kserve_pair()) as servers:
            [(status, body)] = await ask(SWITCH_SCENARIO_6, servers, ERROR_PICKER)
            assert status == 404
            assert body == ERROR_BODY
            assert calls(servers) == {SUCCESS: 0, ERROR: 1}
    loop.run(go())


# ---- Ensemble ----------------------------------------------------------------------

ENSEMBLE_SCENARIO_7 = f"""
# Both steps are soft dependencies: the answer combines both steps' outputs.
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata:
  name: ensemble-graph-e2e
spec:
  nodes:
    root:
      routerType: Ensemble
      steps:
      - name: "rootStep1"
        serviceName: {SUCCESS}
      - name: "rootStep2"
        serviceName: {ERROR}
"""


def test_scenario7_ensemble_soft_steps_combine(loop):
    async def go():
        async with models(**kserve_pair()) as servers:
            [(status, body)] = await ask(ENSEMBLE_SCENARIO_7, servers, SUCCESS_PICKER)
            assert status == 200
            assert body == {"rootStep1": SUCCESS_BODY, "rootStep2": ERROR_BODY}
            assert calls(servers) == {SUCCESS: 1, ERROR: 1}
    loop.run(go())


ENSEMBLE_SCENARIO_8 = f"""
# The Hard step answers non-200, so its answer is the graph's answer.
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata:
  name: ensemble-graph-e2e
spec:
  nodes:
    root:
      routerType: Ensemble
      steps:
      - name: "rootStep1"
        serviceName: {ERROR}
        dependency: Hard
      - name: "rootStep2"
        serviceName: {SUCCESS}
      - name: "rootStep3"
        serviceName: {SUCCESS}
"""


def test_scenario8_ensemble_hard_error_decides(loop):
    async def go():
        async with models(**kserve_pair()) as servers:
            [(status, body)] = await ask(ENSEMBLE_SCENARIO_8, servers, SUCCESS_PICKER)
            # KServe's test checks only that the call raised and the body; its router
            # returns the failed Hard step's own status.
            assert status >= 400
            assert status == 404
            assert body == ERROR_BODY
    loop.run(go())


# ---- Splitter ----------------------------------------------------------------------

SPLITTER_SCENARIO_9 = f"""
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata:
  name: splitter-graph-e2e
spec:
  nodes:
    root:
      routerType: Sequence
      steps:
      - name: "rootStep1"
        nodeName: node1
        dependency: Soft
      - name: "rootStep2"
        serviceName: {SUCCESS}
    node1:
      routerType: Splitter
      steps:
        - name: "node1Step1"
          weight: 100
          serviceName: {ERROR}
          condition: "[@this].#(decision_picker==ERROR)"
"""


# KServe's pickupRoute draws from [0, 100], so a lone weight-100 step is missed (and
# the handler panics) once in 101 requests; the engine draws from [0, 100) (see
# docs/semantics.md), so repeating the request pins that every draw picks the step.
SPLITTER_REPEATS = 64


def test_scenario9_nested_splitter_soft_error_continues(loop):
    async def go():
        async with models(**kserve_pair()) as servers:
            answers = await ask(SPLITTER_SCENARIO_9, servers, *[IRIS] * SPLITTER_REPEATS)
            assert answers == [(200, SUCCESS_BODY)] * SPLITTER_REPEATS
            # the Splitter ignores the condition (iris_input has no decision_picker)
            assert calls(servers) == {SUCCESS: SPLITTER_REPEATS, ERROR: SPLITTER_REPEATS}
    loop.run(go())


SPLITTER_SCENARIO_10 = f"""
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata:
  name: splitter-graph-e2e
spec:
  nodes:
    root:
      routerType: Sequence
      steps:
      - name: "rootStep1"
        nodeName: node1
        dependency: Hard
      - name: "rootStep2"
        serviceName: {SUCCESS}
    node1:
      routerType: Splitter
      steps:
        - name: "node1Step1"
          weight: 100
          serviceName: {ERROR}
          condition: "[@this].#(decision_picker==ERROR)"
          dependency: Hard
"""


def test_scenario10_nested_splitter_hard_error_stops(loop):
    async def go():
        async with models(**kserve_pair()) as servers:
            answers = await ask(SPLITTER_SCENARIO_10, servers, *[IRIS] * SPLITTER_REPEATS)
            assert answers == [(404, ERROR_BODY)] * SPLITTER_REPEATS
            assert calls(servers) == {SUCCESS: 0, ERROR: SPLITTER_REPEATS}
    loop.run(go())
