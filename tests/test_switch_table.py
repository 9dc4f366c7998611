"""A Switch's equality routes on one key, evaluated in one walk (engine._gjson
SwitchTable), pick exactly the step that evaluating each condition's Path picks."""
from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine import compiler, gjson
from engine._gjson import SwitchTable, switch_key

# literal spellings as they appear in a condition, and the same kinds as values
NUMBER_SPELLINGS = ["0", "-0", "0.0", "-0.0", "1", "1.0", "1e0", "1E0", "10e-1", "+1",
                    "2", "64", "-1", "1.5", "1e400", "-1e400", "007", "0x10", "1_0",
                    "NaN", "Inf", "-Inf", "9007199254740993"]
WORDS = ["true", "false", "null", "ERROR", "SUCCESS", "a", "", "1a"]
STRINGS = ["1", "1.0", "a", "", "true", "false", "a\\\"b", "\\u0041", "A", "é",
           "a*", "x|y", "a.b", "(", ")", "a\\\\", "\\n"]


def quoted(s: str) -> str:
    return '"' + s + '"'


literal = st.one_of(
    st.sampled_from(NUMBER_SPELLINGS),
    st.sampled_from(WORDS),
    st.sampled_from(STRINGS).map(quoted),
    st.integers(-3, 70).map(str),
    st.text(alphabet="ab\"\\1. ", max_size=4).map(lambda s: json.dumps(s)),
)

# raw JSON texts of values for the key
VALUE = st.one_of(
    st.sampled_from(NUMBER_SPELLINGS[:13] + ["1.00", "-0e5", "64.0", "6.4e1"]),
    st.sampled_from(["true", "false", "null", "[]", "{}", "[1]", '{"id":1}']),
    st.sampled_from(STRINGS).map(quoted),
    st.integers(-3, 70).map(str),
    st.integers(-3, 70).map(lambda i: quoted(str(i))),
)


@st.composite
def element(draw, key, lits=()):
    # a value is often one of the case's own literals, written as JSON or as it stands
    value = VALUE if not lits else st.one_of(VALUE, st.sampled_from(lits), st.sampled_from(lits))
    kind = draw(st.sampled_from(["obj", "obj", "obj", "absent", "scalar", "array", "dup"]))
    if kind == "obj":
        return "{" + json.dumps(key) + ":" + draw(value) + ',"x":1}'
    if kind == "dup":
        return "{" + json.dumps(key) + ":" + draw(value) + "," + json.dumps(key) + ":" + draw(value) + "}"
    if kind == "absent":
        return '{"other":' + draw(value) + "}"
    if kind == "scalar":
        return draw(value)
    return "[" + ",".join(draw(st.lists(value, max_size=3))) + "]"


@st.composite
def case(draw):
    prefix = draw(st.sampled_from(["instances", "a.b", "[@this]"]))
    key = draw(st.sampled_from(["id", "model"]))
    op = draw(st.sampled_from(["==", " == ", "=="]))
    lits = draw(st.lists(literal, min_size=1, max_size=70))
    conds = [f"{prefix}.#({key}{op}{lit})" for lit in lits]
    elems = draw(st.lists(element(key, tuple(lits)), max_size=8))
    array = "[" + ",".join(elems) + "]"
    shape = draw(st.sampled_from(["array", "array", "object", "scalar", "dup", "none"]))
    inner = {"array": array, "object": '{"#(x)":1}', "scalar": "5",
             "dup": array + ',"' + prefix.split(".")[-1] + '":[' + ",".join(draw(st.lists(element(key, tuple(lits)), max_size=4))) + "]",
             "none": array}[shape]
    if prefix == "[@this]":
        # the element is the document itself
        doc = elems[0] if elems and elems[0].startswith("{") else "{" + json.dumps(key) + ":" + draw(st.sampled_from(lits)) + "}"
    elif prefix == "a.b":
        doc = '{"a":{"b":' + inner + "}}" if shape != "none" else '{"a":[' + inner + "]}"
    else:
        doc = '{"instances":' + inner + ',"z":0}' if shape != "none" else "[" + inner + "]"
    return conds, doc


def per_condition(conds, doc) -> int:
    for k, c in enumerate(conds):
        if gjson.Path(c).exists(doc):
            return k
    return -1


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case())
def test_table_picks_the_condition_each_path_picks(c):
    conds, doc = c
    try:
        table = SwitchTable(conds)
    except ValueError:
        # not groupable (a '~' literal, say): nothing to compare
        assert any(switch_key(x) is None for x in conds)
        return
    assert table.first(doc) == per_condition(conds, doc), (conds, doc)
    assert table.first(doc.encode()) == per_condition(conds, doc)


@pytest.mark.parametrize("doc", [
    '{"instances":[{"id":"1"}]}',            # an unquoted literal matches the string
    '{"instances":[{"id":1.0}]}',
    '{"instances":[{"id":1e0}]}',
    '{"instances":[{"id":-0}]}',
    '{"instances":[{"id":true}]}',
    '{"instances":[{"id":"a\\"b"}]}',
    '{"instances":[{"id":"\\u0041"}]}',
    '{"instances":[{"id":2}],"instances":[{"id":1}]}',       # duplicate keys: both walked
    '{"instances":{"#(id==1)":1}}',                         # query meets an object
    '{"instances":[[{"id":1}],{"id":"x"}]}',
    '{"instances":[{"id":"abc"}]}', '{"instances":[{"id":0}]}',
    '{"instances":[{"other":1}]}', '{"instances":[1,2,3]}', '{"instances":[]}',
    '[{"id":1}]', '', 'not json', '{"instances":[{"id":1}',
])
def test_table_on_edge_documents(doc):
    conds = ["instances.#(id==2)", 'instances.#(id=="abc")', "instances.#(id==1)",
             "instances.#(id==0)", "instances.#(id==true)", 'instances.#(id=="a\\"b")',
             'instances.#(id=="\\u0041")', "instances.#(id==A)", 'instances.#(id=="x")']
    for start in range(len(conds)):
        part = conds[start:]
        assert SwitchTable(part).first(doc) == per_condition(part, doc), (part, doc)


def test_switch_key_accepts_equality_on_plain_paths_only():
    assert switch_key("instances.#(id==1)") == (b"instances", b"id", b"1")
    assert switch_key('instances.#( model == "a\\"b" )') == (b"instances", b"model", b'a"b')
    assert switch_key("[@this].#(decision_picker==ERROR)") == (b"[@this]", b"decision_picker", b"ERROR")
    for path in ["instances.#(id!=1)", "instances.#(id>1)", "instances.#(id%1)",
                 "instances.#(id==1)#", "instances.#(id==1).x", "#(id==1)",
                 "instances.#(id==~true)", "a*.#(id==1)", "@this.#(id==1)",
                 "a|b.#(id==1)", "..a.#(id==1)", "instances.#(id)", "instances.#(id==1"]:
        assert switch_key(path) is None, path


# ---- through the compiled plan and the router ---------------------------------

SWITCH_MISS = {"error": "Failed to process request",
               "cause": "None of the routes matched with the switch condition"}


def routes_graph(conds, **extra):
    steps = [{"serviceName": f"m{k}", "condition": c} for k, c in enumerate(conds)]
    services = {f"m{k}": (lambda k: lambda payload, headers=None: {"step": k})(k)
                for k in range(len(conds))}
    return engine.load({"nodes": {"root": {"routerType": "Switch", "steps": steps}}},
                       services=services)


def compile_plan(g, grouped, monkeypatch):
    monkeypatch.setattr(compiler, "SWITCH_TABLES", grouped)
    try:
        return g.compile()
    finally:
        monkeypatch.setattr(compiler, "SWITCH_TABLES", True)


def test_the_compiler_groups_maximal_runs_on_one_path_and_key(monkeypatch):
    conds = ["instances.#(id==1)", "instances.#(id==2)", "x", "instances.#(id==3)",
             "instances.#(model==3)", "instances.#(model==4)", "instances.#(model==5)",
             "[@this].#(a==1)", "instances.#(id>1)", "instances.#(id==9)", "instances.#(id==8)"]
    plan = compile_plan(routes_graph(conds), True, monkeypatch)
    node = plan.compiled.nodes[0]
    assert [(start, table.size) for start, table in node.switch_groups] == [(0, 2), (4, 3), (9, 2)]
    assert compile_plan(routes_graph(conds), False, monkeypatch).compiled.nodes[0].switch_groups is None


BODIES = [
    {"instances": [{"id": 70}, {"id": 3}, {"id": 1}]},
    {"instances": [{"id": 9}]},
    {"instances": [{"model": 5}, {"id": 2}]},
    {"instances": [{"id": 5}], "a": 1},
    {"a": 1},
    {"instances": {"#(id==1)": 1}},
    {"instances": []},
]


@pytest.mark.parametrize("body", BODIES)
def test_grouped_plan_takes_the_step_the_ungrouped_plan_takes(loop, monkeypatch, body):
    conds = ["instances.#(id==1)", "instances.#(id==2)", "x", "instances.#(id==3)",
             "instances.#(model==3)", "instances.#(model==4)", "instances.#(model==5)",
             "[@this].#(a==1)", "instances.#(id>4)", "instances.#(id==9)", "instances.#(id==8)"]
    answers = []
    for grouped in (True, False):
        plan = compile_plan(routes_graph(conds), grouped, monkeypatch)
        r = loop.run(plan.infer(body))
        answers.append((r.status, r.json()))
    assert answers[0] == answers[1]


def test_64_routes_over_the_router(loop):
    from routerkit import ModelServer, running_router

    async def go():
        model = await ModelServer(lambda request: (200, {"path": request.path.decode()})).start()
        base = model.url.rsplit("/v1/", 1)[0]
        steps = [{"serviceUrl": f"{base}/v1/models/m{k}:predict",
                  "condition": f"instances.#(id=={k})"} for k in range(1, 65)]
        graph = {"nodes": {"root": {"routerType": "Switch", "steps": steps}}}
        filler = [{"id": 0, "data": "x" * 100}] * 100
        out = []
        try:
            async with running_router(graph) as router:
                assert router.instance is not None
                for body in ({"instances": filler + [{"id": 64}]},
                             {"instances": [{"id": 7}, {"id": 3}]},
                             {"instances": [{"id": "12"}]},
                             {"instances": filler + [{"id": 65}]}):
                    r = await router.post(body)
                    out.append((r.status, orjson.loads(r.body)))
                r = await router.post(b'{"instances":[{"id":64}]')     # not JSON
                out.append((r.status, orjson.loads(r.body)))
                r = await router.post(b'{"instances":[{"id":64}],}')
                out.append((r.status, orjson.loads(r.body)))
        finally:
            await model.close()
        return out

    out = loop.run(go())
    assert out[0] == (200, {"path": "/v1/models/m64:predict"})
    assert out[1] == (200, {"path": "/v1/models/m3:predict"})     # the first step, not element
    assert out[2] == (200, {"path": "/v1/models/m12:predict"})
    assert out[3] == (404, SWITCH_MISS)
    assert out[4] == (404, SWITCH_MISS)
    assert out[5] == (404, SWITCH_MISS)


def test_grouped_conditions_see_a_messages_json_header(loop):
    import numpy as np
    from engine.oip import InferRequest, from_numpy
    from oipkit import GrpcClient, GrpcModel, numpy_model
    from routerkit import running_router

    async def go():
        plus = await GrpcModel(numpy_model(lambda x: x + 1)).start()
        minus = await GrpcModel(numpy_model(lambda x: x - 1)).start()
        graph = {"nodes": {"root": {"routerType": "Switch", "steps": [
            {"serviceUrl": plus.url(), "condition": 'inputs.#(datatype=="FP32")'},
            {"serviceUrl": minus.url(), "condition": 'inputs.#(datatype=="INT64")'}]}}}
        out = []
        try:
            async with running_router(graph, grpc=True) as router:
                assert router.instance.plan.compiled.nodes[0].switch_groups is not None
                client = GrpcClient(router.grpc_port)
                try:
                    for x in (np.array([5, 6], dtype=np.int64), np.array([1.5], dtype=np.float32)):
                        out.append((x, await client.infer(InferRequest("g", [from_numpy("x", x)]))))
                finally:
                    await client.close()
        finally:
            await plus.close()
            await minus.close()
        return out

    (x1, a), (x2, b) = loop.run(go())
    np.testing.assert_array_equal(a.as_numpy("output0"), x1 - 1)
    np.testing.assert_array_equal(b.as_numpy("output0"), x2 + 1)
