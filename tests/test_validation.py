"""Validation: every rule with its exact message and path; KServe-accepted graphs pass."""
import copy
import sys
import types
from pathlib import Path

import pytest

import engine
from engine.errors import GraphSpecError, GraphValidationError
from engine.spec import Diagnostic

ROOT = Path(__file__).resolve().parent.parent
INVALID = ROOT / "tests" / "data" / "invalid"
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if p.name != "services.yaml")

NAME_MSG = ('The InferenceGraph "Dog_Cat" is invalid: a InferenceGraph name must consist of lower '
            "case alphanumeric characters or '-', and must start with alphabetical character. "
            '(e.g. "my-name" or "abc-123", regex used for validation is '
            "'[a-z]([-a-z0-9]*[a-z0-9])?')")
ROOT_MSG = ("root node not found, InferenceGraph needs a node with name 'root' as the root node "
            "of the graph")

# file -> every diagnostic it must produce, in order: (severity, path, message)
CASES = {
    "bad-name.yaml": [("error", "metadata.name", NAME_MSG)],
    # without a root, reachability means nothing: no unreachable-node warnings
    "no-root.yaml": [("error", "spec.nodes", ROOT_MSG)],
    "duplicate-step-name.yaml": [
        ("error", "spec.nodes.root.steps[1].name",
         'Node "root" of InferenceGraph "dup-steps" contains more than one step with name "model"')],
    "no-target.yaml": [
        ("error", "spec.nodes.root.steps[1]",
         'Step 1 ("second") in node "root" of InferenceGraph "no-target" does not specify an inference target')],
    "several-targets.yaml": [
        ("error", "spec.nodes.root.steps[0]",
         'Step 0 ("both") in node "root" of InferenceGraph "two-targets" specifies more than one of '
         "nodeName, serviceName, serviceUrl")],
    "splitter-missing-weight.yaml": [
        ("error", "spec.nodes.root.steps[1].weight",
         "InferenceGraph[canary] Node[root] Route[churn-v2] missing the 'Weight'")],
    "splitter-weight-sum.yaml": [
        ("error", "spec.nodes.root.steps",
         "InferenceGraph[canary] Node[root] splitter node: the sum of traffic weights for all "
         "routing targets should be 100")],
    "bad-router-type.yaml": [
        ("error", "spec.nodes.root.routerType",
         'Unsupported value: "RoundRobin": supported values: "Sequence", "Splitter", "Ensemble", "Switch"')],
    "missing-router-type.yaml": [("error", "spec.nodes.root.routerType", "Required value")],
    "bad-dependency.yaml": [
        ("error", "spec.nodes.root.steps[0].dependency",
         'Unsupported value: "Strong": supported values: "Soft", "Hard"')],
    "bad-scale-metric.yaml": [
        ("error", "spec.scaleMetric",
         'Unsupported value: "gpu": supported values: "cpu", "memory", "concurrency", "rps"')],
    "weight-not-integer.yaml": [
        ("error", "spec.nodes.root.steps[0].weight", 'Invalid value: "string": must be of type integer')],
    "weight-out-of-range.yaml": [
        ("error", "spec.nodes.root.steps[0].weight", "Invalid value: 120: must be less than or equal to 100"),
        ("error", "spec.nodes.root.steps[1].weight", "Invalid value: -20: must be greater than or equal to 0")],
    "unknown-node.yaml": [
        ("error", "spec.nodes.root.steps[1].nodeName",
         'node "breeds" is not defined in spec.nodes; KServe\'s router would fail every request '
         "that reaches this step")],
    "cycle.yaml": [("error", "spec.nodes.left.steps[0].nodeName", "cycle: root -> left -> root")],
    "empty-node.yaml": [
        ("error", "spec.nodes.tail.steps", "Required value: a node needs at least one step")],
    "wrong-kind.yaml": [
        ("error", "apiVersion",
         'Invalid value: "serving.kserve.io/v1beta1": must be "serving.kserve.io/v1alpha1"'),
        ("error", "kind", 'Invalid value: "InferenceService": must be "InferenceGraph"')],
    "warn-unreachable.yaml": [
        ("warning", "spec.nodes.orphan", 'node "orphan" is not reachable from root and never runs')],
    "warn-switch-no-condition.yaml": [
        ("warning", "spec.nodes.root.steps[1].condition",
         "Switch step has no condition, so it never matches (an empty GJSON path selects nothing)")],
    "warn-data.yaml": [
        ("warning", "spec.nodes.root.steps[1].data",
         'data "$response.predictions": KServe\'s router ignores the path and sends the original '
         "request, and so does the engine unless asked (--data-paths, IGE_DATA_PATHS=1, or the "
         "TrafficPolicy's data), which sends part of the previous response")],
    "warn-unknown-field.yaml": [
        ("warning", "spec.nodes.root.steps[0].dependancy",
         'unknown field "dependancy" (Kubernetes prunes it silently)')],
}


def found(graph):
    return [(d.severity, d.path, d.message) for d in graph.diagnose()]


def test_every_invalid_file_has_a_case():
    files = {p.name for p in INVALID.iterdir()}
    syntax = {"malformed.yaml", "malformed.json", "duplicate-key.yaml"}  # see test_spec.py
    assert files - syntax == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_rule(name):
    graph = engine.load(INVALID / name)
    expected = CASES[name]
    assert found(graph) == expected
    errors = [e for e in expected if e[0] == "error"]
    if errors:
        with pytest.raises(GraphValidationError) as info:
            graph.validate()
        assert [(d.severity, d.path, d.message) for d in info.value.diagnostics] == expected
        assert info.value.path == errors[0][1]
        for _, path, message in errors:
            assert f"{path}: error: {message}" in str(info.value)
    else:
        assert [(d.severity, d.path, d.message) for d in graph.validate()] == expected


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_clean(path):
    assert engine.load(path).diagnose() == []


def test_diagnostic_str_and_dict():
    d = Diagnostic("error", "spec.nodes.root.steps[1].weight", "boom")
    assert str(d) == "spec.nodes.root.steps[1].weight: error: boom"
    assert d.to_dict() == {"severity": "error", "path": "spec.nodes.root.steps[1].weight",
                           "message": "boom"}
    assert engine.Diagnostic is Diagnostic


def graph_doc(nodes, name="g", **spec):
    return {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph",
            "metadata": {"name": name}, "spec": {"nodes": nodes, **spec}}


def seq(*steps, router="Sequence"):
    return {"routerType": router, "steps": list(steps)}


def test_all_errors_are_listed_not_just_the_first():
    doc = graph_doc({"start": seq({"serviceName": "a", "serviceUrl": "http://x"}, {}),
                     "split": seq({"serviceName": "b", "weight": 10}, router="Splitter")},
                    name="Bad")
    graph = engine.load(doc)
    with pytest.raises(GraphValidationError) as info:
        graph.validate()
    paths = [d.path for d in info.value.diagnostics if d.severity == "error"]
    assert paths == ["metadata.name", "spec.nodes", "spec.nodes.start.steps[0]",
                     "spec.nodes.start.steps[1]", "spec.nodes.split.steps"]
    assert "(5 error(s))" in str(info.value)
    assert isinstance(info.value, GraphSpecError)


def test_splitter_weight_message_uses_service_name_like_kserve():
    # KServe names the route by serviceName even when the step targets a node
    doc = graph_doc({"root": seq({"nodeName": "leaf"}, router="Splitter"),
                     "leaf": seq({"serviceName": "m"})})
    assert found(engine.load(doc)) == [
        ("error", "spec.nodes.root.steps[0].weight",
         "InferenceGraph[g] Node[root] Route[] missing the 'Weight'")]


def test_splitter_without_steps_fails_like_kserve_and_ours():
    doc = graph_doc({"root": {"routerType": "Splitter"}})
    assert found(engine.load(doc)) == [
        ("error", "spec.nodes.root.steps", "Required value: a node needs at least one step"),
        ("error", "spec.nodes.root.steps",
         "InferenceGraph[g] Node[root] splitter node: the sum of traffic weights for all routing "
         "targets should be 100")]


def test_self_cycle_and_two_cycles():
    doc = graph_doc({"root": seq({"nodeName": "root"})})
    assert found(engine.load(doc)) == [
        ("error", "spec.nodes.root.steps[0].nodeName", "cycle: root -> root")]
    doc = graph_doc({"root": seq({"nodeName": "a"}, {"nodeName": "b"}),
                     "a": seq({"nodeName": "root"}), "b": seq({"nodeName": "c"}),
                     "c": seq({"nodeName": "b"})})
    assert found(engine.load(doc)) == [
        ("error", "spec.nodes.a.steps[0].nodeName", "cycle: root -> a -> root"),
        ("error", "spec.nodes.c.steps[0].nodeName", "cycle: b -> c -> b")]


def test_diamond_is_no_cycle():
    doc = graph_doc({"root": seq({"nodeName": "a"}, {"nodeName": "b"}),
                     "a": seq({"nodeName": "leaf"}), "b": seq({"nodeName": "leaf"}),
                     "leaf": seq({"serviceName": "m"})})
    assert found(engine.load(doc)) == []


def test_cycle_away_from_root_is_found_and_unreachable():
    doc = graph_doc({"root": seq({"serviceName": "m"}),
                     "x": seq({"nodeName": "y"}), "y": seq({"nodeName": "x"})})
    assert found(engine.load(doc)) == [
        ("error", "spec.nodes.y.steps[0].nodeName", "cycle: x -> y -> x"),
        ("warning", "spec.nodes.x", 'node "x" is not reachable from root and never runs'),
        ("warning", "spec.nodes.y", 'node "y" is not reachable from root and never runs')]


def test_metadata_name_required_unless_generate_name():
    doc = graph_doc({"root": seq({"serviceName": "m"})})
    del doc["metadata"]
    assert found(engine.load(doc)) == [
        ("error", "metadata.name", "Required value: name or generateName is required")]
    doc["metadata"] = {"generateName": "graph-"}
    assert found(engine.load(doc)) == []


def test_header_fields_required():
    doc = graph_doc({"root": seq({"serviceName": "m"})})
    del doc["apiVersion"], doc["kind"]
    assert found(engine.load(doc)) == [("error", "apiVersion", "Required value"),
                                       ("error", "kind", "Required value")]


def test_missing_spec():
    doc = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph",
           "metadata": {"name": "g"}}
    assert found(engine.load(doc)) == [("error", "spec", "Required value")]


def test_bare_spec_skips_name_and_header_checks():
    graph = engine.load({"nodes": {"root": seq({"serviceName": "m"}), "x": 3}})
    assert found(graph) == [("error", "spec.nodes.x", 'Invalid value: "integer": must be of type object')]


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d["spec"].update(nodes=["root"]),
     [("error", "spec.nodes", 'Invalid value: "array": must be of type object')]),
    (lambda d: d["spec"]["nodes"]["root"].update(steps={"serviceName": "m"}),
     [("error", "spec.nodes.root.steps", 'Invalid value: "object": must be of type array')]),
    (lambda d: d["spec"]["nodes"]["root"]["steps"].append("m"),
     [("error", "spec.nodes.root.steps[1]", 'Invalid value: "string": must be of type object')]),
    (lambda d: d["spec"].update(routerTimeouts={"serverRead": "60s"}),
     [("error", "spec.routerTimeouts.serverRead", 'Invalid value: "string": must be of type integer')]),
    (lambda d: d["spec"].update(timeout=1.5),
     [("error", "spec.timeout", 'Invalid value: "number": must be of type integer')]),
    (lambda d: d["spec"]["nodes"]["root"]["steps"][0].update(mapPredictionsToInstances="yes"),
     [("error", "spec.nodes.root.steps[0].mapPredictionsToInstances",
       'Invalid value: "string": must be of type boolean')]),
    (lambda d: d["spec"]["nodes"]["root"]["steps"][0].update(weight=True),
     [("error", "spec.nodes.root.steps[0].weight", 'Invalid value: "boolean": must be of type integer')]),
    (lambda d: d["metadata"].update(labels={"team": 7}),
     [("error", "metadata.labels.team", 'Invalid value: "integer": must be of type string')]),
    (lambda d: d["spec"].update(resources={"limits": {"cpu": [1]}}),
     [("error", "spec.resources.limits.cpu", 'Invalid value: "array": must be of type integer or string')]),
    (lambda d: d["spec"].update(tolerations=[{"key": "k", "tolerationSeconds": "1"}]),
     [("error", "spec.tolerations[0].tolerationSeconds", 'Invalid value: "string": must be of type integer')]),
    (lambda d: d["spec"].update(affinity={"anything": {"goes": 1}}), []),
    (lambda d: d.update(status={"conditions": [{"type": "Ready"}]}),
     [("error", "status.conditions[0].status", "Required value")]),
    (lambda d: d.update(metadata="g"),
     [("error", "metadata", 'Invalid value: "string": must be of type object'),
      ("error", "metadata.name", "Required value: name or generateName is required")]),
    (lambda d: d["spec"].update(replicas=3),
     [("warning", "spec.replicas", 'unknown field "replicas" (Kubernetes prunes it silently)')]),
    (lambda d: d.update(extra=1),
     [("warning", "extra", 'unknown field "extra" (Kubernetes prunes it silently)')]),
    (lambda d: d["metadata"].update(uid="u", resourceVersion="1", managedFields=[]), []),
])
def test_schema_types(mutate, expected):
    doc = graph_doc({"root": seq({"serviceName": "m"})})
    mutate(doc)
    assert found(engine.load(copy.deepcopy(doc))) == expected


def test_a_kserve_style_graph_without_optional_fields_is_clean():
    # the shapes of KServe's own docs: unnamed steps, conditions in a Sequence, $request
    doc = graph_doc({
        "root": seq({"serviceName": "cat-dog-classifier"},
                    {"nodeName": "breed-classifier", "data": "$request",
                     "condition": "[@this].#(predictions.0==\"dog\")"}),
        "breed-classifier": seq({"serviceName": "dog-breed-classifier",
                                 "condition": "predictions", "dependency": "Soft"},
                                {"serviceUrl": "http://cat-breed.default.svc/v1/models/c:predict",
                                 "condition": "instances"}, router="Switch"),
    }, name="dog-breed-pipeline")
    assert engine.load(doc).validate() == []


# -- the condition hook (engine.gjson) ------------------------------------------------

class _Problem:
    def __init__(self, position, message):
        self.position, self.message = position, message


def _fake_gjson(monkeypatch, diagnose):
    seen = []
    fake = types.ModuleType("engine.gjson")

    class _Path:
        def __init__(self, text):
            seen.append(text)
            self.text = text

        def diagnose(self):
            return diagnose(self.text)

    fake.compile = _Path
    monkeypatch.setitem(sys.modules, "engine.gjson", fake)
    return seen


def test_condition_hook_turns_problems_into_warnings(monkeypatch):
    seen = _fake_gjson(monkeypatch, lambda text: [_Problem(3, "unclosed query")] if "(" in text else [])
    graph = engine.load(ROOT / "examples" / "dog-cat.yaml")
    assert seen == []  # conditions are checked by validation, not by load
    assert found(graph) == [
        ("warning", "spec.nodes.species-switch.steps[0].condition",
         "condition 'instances.#(species==\"dog\")' at position 3: unclosed query"),
        ("warning", "spec.nodes.species-switch.steps[1].condition",
         "condition 'instances.#(species==\"cat\")' at position 3: unclosed query")]
    assert seen == ['instances.#(species=="dog")', 'instances.#(species=="cat")']
    assert len(graph.validate()) == 2  # warnings only: validate returns them


def test_condition_hook_clean_conditions(monkeypatch):
    seen = _fake_gjson(monkeypatch, lambda text: [])
    assert found(engine.load(ROOT / "examples" / "switch.yaml")) == []
    assert seen == ['instances.#(lang=="de")', 'instances.#(lang=="fr")', "instances"]


def test_condition_hook_compiler_that_raises(monkeypatch):
    def boom(text):
        raise ValueError("bad path")
    _fake_gjson(monkeypatch, boom)
    assert found(engine.load(ROOT / "examples" / "switch.yaml"))[0] == (
        "warning", "spec.nodes.root.steps[0].condition",
        "condition 'instances.#(lang==\"de\")': bad path")


def test_condition_hook_skipped_without_gjson(monkeypatch):
    monkeypatch.setitem(sys.modules, "engine.gjson", None)  # import raises ImportError
    assert found(engine.load(ROOT / "examples" / "dog-cat.yaml")) == []


def test_condition_on_first_sequence_step_is_warned():
    import engine
    g = engine.load({"nodes": {"root": {"routerType": "Sequence", "steps": [
        {"serviceUrl": "http://a/v1/models/a:predict", "condition": "instances"}]}}})
    found = [d for d in g.validate() if d.path == "spec.nodes.root.steps[0].condition"]
    assert len(found) == 1 and "invalid response" in found[0].message


def test_unusable_service_url_is_warned_with_gos_error():
    import engine
    url = "http://single-1.default.{$your-domain}/switch"
    g = engine.load({"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": url}]}}})
    found = [d for d in g.validate() if d.path == "spec.nodes.root.steps[0].serviceUrl"]
    assert [d.severity for d in found] == ["warning"]
    assert f'parse "{url}": invalid character "{{" in host name' in found[0].message


def test_unsupported_url_schemes_are_warned():
    import engine
    g = engine.load({"nodes": {"root": {"routerType": "Sequence", "steps": [
        {"serviceUrl": "ftp://models/x"}]}}})
    msgs = [d.message for d in g.validate() if d.path == "spec.nodes.root.steps[0].serviceUrl"]
    assert msgs and 'unsupported protocol scheme "ftp"' in msgs[0]
