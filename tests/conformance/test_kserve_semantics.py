"""KServe router semantics, restated from cmd/router/main_test.go and the e2e graph
scenarios, run in process with local (callable) models so that every behaviour of the
executor is pinned without sockets. The same behaviours over HTTP backends are in
tests/test_router_http.py."""
from __future__ import annotations

import json

import pytest

import engine
from engine import _core

SWITCH_MISS = {"error": "Failed to process request",
               "cause": "None of the routes matched with the switch condition"}


class Model:
    """An in-process model that records what it received and answers ``answer``."""

    def __init__(self, answer, status=200):
        self.answer = answer
        self.status = status
        self.calls: list = []

    def __call__(self, payload, headers=None):
        self.calls.append((payload, headers))
        body = self.answer(payload) if callable(self.answer) else self.answer
        return (self.status, body) if self.status != 200 else body


def graph(nodes, **services):
    return engine.load({"nodes": nodes}, services=services)


def run(loop, g, body, headers=None, **policy):
    plan = g.compile(policy=engine.Policy(**policy)) if policy else g.compile()
    return loop.run(plan.infer(body, headers=headers))


def seq(*steps):
    return {"routerType": "Sequence", "steps": list(steps)}


# ---- Sequence ------------------------------------------------------------------

def test_chainer_maps_predictions_and_passes_response(loop):
    m1 = Model({"predictions": "1"})
    m2 = Model({"predictions": "2"})
    g = graph({"root": seq(
        {"name": "model1", "serviceName": "m1", "mapPredictionsToInstances": True},
        {"name": "model2", "serviceName": "m2", "data": "$response"})}, m1=m1, m2=m2)
    r = run(loop, g, {"predictions": ["test", "test2"]})
    assert r.status == 200
    assert r.json() == {"predictions": "2"}
    assert m1.calls[0][0] == {"instances": ["test", "test2"]}
    assert m2.calls[0][0] == {"predictions": "1"}


def test_sequence_without_data_sends_the_original_request_to_every_step(loop):
    m1, m2 = Model({"predictions": "1"}), Model({"predictions": "2"})
    g = graph({"root": seq({"serviceName": "m1"}, {"serviceName": "m2"})}, m1=m1, m2=m2)
    r = run(loop, g, {"instances": [1]})
    assert r.json() == {"predictions": "2"}
    assert m2.calls[0][0] == {"instances": [1]}


def test_response_data_on_first_step_gets_the_request(loop):
    m1 = Model({"predictions": "1"})
    g = graph({"root": seq({"serviceName": "m1", "data": "$response"})}, m1=m1)
    run(loop, g, {"instances": [7]})
    assert m1.calls[0][0] == {"instances": [7]}


def test_unmet_condition_stops_with_previous_response_and_200(loop):
    m1 = Model({"predictions": [{"label": "cat", "score": [0.8, 0.2]}]}, status=200)
    m2 = Model({"predictions": "never"})
    g = graph({"root": seq(
        {"name": "step1", "serviceName": "m1"},
        {"name": "step2", "serviceName": "m2", "condition": 'predictions.#(label=="dog")'})},
        m1=m1, m2=m2)
    r = run(loop, g, {"instances": [{"modelId": "1"}]})
    assert r.status == 200
    assert r.json() == {"predictions": [{"label": "cat", "score": [0.8, 0.2]}]}
    assert m2.calls == []


def test_unmet_condition_answers_200_even_after_a_soft_failure(loop):
    m1 = Model({"error": "busy"}, status=503)
    m2 = Model({"predictions": "never"})
    g = graph({"root": seq({"serviceName": "m1"},
                           {"serviceName": "m2", "condition": "predictions"})}, m1=m1, m2=m2)
    r = run(loop, g, {})
    assert (r.status, r.json()) == (200, {"error": "busy"})


def test_met_condition_runs_the_step(loop):
    m1 = Model({"predictions": [{"label": "dog"}]})
    m2 = Model({"predictions": "breed"})
    g = graph({"root": seq({"serviceName": "m1"},
                           {"serviceName": "m2", "condition": 'predictions.#(label=="dog")'})},
              m1=m1, m2=m2)
    assert run(loop, g, {}).json() == {"predictions": "breed"}


def test_condition_on_first_step_is_an_invalid_response(loop):
    m1 = Model({"predictions": 1})
    g = graph({"root": seq({"serviceName": "m1", "condition": "instances"})}, m1=m1)
    r = run(loop, g, {"instances": [1]})
    assert r.status == 500
    assert r.json() == {"error": "Failed to process request", "cause": "invalid response"}
    assert m1.calls == []


def test_condition_on_non_json_previous_response_is_an_invalid_response(loop):
    m1 = Model(b"not json")
    m2 = Model({})
    g = graph({"root": seq({"serviceName": "m1"}, {"serviceName": "m2", "condition": "x"})},
              m1=m1, m2=m2)
    r = run(loop, g, {})
    assert (r.status, r.json()["cause"]) == (500, "invalid response")


def test_hard_failure_stops_the_sequence_with_its_answer(loop):
    m1 = Model({"error": "bad input"}, status=400)
    m2 = Model({"predictions": "never"})
    g = graph({"root": seq({"serviceName": "m1", "dependency": "Hard"},
                           {"serviceName": "m2"})}, m1=m1, m2=m2)
    r = run(loop, g, {})
    assert (r.status, r.json()) == (400, {"error": "bad input"})
    assert m2.calls == []


def test_soft_failure_goes_on_and_last_status_wins(loop):
    m1 = Model({"error": "bad input"}, status=400)
    m2 = Model(lambda p: {"got": p}, status=200)
    g = graph({"root": seq({"serviceName": "m1"},
                           {"serviceName": "m2", "data": "$response"})}, m1=m1, m2=m2)
    r = run(loop, g, {})
    assert (r.status, r.json()) == (200, {"got": {"error": "bad input"}})


def test_sequence_answers_the_last_status_even_when_it_failed_softly(loop):
    m1 = Model({"ok": 1})
    m2 = Model({"error": "x"}, status=422)
    g = graph({"root": seq({"serviceName": "m1"}, {"serviceName": "m2"})}, m1=m1, m2=m2)
    assert run(loop, g, {}).status == 422


# ---- Switch ----------------------------------------------------------------------

def _switch_graph(m1, m2):
    return graph({"root": {"routerType": "Switch", "steps": [
        {"serviceName": "m1", "condition": 'instances.#(modelId=="1")'},
        {"serviceName": "m2", "condition": 'instances.#(modelId=="2")'}]}}, m1=m1, m2=m2)


def test_switch_takes_the_matching_step(loop):
    m1, m2 = Model({"predictions": "one"}), Model({"predictions": "two"})
    r = run(loop, _switch_graph(m1, m2), {"instances": [{"modelId": "2"}]})
    assert (r.status, r.json()) == (200, {"predictions": "two"})
    assert m1.calls == []


def test_switch_takes_the_first_match(loop):
    m1, m2 = Model({"predictions": "one"}), Model({"predictions": "two"})
    g = graph({"root": {"routerType": "Switch", "steps": [
        {"serviceName": "m1", "condition": "instances"},
        {"serviceName": "m2", "condition": "instances"}]}}, m1=m1, m2=m2)
    assert run(loop, g, {"instances": []}).json() == {"predictions": "one"}


def test_switch_miss_at_root_is_404(loop):
    m1, m2 = Model({}), Model({})
    r = run(loop, _switch_graph(m1, m2), {"instances": [{"modelId": "3"}]})
    assert (r.status, r.json()) == (404, SWITCH_MISS)
    assert r.content_type == b"application/json"


def test_switch_on_invalid_json_is_a_miss(loop):
    m1, m2 = Model({}), Model({})
    r = run(loop, _switch_graph(m1, m2), b'{"instances": [{"modelId": "1"}')
    assert (r.status, r.json()) == (404, SWITCH_MISS)
    assert m1.calls == []


def test_switch_miss_below_root_becomes_500(loop):
    m1 = Model({})
    g = graph({
        "root": seq({"nodeName": "pick"}),
        "pick": {"routerType": "Switch", "steps": [{"serviceName": "m1", "condition": "nope"}]},
    }, m1=m1)
    r = run(loop, g, {"instances": []})
    assert (r.status, r.json()) == (500, SWITCH_MISS)


def test_switch_passes_a_step_failure_through(loop):
    m1 = Model({"error": "x"}, status=503)
    g = graph({"root": {"routerType": "Switch", "steps": [
        {"serviceName": "m1", "condition": "a", "dependency": "Hard"}]}}, m1=m1)
    r = run(loop, g, {"a": 1})
    assert (r.status, r.json()) == (503, {"error": "x"})


# ---- Ensemble --------------------------------------------------------------------

def test_ensemble_merges_by_step_name(loop):
    m1, m2 = Model({"predictions": "1"}), Model({"predictions": "2"})
    g = graph({"root": {"routerType": "Ensemble", "steps": [
        {"name": "model1", "serviceName": "m1"}, {"name": "model2", "serviceName": "m2"}]}},
        m1=m1, m2=m2)
    r = run(loop, g, {"instances": ["test", "test2"]})
    assert r.status == 200
    assert r.json() == {"model1": {"predictions": "1"}, "model2": {"predictions": "2"}}
    assert m1.calls[0][0] == m2.calls[0][0] == {"instances": ["test", "test2"]}


def test_ensemble_keys_unnamed_steps_by_index_in_go_map_order(loop):
    ms = [Model({"p": i}) for i in range(3)]
    g = graph({"root": {"routerType": "Ensemble", "steps": [
        {"name": "zeta", "serviceName": "a"}, {"serviceName": "b"}, {"name": "alpha", "serviceName": "c"}]}},
        a=ms[0], b=ms[1], c=ms[2])
    r = run(loop, g, {})
    # Go's json.Marshal sorts map keys
    assert list(json.loads(r.body)) == ["1", "alpha", "zeta"]
    assert r.json() == {"zeta": {"p": 0}, "1": {"p": 1}, "alpha": {"p": 2}}


def test_ensemble_soft_failure_is_merged_and_answers_200(loop):
    m1, m2 = Model({"error": "down"}, status=503), Model({"p": 2})
    g = graph({"root": {"routerType": "Ensemble", "steps": [
        {"name": "a", "serviceName": "m1"}, {"name": "b", "serviceName": "m2"}]}}, m1=m1, m2=m2)
    r = run(loop, g, {})
    assert (r.status, r.json()) == (200, {"a": {"error": "down"}, "b": {"p": 2}})


def test_ensemble_hard_failure_decides_the_answer(loop):
    m1, m2 = Model({"p": 1}), Model({"error": "down"}, status=503)
    g = graph({"root": {"routerType": "Ensemble", "steps": [
        {"name": "a", "serviceName": "m1"}, {"name": "b", "serviceName": "m2", "dependency": "Hard"}]}},
        m1=m1, m2=m2)
    r = run(loop, g, {})
    assert (r.status, r.json()) == (503, {"error": "down"})


def test_ensemble_first_hard_failure_in_step_order_wins(loop):
    m1, m2 = Model({"error": "first"}, status=500), Model({"error": "second"}, status=503)
    g = graph({"root": {"routerType": "Ensemble", "steps": [
        {"name": "a", "serviceName": "m1", "dependency": "Hard"},
        {"name": "b", "serviceName": "m2", "dependency": "Hard"}]}}, m1=m1, m2=m2)
    r = run(loop, g, {})
    assert (r.status, r.json()) == (500, {"error": "first"})


def test_ensemble_step_answering_non_object_fails_like_go(loop):
    m1, m2 = Model([1, 2]), Model({"p": 2})
    g = graph({"root": {"routerType": "Ensemble", "steps": [
        {"name": "a", "serviceName": "m1"}, {"name": "b", "serviceName": "m2"}]}}, m1=m1, m2=m2)
    r = run(loop, g, {})
    assert r.status == 500
    assert r.json() == {"error": "Failed to process request",
                        "cause": "json: cannot unmarshal array into Go value of type map[string]interface {}"}


def test_ensemble_step_answering_null_merges_null(loop):
    m1 = Model(b"null")
    g = graph({"root": {"routerType": "Ensemble", "steps": [{"name": "a", "serviceName": "m1"}]}}, m1=m1)
    assert run(loop, g, {}).json() == {"a": None}


def test_ensemble_step_answering_invalid_json(loop):
    m1 = Model(b"oops")
    g = graph({"root": {"routerType": "Ensemble", "steps": [{"name": "a", "serviceName": "m1"}]}}, m1=m1)
    r = run(loop, g, {})
    assert (r.status, r.json()["cause"]) == (500, "invalid character 'o' looking for beginning of value")


def test_ensemble_of_nodes(loop):
    m1, m2 = Model({"p": 1}), Model({"p": 2})
    g = graph({
        "root": {"routerType": "Ensemble", "steps": [{"name": "x", "nodeName": "left"},
                                                     {"name": "y", "nodeName": "right"}]},
        "left": seq({"serviceName": "m1"}),
        "right": seq({"serviceName": "m2"}),
    }, m1=m1, m2=m2)
    assert run(loop, g, {}).json() == {"x": {"p": 1}, "y": {"p": 2}}


def test_ensemble_runs_steps_concurrently(loop):
    import asyncio
    started, release = [], asyncio.Event()

    def slow(tag):
        async def model(payload):
            started.append(tag)
            if len(started) == 2:
                release.set()
            await asyncio.wait_for(release.wait(), 5)
            return {"tag": tag}
        return model

    g = graph({"root": {"routerType": "Ensemble", "steps": [
        {"name": "a", "serviceName": "a"}, {"name": "b", "serviceName": "b"}]}}, a=slow("a"), b=slow("b"))
    assert run(loop, g, {}).json() == {"a": {"tag": "a"}, "b": {"tag": "b"}}


# ---- Splitter ------------------------------------------------------------------

def test_splitter_follows_weights(loop):
    a, b = Model({"m": "a"}), Model({"m": "b"})
    g = graph({"root": {"routerType": "Splitter", "steps": [
        {"serviceName": "a", "weight": 20}, {"serviceName": "b", "weight": 80}]}}, a=a, b=b)
    plan = g.compile()
    _core.seed_router_rng(1234)

    async def many():
        for _ in range(2000):
            await plan.infer({})
    loop.run(many())
    share = len(a.calls) / 2000
    assert len(a.calls) + len(b.calls) == 2000
    assert 0.16 < share < 0.24   # 20% with ~10 standard deviations of room


def test_splitter_with_all_weight_on_one_step(loop):
    a, b = Model({"m": "a"}), Model({"m": "b"})
    g = graph({"root": {"routerType": "Splitter", "steps": [
        {"serviceName": "a", "weight": 0}, {"serviceName": "b", "weight": 100}]}}, a=a, b=b)
    plan = g.compile()

    async def many():
        return [(await plan.infer({})).json()["m"] for _ in range(200)]
    assert set(loop.run(many())) == {"b"}


# ---- Nested pipeline (KServe docs: dog breed) --------------------------------------

def test_switch_then_conditional_ensemble(loop):
    cat = Model({"predictions": [{"label": "cat", "score": [0.1, 0.9]}]})
    dog = Model({"predictions": [{"label": "dog", "score": [0.8, 0.2]}]})
    beagle = Model({"predictions": [{"label": "beagle", "score": [0.1, 0.9]}]})
    poodle = Model({"predictions": [{"label": "poodle", "score": [0.8, 0.2]}]})
    g = graph({
        "root": seq({"name": "step1", "nodeName": "animal-categorize"},
                    {"name": "step2", "nodeName": "breed-categorize",
                     "condition": 'predictions.#(label=="dog")'}),
        "animal-categorize": {"routerType": "Switch", "steps": [
            {"name": "model1", "serviceName": "cat", "condition": 'instances.#(modelId=="1")'},
            {"name": "model2", "serviceName": "dog", "condition": 'instances.#(modelId=="2")'}]},
        "breed-categorize": {"routerType": "Ensemble", "steps": [
            {"name": "model3", "serviceName": "beagle"}, {"name": "model4", "serviceName": "poodle"}]},
    }, cat=cat, dog=dog, beagle=beagle, poodle=poodle)
    r = run(loop, g, {"instances": [{"modelId": "2"}]})
    assert r.json() == {"model3": beagle.answer, "model4": poodle.answer}
    r = run(loop, g, {"instances": [{"modelId": "1"}]})
    assert (r.status, r.json()) == (200, cat.answer)


# ---- Answers and headers -------------------------------------------------------------

def test_non_json_answer_is_text(loop):
    m1 = Model(b"plain words")
    g = graph({"root": seq({"serviceName": "m1"})}, m1=m1)
    r = run(loop, g, {})
    assert (r.status, r.body, r.content_type) == (200, b"plain words", b"text/plain; charset=utf-8")


def test_model_exception_is_a_500_answer(loop):
    def broken(payload):
        raise RuntimeError("weights missing")
    g = graph({"root": seq({"serviceName": "m", "dependency": "Hard"}, {"serviceName": "m"})}, m=broken)
    r = run(loop, g, {})
    assert (r.status, r.json()) == (500, {"error": "RuntimeError: weights missing"})


@pytest.mark.parametrize("patterns, expected", [
    ("", {"Authorization", "Test-Header-1", "Test-Header-2", "Content-Type"}),
    ("Test-Header-Key", set()),
    ("Test-Header-1", {"Test-Header-1"}),
    ("Test-Header-*,Auth*", {"Test-Header-1", "Test-Header-2", "Authorization"}),
    ("Test-Header-[0-9,Auth*", {"Authorization"}),
])
def test_header_propagation_patterns(loop, patterns, expected):
    m1 = Model({"ok": 1})
    g = graph({"root": seq({"serviceName": "m1"}, {"serviceName": "m1"})}, m1=m1)
    headers = [("authorization", "Bearer Token"), ("test-header-1", "v1"),
               ("TEST-HEADER-2", "v2"), ("content-type", "application/json"), ("Host", "x")]
    run(loop, g, {}, headers=headers, propagate_headers=patterns)
    assert len(m1.calls) == 2
    for _, got in m1.calls:
        assert set(got) == expected


def test_no_propagation_without_patterns(loop, monkeypatch):
    monkeypatch.delenv("PROPAGATE_HEADERS", raising=False)
    m1 = Model({"ok": 1})
    g = graph({"root": seq({"serviceName": "m1"})}, m1=m1)
    run(loop, g, {}, headers={"Authorization": "x"})
    assert m1.calls[0][1] == {}


def test_propagation_reads_the_environment(loop, monkeypatch):
    monkeypatch.setenv("PROPAGATE_HEADERS", "X-Req.*")
    m1 = Model({"ok": 1})
    g = graph({"root": seq({"serviceName": "m1"})}, m1=m1)
    run(loop, g, {}, headers={"x-request-id": "42", "Other": "no"})
    assert m1.calls[0][1] == {"X-Request-Id": "42"}


def test_canonical_header_names_follow_go():
    c = _core.canonical_header_name
    assert c(b"x-request-id") == b"X-Request-Id"
    assert c("CONTENT-type") == b"Content-Type"
    assert c(b"x_weird") == b"X_weird"
    assert c(b"has space") == b"has space"   # not a token: Go leaves it alone


@pytest.mark.parametrize("pattern, python", [
    (r"X-Req.*", r"X-Req.*"),
    (r"(?i)^x-b3-", r"(?i)^x-b3-"),
    (r"^X-Id\z", r"^X-Id\Z"),            # RE2's end of text
    (r"[*+]x", r"[*+]x"),                # a class, not a quantifier
    (r"[]a]+", r"[]a]+"),
    (r"(?<n>X)-y", r"(?P<n>X)-y"),       # Go 1.22's named group spelling
])
def test_re2_patterns_translate(pattern, python):
    assert _core.re2_to_python(pattern) == python


@pytest.mark.parametrize("pattern", [
    r"(?=X)", r"(?<!A)B", r"(a)\1", r"(?P<n>a)(?P=n)", r"X\Z", r"X-*+", r"(?>X)", r"(?(1)a|b)",
])
def test_patterns_re2_refuses_are_skipped_with_a_warning(pattern):
    patterns, problems = _core.compile_header_patterns(f"{pattern},X-Ok")
    assert len(patterns) == 1 and patterns[0].search("X-Ok")
    assert len(problems) == 1 and problems[0].startswith(f"failed to compile pattern {pattern!r}")


def test_unicode_classes_python_lacks_are_skipped_with_a_warning():
    patterns, problems = _core.compile_header_patterns(r"X-\pL+,X-Ok")
    assert len(patterns) == 1 and len(problems) == 1
    assert problems[0].startswith("failed to compile pattern 'X-\\\\pL+'")


def test_re2_classes_are_ascii_only():
    """RE2's \\w, \\d and \\s never match non-ASCII letters; Python's would."""
    patterns, problems = _core.compile_header_patterns(r"^X-\w+$")
    assert problems == []
    assert patterns[0].search("X-Abc") and not patterns[0].search("X-Ab\u00e9")


def test_propagated_values_are_trimmed_as_go_reads_them(loop):
    """Go's textproto trims spaces and tabs around a header value before the router
    sees it; the engine forwards the same value."""
    m1 = Model({"ok": 1})
    g = graph({"root": seq({"serviceName": "m1"})}, m1=m1)
    run(loop, g, {}, headers=[("x-a", "  ab \t"), ("x-b", "c d")], propagate_headers="X-.*")
    assert m1.calls[0][1] == {"X-A": "ab", "X-B": "c d"}


def test_ensemble_keys_are_written_and_ordered_as_go_marshals_a_map(loop):
    """Go sorts map keys by their bytes before escaping ('a"' < 'a#', though the
    escaped '"a\\""' sorts after '"a#"') and escapes '<', '>', '&' as \\u003c..."""
    ms = [Model({"p": i}) for i in range(4)]
    g = graph({"root": {"routerType": "Ensemble", "steps": [
        {"name": "x<y&z", "serviceName": "a"}, {"name": "a#", "serviceName": "b"},
        {"name": 'a"', "serviceName": "c"}, {"name": "\u00e9", "serviceName": "d"}]}},
        a=ms[0], b=ms[1], c=ms[2], d=ms[3])
    r = run(loop, g, {})
    assert r.status == 200
    assert r.body == (b'{"a\\"":{"p":2},"a#":{"p":1},"x\\u003cy\\u0026z":{"p":0},'
                      b'"\xc3\xa9":{"p":3}}')
