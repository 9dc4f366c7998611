"""KServe PR #5386's retry API in the spec layer: ``spec.defaultRetry`` and
``steps[].retry`` load, validate with field paths, serialise back unchanged, and take
KServe's defaults; a graph without them is what it was."""
from __future__ import annotations

import json

import pytest
import yaml

import engine
from engine.spec import RetryConfig
from engine.spec.traffic import RetryPolicy, step_policy

URL = "http://model/v1/models/m:predict"


def graph_with(step_retry=None, default_retry=None, **step):
    s = {"serviceUrl": URL, **step}
    if step_retry is not None:
        s["retry"] = step_retry
    spec = {"nodes": {"root": {"routerType": "Sequence", "steps": [s]}}}
    if default_retry is not None:
        spec["defaultRetry"] = default_retry
    return spec


def test_retry_fields_load_typed_and_round_trip_exactly():
    doc = graph_with({"maxRetries": 2, "initialDelayMs": 50}, {"maxDelayMs": 1000})
    graph = engine.load(doc)
    step = graph.nodes["root"].steps[0]
    assert step.retry == RetryConfig(max_retries=2, initial_delay_ms=50)
    assert graph.spec.default_retry == RetryConfig(max_delay_ms=1000)
    assert graph.to_dict() == doc
    assert json.loads(graph.to_json()) == doc
    assert yaml.safe_load(graph.to_yaml()) == doc
    assert engine.load(graph.to_yaml()).to_dict() == doc
    assert graph.diagnose() == []


def test_a_full_resource_round_trips_its_retry_fields():
    doc = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph",
           "metadata": {"name": "g"}, "spec": graph_with({"maxRetries": 0}, {"maxRetries": 10})}
    graph = engine.load(doc)
    assert graph.to_dict() == doc
    assert graph.diagnose() == []


def test_omitted_fields_take_kserve_defaults():
    assert RetryConfig().effective() == (3, 100, 300000)
    assert RetryConfig(max_retries=1).effective() == (1, 100, 300000)
    graph = engine.load(graph_with({}))
    policy = step_policy(None, graph, "root", graph.nodes["root"].steps[0])
    assert policy.retry == RetryPolicy(3, 100, 300000)


def test_a_graph_without_retry_fields_serialises_and_runs_as_before():
    doc = graph_with()
    graph = engine.load(doc)
    assert graph.to_dict() == doc
    assert "retry" not in graph.to_json() and "Retry" not in graph.to_yaml()
    assert graph.spec.default_retry is None and graph.nodes["root"].steps[0].retry is None
    assert step_policy(None, graph, "root", graph.nodes["root"].steps[0]).is_empty()


@pytest.mark.parametrize("retry, path, message", [
    ({"maxRetries": 11}, "retry.maxRetries", "must be less than or equal to 10"),
    ({"maxRetries": -1}, "retry.maxRetries", "must be greater than or equal to 0"),
    ({"maxRetries": 1.5}, "retry.maxRetries", "must be of type integer"),
    ({"maxRetries": True}, "retry.maxRetries", "must be of type integer"),
    ({"initialDelayMs": -5}, "retry.initialDelayMs", "must be greater than or equal to 0"),
    ({"initialDelayMs": "100ms"}, "retry.initialDelayMs", "must be of type integer"),
    ({"maxDelayMs": -1}, "retry.maxDelayMs", "must be greater than or equal to 0"),
    ("3", "retry", "must be of type object"),
])
def test_wrong_types_and_ranges_are_errors_with_the_field_path(retry, path, message):
    for doc, where in ((graph_with(retry), f"spec.nodes.root.steps[0].{path}"),
                       (graph_with(default_retry=retry),
                        "spec.default" + path[0].upper() + path[1:])):
        graph = engine.load(doc)
        errors = [d for d in graph.diagnose() if d.severity == "error"]
        assert [d.path for d in errors] == [where]
        assert message in errors[0].message
        with pytest.raises(engine.GraphValidationError) as info:
            graph.validate()
        assert info.value.path == where
        assert graph.to_dict() == doc  # kept as written


def test_bounds_are_accepted():
    graph = engine.load(graph_with({"maxRetries": 10, "initialDelayMs": 0, "maxDelayMs": 0},
                                   {"maxRetries": 0}))
    assert graph.validate() == []


def test_an_unknown_retry_field_warns_as_other_pruned_fields():
    graph = engine.load(graph_with({"maxRetrys": 2}))
    [d] = graph.diagnose()
    assert (d.severity, d.path) == ("warning", "spec.nodes.root.steps[0].retry.maxRetrys")


def test_retry_on_a_node_step_warns_that_it_applies_to_service_calls_only():
    graph = engine.load({"nodes": {
        "root": {"routerType": "Sequence", "steps": [{"nodeName": "n", "retry": {}}]},
        "n": {"routerType": "Sequence", "steps": [{"serviceUrl": URL}]}}})
    [d] = graph.diagnose()
    assert (d.severity, d.path) == ("warning", "spec.nodes.root.steps[0].retry")
    assert "only to service calls" in d.message
    assert step_policy(None, graph, "root", graph.nodes["root"].steps[0]).is_empty()


def test_the_steps_own_retry_wins_over_the_graph_default_as_a_whole():
    graph = engine.load(graph_with({"maxRetries": 1}, {"maxRetries": 5, "initialDelayMs": 7}))
    policy = step_policy(None, graph, "root", graph.nodes["root"].steps[0])
    # KServe: the step's RetryConfig replaces the default; its omitted fields default
    assert policy.retry == RetryPolicy(1, 100, 300000)
    graph = engine.load(graph_with(default_retry={"maxRetries": 5, "initialDelayMs": 7}))
    assert step_policy(None, graph, "root", graph.nodes["root"].steps[0]).retry == \
        RetryPolicy(5, 7, 300000)


def test_max_retries_zero_turns_retry_off():
    graph = engine.load(graph_with({"maxRetries": 0}, {"maxRetries": 4}))
    assert step_policy(None, graph, "root", graph.nodes["root"].steps[0]).is_empty()


def test_an_unvalidated_graph_with_a_bad_retry_fails_at_merge_with_the_path():
    graph = engine.load(graph_with({"maxRetries": 99}))
    with pytest.raises(engine.GraphSpecError) as info:
        step_policy(None, graph, "root", graph.nodes["root"].steps[0])
    assert info.value.path == "spec.nodes.root.steps[0].retry.maxRetries"
