"""The spec model: every accepted input form, attributes, round trips, malformed input."""
import json
import sys
import types
from pathlib import Path

import pytest
import yaml

import engine
from engine.errors import GraphSpecError
from engine.spec import Graph, RouterTimeouts, load_all

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if p.name != "services.yaml")
INVALID = ROOT / "tests" / "data" / "invalid"
DOG_CAT = ROOT / "examples" / "dog-cat.yaml"

FULL = {
    "apiVersion": "serving.kserve.io/v1alpha1",
    "kind": "InferenceGraph",
    "metadata": {
        "name": "full", "namespace": "ml", "labels": {"team": "vision"},
        "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"},
        "generation": 3, "uid": "1f0c", "resourceVersion": "42",
        "creationTimestamp": "2024-05-01T10:00:00Z",
    },
    "spec": {
        "nodes": {
            "root": {"routerType": "Sequence", "steps": [
                {"name": "first", "serviceName": "a", "dependency": "Hard"},
                {"nodeName": "split", "data": "$response", "mapPredictionsToInstances": True},
            ]},
            "split": {"routerType": "Splitter", "steps": [
                {"serviceUrl": "http://127.0.0.1:9001/v1/models/b:predict", "weight": 30},
                {"serviceName": "c", "weight": 70, "condition": "instances"},
            ]},
        },
        "routerTimeouts": {"serverRead": 10, "serviceClient": 2},
        "timeout": 30, "minReplicas": 0, "maxReplicas": 4, "scaleTarget": 10,
        "scaleMetric": "rps",
        "resources": {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": 1}},
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "gpu", "operator": "In", "values": ["a100"]}]}]}}},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "nodeSelector": {"pool": "inference"}, "nodeName": "worker-1",
        "serviceAccountName": "router",
    },
    "status": {
        "url": "http://full.ml.example.com",
        "conditions": [{"type": "Ready", "status": "True",
                        "lastTransitionTime": "2024-05-01T10:01:00Z"}],
        "deploymentMode": "RawDeployment", "observedGeneration": 3,
        "annotations": {"a": "b"},
    },
}


# -- accepted input forms ------------------------------------------------------------

def test_load_path_str_and_pathlib():
    for source in (str(DOG_CAT), DOG_CAT):
        graph = engine.load(source)
        assert graph.name == "dog-cat-breeds"
        assert graph.source == str(DOG_CAT)
        assert not graph.bare


def test_load_yaml_text_json_text_bytes_and_dict():
    text = DOG_CAT.read_text()
    doc = yaml.safe_load(text)
    for source in (text, json.dumps(doc), json.dumps(doc, indent=2), text.encode(), doc):
        graph = engine.load(source)
        assert graph.to_dict() == doc
        assert graph.source is None


def test_load_bare_spec_as_kserve_controller_passes_it():
    spec = {"nodes": {"root": {"routerType": "Sequence",
                               "steps": [{"serviceUrl": "http://127.0.0.1:1/v1/models/m:predict"}]}}}
    for source in (spec, json.dumps(spec), "nodes:\n  root: {routerType: Sequence, steps: [{serviceName: m}]}\n"):
        graph = engine.load(source)
        assert graph.bare
        assert graph.api_version is None and graph.kind is None and graph.name is None
        assert list(graph.nodes) == ["root"]
    assert engine.load(spec).to_dict() == spec
    assert engine.load(spec).validate() == []


def test_single_line_yaml_text_that_is_no_file():
    graph = engine.load("nodes: {root: {routerType: Switch, steps: [{serviceName: m, condition: x}]}}")
    assert graph.nodes["root"].router_type == "Switch"


def test_multi_document_yaml_picks_the_inference_graph():
    text = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n---\n"
            + DOG_CAT.read_text() + "---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
    assert engine.load(text).name == "dog-cat-breeds"


def test_multi_document_yaml_with_two_graphs():
    text = (ROOT / "examples" / "canary.yaml").read_text() + "---\n" + DOG_CAT.read_text()
    with pytest.raises(GraphSpecError, match="2 InferenceGraph documents found"):
        engine.load(text)
    assert [g.name for g in load_all(text)] == ["churn-canary", "dog-cat-breeds"]


def test_no_inference_graph_among_several_documents():
    with pytest.raises(GraphSpecError, match=r"no InferenceGraph document found \(kinds: ConfigMap, Service\)"):
        engine.load("kind: ConfigMap\n---\nkind: Service\n")


@pytest.mark.parametrize("source, message", [
    ("", "the source is empty"),
    ("# only a comment\n", "the source holds no document"),
    ("- 1\n- 2\n", "expected a mapping, got list"),
    (42, "cannot load an InferenceGraph from int"),
])
def test_unusable_sources(source, message):
    with pytest.raises(GraphSpecError, match=message):
        engine.load(source)


def test_missing_file_directory_and_binary(tmp_path):
    with pytest.raises(GraphSpecError) as info:
        engine.load(str(tmp_path / "nope.yaml"))
    assert info.value.message == "no such file" and info.value.path.endswith("nope.yaml")
    with pytest.raises(GraphSpecError, match="no such file"):
        engine.load(tmp_path / "nope.yaml")
    with pytest.raises(GraphSpecError, match="is a directory"):
        engine.load(tmp_path)
    binary = tmp_path / "g.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(GraphSpecError, match="not UTF-8"):
        engine.load(binary)


# -- malformed text: line and column -------------------------------------------------

@pytest.mark.parametrize("name, line, column, message", [
    ("malformed.yaml", 11, 8, "invalid YAML: expected <block end>"),
    ("malformed.json", 7, 73, "invalid JSON: Expecting value"),
    ("duplicate-key.yaml", 11, 5, "duplicate key 'root'"),
])
def test_malformed_files_report_line_and_column(name, line, column, message):
    with pytest.raises(GraphSpecError) as info:
        engine.load(INVALID / name)
    err = info.value
    assert (err.line, err.column) == (line, column)
    assert err.message.startswith(message)
    assert err.path == str(INVALID / name)
    assert isinstance(err, ValueError)


def test_malformed_text_without_file():
    with pytest.raises(GraphSpecError) as info:
        engine.load('{"nodes": {"root": }}')
    assert (info.value.line, info.value.column) == (1, 20)
    assert str(info.value).startswith("line 1, column 20: invalid JSON")
    with pytest.raises(GraphSpecError) as info:
        engine.load("spec:\n  nodes: [1, 2\n")
    assert info.value.line == 3


def test_yaml_timestamps_stay_strings():
    graph = engine.load(yaml.safe_dump(FULL).replace("'2024-05-01T10:01:00Z'", "2024-05-01T10:01:00Z"))
    assert graph.status.conditions[0]["lastTransitionTime"] == "2024-05-01T10:01:00Z"
    assert graph.metadata.extra["creationTimestamp"] == "2024-05-01T10:00:00Z"


# -- the model -----------------------------------------------------------------------

def test_model_attributes_of_the_dog_cat_pipeline():
    graph = engine.load(DOG_CAT)
    assert isinstance(graph, engine.Graph)
    assert (graph.api_version, graph.kind) == ("serving.kserve.io/v1alpha1", "InferenceGraph")
    assert (graph.name, graph.namespace) == ("dog-cat-breeds", "pets")
    assert list(graph.nodes) == ["root", "species-switch", "dog-breeds"]
    assert graph.nodes is graph.spec.nodes
    assert [n.router_type for n in graph.nodes.values()] == ["Sequence", "Switch", "Ensemble"]
    first, second = graph.nodes["root"].steps
    assert (first.name, first.service_name, first.target_kind, first.index) == (
        "species", "cat-dog-classifier", "service", 0)
    assert (second.node_name, second.data, second.map_predictions_to_instances, second.index) == (
        "species-switch", "$response", True, 1)
    assert second.target_kind == "node" and second.target == "species-switch"
    assert first.dependency is None and first.effective_dependency == "Soft"
    dog = graph.nodes["species-switch"].steps[0]
    assert dog.condition == 'instances.#(species=="dog")' and dog.weight is None
    resnet = graph.nodes["dog-breeds"].steps[0]
    assert resnet.dependency == "Hard" and resnet.effective_dependency == "Hard"
    assert graph.status is None


def test_step_target_kind_url_and_label():
    graph = engine.load(FULL)
    url_step = graph.nodes["split"].steps[0]
    assert url_step.target_kind == "url" and url_step.label == "0"
    assert graph.nodes["root"].steps[0].label == "first"


def test_full_resource_fields():
    graph = engine.load(FULL)
    spec = graph.spec
    assert (spec.timeout, spec.min_replicas, spec.max_replicas, spec.scale_target) == (30, 0, 4, 10)
    assert spec.scale_metric == "rps" and spec.node_name == "worker-1"
    assert spec.service_account_name == "router" and spec.node_selector == {"pool": "inference"}
    assert spec.tolerations[0]["effect"] == "NoSchedule"
    assert spec.resources["limits"]["memory"] == "1Gi"
    assert graph.metadata.labels == {"team": "vision"} and graph.metadata.generation == 3
    status = graph.status
    assert (status.url, status.deployment_mode, status.observed_generation) == (
        "http://full.ml.example.com", "RawDeployment", 3)
    assert status.conditions[0]["type"] == "Ready" and status.annotations == {"a": "b"}
    assert graph.validate() == []


def test_router_timeouts_and_kserve_defaults():
    graph = engine.load(FULL)
    t = graph.router_timeouts
    assert (t.server_read, t.server_write, t.server_idle, t.service_client) == (10, None, None, 2)
    e = graph.effective_router_timeouts()
    assert (e.server_read, e.server_write, e.server_idle, e.service_client) == (10, 60, 180, 2)
    bare = engine.load({"nodes": {}})
    assert bare.router_timeouts == RouterTimeouts()
    e = bare.effective_router_timeouts()
    assert (e.server_read, e.server_write, e.server_idle, e.service_client) == (60, 60, 180, None)


def test_services_are_stored_untouched():
    def local_model(body):
        return body
    services = {"cat-dog-classifier": "http://127.0.0.1:9013/v1/models/cat-dog-classifier:predict",
                "dog-breed-vit": local_model}
    graph = engine.load(DOG_CAT, services=services)
    assert graph.services is services
    assert engine.load(DOG_CAT).services is None


def test_compile_delegates_to_the_compiler(monkeypatch):
    calls = []
    fake = types.ModuleType("engine.compiler")
    fake.compile_graph = lambda graph, policy=None: calls.append((graph, policy)) or "plan"
    monkeypatch.setitem(sys.modules, "engine.compiler", fake)
    monkeypatch.setattr(engine, "compiler", fake, raising=False)
    graph = engine.load(DOG_CAT)
    policy = engine.Policy()  # a str would now be read as a TrafficPolicy file
    assert graph.compile(policy=policy) == "plan"
    assert calls == [(graph, policy)]


def test_graph_built_in_code():
    from engine.spec import GraphSpec, Metadata, Node, Step
    graph = Graph(api_version="serving.kserve.io/v1alpha1", kind="InferenceGraph",
                  metadata=Metadata(name="coded"),
                  spec=GraphSpec(nodes={"root": Node("root", "Sequence", [Step(service_name="m")])}))
    assert graph.validate() == []
    assert graph.to_dict()["spec"] == {"nodes": {"root": {"routerType": "Sequence",
                                                          "steps": [{"serviceName": "m"}]}}}


# -- round trips ---------------------------------------------------------------------

@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_round_trip(path):
    original = yaml.safe_load(path.read_text())
    graph = engine.load(path)
    assert graph.to_dict() == original
    assert engine.load(graph.to_json()).to_dict() == original
    assert engine.load(graph.to_yaml()).to_dict() == original
    assert yaml.safe_load(graph.to_yaml()) == original


def test_full_resource_round_trip_keeps_key_order():
    graph = engine.load(FULL)
    assert graph.to_dict() == FULL
    assert list(graph.to_dict()) == ["apiVersion", "kind", "metadata", "spec", "status"]
    assert json.loads(graph.to_json(indent=2)) == FULL
    step_keys = list(graph.to_dict()["spec"]["nodes"]["split"]["steps"][1])
    assert step_keys == ["serviceName", "weight", "condition"]


def test_round_trip_keeps_unknown_and_wrongly_typed_fields():
    doc = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph",
           "metadata": {"name": "odd"}, "extraTop": 1,
           "spec": {"nodes": {"root": {"routerType": "Splitter", "steps": [
               {"serviceName": "a", "weight": "50", "typo": True}, "not-a-step"]}},
                    "routerTimeouts": "soon"}}
    graph = engine.load(doc)
    assert graph.to_dict() == doc
    # the typed view holds the well-formed parts only, with their original index
    assert [s.index for s in graph.nodes["root"].steps] == [0]
    assert graph.spec.router_timeouts is None


def test_nulls_are_unset_as_in_kubernetes():
    graph = engine.load("apiVersion: serving.kserve.io/v1alpha1\nkind: InferenceGraph\n"
                        "metadata: {name: n}\nspec:\n  timeout: null\n  nodes:\n    root:\n"
                        "      routerType: Sequence\n      steps:\n      - serviceName: a\n"
                        "        weight: null\n")
    assert graph.spec.timeout is None and graph.nodes["root"].steps[0].weight is None
    assert "timeout" not in graph.to_dict()["spec"]


def test_yaml_anchors_and_merge_keys():
    text = """\
apiVersion: serving.kserve.io/v1alpha1
kind: InferenceGraph
metadata: {name: anchors}
spec:
  nodes:
    root:
      routerType: Ensemble
      steps:
        - &model {serviceName: a, dependency: Hard}
        - <<: *model
          serviceName: b
"""
    steps = engine.load(text).nodes["root"].steps
    assert [(s.service_name, s.dependency) for s in steps] == [("a", "Hard"), ("b", "Hard")]
    with pytest.raises(GraphSpecError, match="duplicate key 'serviceName'") as info:
        engine.load(text.replace("serviceName: b", "serviceName: b\n          serviceName: c"))
    assert (info.value.line, info.value.column) == (12, 11)


def test_json_duplicate_keys():
    with pytest.raises(GraphSpecError, match="duplicate key 'root'"):
        engine.load('{"nodes": {"root": {"routerType": "Sequence"}, "root": {}}}')
