"""Property tests: whatever shape a document has, loading, validating, drawing and
serialising never crash, and serialising is stable."""
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine.errors import GraphValidationError
from engine.spec.model import Step
from engine.spec.render import FORMATS

scalars = (st.none() | st.booleans() | st.integers(-200, 200) | st.floats(allow_nan=False)
           | st.text(max_size=6))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8)

node_names = st.sampled_from(["root", "a", "b", "c"])
plausible = {
    "name": st.sampled_from(["x", "y", ""]),
    "nodeName": node_names | st.just("missing"),
    "serviceName": st.sampled_from(["m1", "m2"]),
    "serviceUrl": st.just("http://127.0.0.1:9/v1/models/m:predict"),
    "data": st.sampled_from(["$request", "$response", "$other"]),
    "mapPredictionsToInstances": st.booleans(),
    "weight": st.integers(-10, 110),
    "condition": st.sampled_from(["instances", 'a.#(b=="c")', ""]),
    "dependency": st.sampled_from(["Soft", "Hard", "Firm"]),
}
steps = st.fixed_dictionaries({}, optional={k: v | json_values for k, v in plausible.items()}
                              | {"unknownField": json_values})
nodes = st.fixed_dictionaries({}, optional={
    "routerType": st.sampled_from(["Sequence", "Splitter", "Ensemble", "Switch", "Other"]) | json_values,
    "steps": st.lists(steps | json_values, max_size=4) | json_values,
})
specs = st.fixed_dictionaries(
    {"nodes": st.dictionaries(node_names, nodes | json_values, max_size=4) | json_values},
    optional={"routerTimeouts": st.dictionaries(
                  st.sampled_from(["serverRead", "serverIdle", "serviceClient", "bogus"]),
                  scalars, max_size=3) | json_values,
              "scaleMetric": st.sampled_from(["rps", "gpu"]) | json_values,
              "tolerations": json_values, "affinity": json_values})
documents = specs | st.fixed_dictionaries(
    {"apiVersion": st.just("serving.kserve.io/v1alpha1"), "kind": st.just("InferenceGraph")},
    optional={"metadata": st.fixed_dictionaries({}, optional={"name": st.sampled_from(["g", "G_1"]) | json_values,
                                                             "labels": json_values}) | json_values,
              "spec": specs | json_values, "status": json_values, "other": json_values})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_any_document_is_handled_without_crashing(doc):
    graph = engine.load(doc)
    found = graph.diagnose()
    assert all(d.severity in ("error", "warning") and d.path and d.message for d in found)
    try:
        warnings = graph.validate()
        assert all(d.severity == "warning" for d in warnings)
    except GraphValidationError as exc:
        assert exc.diagnostics == found
    for render in FORMATS.values():
        assert render(graph).endswith("\n")
    once = graph.to_dict()
    assert engine.load(once).to_dict() == once
    assert engine.load(graph.to_yaml()).to_dict() == once


@settings(max_examples=200, deadline=None)
@given(st.lists(st.fixed_dictionaries({"serviceName": st.sampled_from(["a", "b", "c"]),
                                       "weight": st.integers(0, 100)}), min_size=1, max_size=5))
def test_splitter_weights_sum_rule(route_steps):
    doc = {"nodes": {"root": {"routerType": "Splitter", "steps": route_steps}}}
    errors = [d for d in engine.load(doc).diagnose() if d.severity == "error"]
    if sum(s["weight"] for s in route_steps) == 100:
        assert errors == []
    else:
        assert [d.path for d in errors] == ["spec.nodes.root.steps"]


@given(st.sampled_from(list(Step.FIELDS)), scalars)
def test_step_round_trips_any_scalar(key, value):
    doc = {"nodes": {"root": {"routerType": "Sequence", "steps": [{key: value}]}}}
    expected = {} if value is None else {key: value}
    assert engine.load(doc).to_dict()["nodes"]["root"]["steps"] == [expected]


def test_yaml_text_of_generated_documents_loads():
    # to_yaml output of a non-trivial graph is valid YAML for the loader (not only PyYAML)
    graph = engine.load({"nodes": {"root": {"routerType": "Switch", "steps": [
        {"serviceName": "m", "condition": 'a.#(b=="c")'}, {"serviceName": "n", "condition": "*"}]}}})
    assert yaml.safe_load(graph.to_yaml()) == graph.to_dict() == engine.load(graph.to_yaml()).to_dict()


yaml_fragments = st.lists(st.sampled_from([
    "nodes:", "spec:", "  root:", "    routerType: Switch", "    steps:", "    - serviceName: a",
    "      weight: 5", "- x", "{", "}", "[", "]", ": ", "&a", "*a", "<<: *a", "!!binary aGk=",
    "!!python/object:os.system", "---", "kind: InferenceGraph", "\t", "'", '"', "#", "%YAML 1.1",
    "key: !!set {a, b}", "? complex", "2024-01-01", "\x85", "é",
]), max_size=12).map("\n".join)


@settings(max_examples=300, deadline=None)
@given(yaml_fragments | st.text(max_size=40))
def test_cli_validate_never_crashes_on_any_text(text):
    import io
    from engine.cli import main
    out, err = io.StringIO(), io.StringIO()
    for argv in (["validate", "-"], ["validate", "--json", "-"], ["explain", "-"]):
        code = main(argv, stdout=out, stderr=err, stdin=io.StringIO(text))
        assert code in (0, 1)
