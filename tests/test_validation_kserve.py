"""KServe's own webhook test scenarios (inference_graph_validation_test.go), replayed.

KServe's webhook alone accepts ``root: {}``; the CRD schema (routerType required) and
our rules (a node needs steps) add errors of their own, so these tests compare only
the diagnostics produced by the webhook's rules, which must carry KServe's messages.
"""
import pytest

import engine
from engine.spec import rules

KSERVE_TEMPLATES = (rules.INVALID_GRAPH_NAME, rules.ROOT_NODE_NOT_FOUND, rules.WEIGHT_NOT_PROVIDED,
                    rules.INVALID_WEIGHT, rules.DUPLICATE_STEP_NAME, rules.TARGET_NOT_PROVIDED,
                    rules.INVALID_TARGET)
PREFIXES = tuple(t.split("{")[0] for t in KSERVE_TEMPLATES)
ROOT_ONLY = {"root": {}}


def webhook_messages(name, nodes):
    doc = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph",
           "metadata": {"name": name}, "spec": {"nodes": nodes}}
    return [d.message for d in engine.load(doc).diagnose()
            if d.severity == "error" and d.message.startswith(PREFIXES)]


def splitter(*steps):
    return {"root": {"routerType": "Splitter", "steps": list(steps)}}


SCENARIOS = {
    "simple": ("foo-bar", ROOT_ONLY, None),
    "alphanumeric model name": ("Abc-123", ROOT_ONLY, rules.INVALID_GRAPH_NAME.format("Abc-123", rules.GRAPH_NAME_FMT)),
    "name starts with number": ("4abc-3", ROOT_ONLY, rules.INVALID_GRAPH_NAME.format("4abc-3", rules.GRAPH_NAME_FMT)),
    "name starts with dash": ("-abc-3", ROOT_ONLY, rules.INVALID_GRAPH_NAME.format("-abc-3", rules.GRAPH_NAME_FMT)),
    "name ends with dash": ("abc-3-", ROOT_ONLY, rules.INVALID_GRAPH_NAME.format("abc-3-", rules.GRAPH_NAME_FMT)),
    "name includes dot": ("abc.123", ROOT_ONLY, rules.INVALID_GRAPH_NAME.format("abc.123", rules.GRAPH_NAME_FMT)),
    "name includes spaces": ("abc 123", ROOT_ONLY, rules.INVALID_GRAPH_NAME.format("abc 123", rules.GRAPH_NAME_FMT)),
    "without root node": ("foo-bar", {}, rules.ROOT_NODE_NOT_FOUND),
    "invalid weight for splitter": (
        "foo-bar", splitter({"weight": 80, "nodeName": "test"},
                            {"weight": 30, "serviceUrl": "http://foo-bar.local/"}),
        "InferenceGraph[foo-bar] Node[root] splitter node: the sum of traffic weights for all "
        "routing targets should be 100"),
    "weight missing in splitter": (
        "foo-bar", splitter({"serviceName": "test"}),
        "InferenceGraph[foo-bar] Node[root] Route[test] missing the 'Weight'"),
    "simple splitter": (
        "foo-bar", splitter({"weight": 80, "serviceName": "service1"},
                            {"weight": 20, "serviceName": "service2"}), None),
    "step inference target not provided": (
        "foo-bar", splitter({"weight": 100}),
        'Step 0 ("") in node "root" of InferenceGraph "foo-bar" does not specify an inference target'),
    "invalid inference graph target": (
        "foo-bar", splitter({"weight": 100, "serviceName": "service", "nodeName": "test"}),
        'Step 0 ("") in node "root" of InferenceGraph "foo-bar" specifies more than one of '
        "nodeName, serviceName, serviceUrl"),
    "duplicate step name": (
        "foo-bar", splitter({"name": "step1", "weight": 80, "serviceName": "service1"},
                            {"name": "step1", "weight": 20, "serviceName": "service2"}),
        'Node "root" of InferenceGraph "foo-bar" contains more than one step with name "step1"'),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_kserve_webhook_scenario(scenario):
    name, nodes, expected = SCENARIOS[scenario]
    assert webhook_messages(name, nodes) == ([] if expected is None else [expected])


@pytest.mark.parametrize("name", ["abc\n", "", "ab_c", "abc-é"])
def test_names_kserve_rejects(name):
    assert webhook_messages(name, {"root": {"routerType": "Sequence", "steps": [{"serviceName": "m"}]}}) == [
        rules.INVALID_GRAPH_NAME.format(name, rules.GRAPH_NAME_FMT)]


@pytest.mark.parametrize("name", ["a", "abc-123", "my-graph", "x1", "a-b-c"])
def test_names_kserve_accepts(name):
    assert webhook_messages(name, {"root": {"routerType": "Sequence", "steps": [{"serviceName": "m"}]}}) == []
