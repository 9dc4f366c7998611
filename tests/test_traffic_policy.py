"""The TrafficPolicy document (engine/spec/traffic.py): parsing, every check with its
field path, durations, the merge into a StepPolicy, the checks against a graph, and
the plumbing (Policy.traffic, Graph.compile, ige validate/serve/explain --policy)."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
import yaml

import engine
from engine import _core
from engine.cli import main
from engine.graph import as_policy
from engine.plan import Plan
from engine.spec.traffic import (BreakerPolicy, ConcurrencyPolicy, HedgePolicy, PolicyLevel,
                                 RetryPolicy, StepPolicy, TrafficPolicy, diagnose_document,
                                 format_duration, load_policy, parse_duration, step_policy)
from routerkit import ThreadedModel, free_port, static
from test_serve_cli import post, start, stop, wait_ready

ISSUE_EXAMPLE = """\
apiVersion: ige/v1alpha1
kind: TrafficPolicy
metadata: {name: production}
spec:
  default: {timeout: 2s, retry: {maxRetries: 2, initialDelayMs: 50, maxDelayMs: 1000}}
  services:            # by serviceName, or by serviceUrl
    model-a:
      endpoints: [http://10.0.0.1:8080/v1/models/a:predict, http://10.0.0.2:8080/v1/models/a:predict]
      loadBalancer: least-outstanding      # or round-robin
      circuitBreaker: {consecutiveFailures: 5, openFor: 10s}
      concurrency: {maxInFlight: 64, maxQueued: 256}
  steps:               # "<node>/<step name or index>"
    root/classifier: {timeout: 500ms, hedge: {after: 50ms}}
"""
A1 = "http://10.0.0.1:8080/v1/models/a:predict"
A2 = "http://10.0.0.2:8080/v1/models/a:predict"
URL_B = "http://b/v1/models/b:predict"

GRAPH = {"nodes": {
    "root": {"routerType": "Sequence", "steps": [
        {"name": "classifier", "serviceName": "model-a"},
        {"serviceUrl": URL_B},
        {"nodeName": "inner"}]},
    "inner": {"routerType": "Sequence", "steps": [{"serviceUrl": URL_B}]}}}


def doc(spec, **top):
    return {"apiVersion": "ige/v1alpha1", "kind": "TrafficPolicy", "spec": spec, **top}


def policy_of(graph, traffic, node="root", index=0):
    return step_policy(traffic, graph, node, graph.nodes[node].steps[index])


# -- parsing --------------------------------------------------------------------------

def test_the_issues_example_parses_into_its_levels():
    policy = load_policy(ISSUE_EXAMPLE)
    assert policy.name == "production" and policy.warnings == []
    assert policy.default == PolicyLevel(timeout=2.0, retry=RetryPolicy(2, 50, 1000))
    assert policy.services == {"model-a": PolicyLevel(
        endpoints=(A1, A2), load_balancer="least-outstanding",
        circuit_breaker=BreakerPolicy(5, 10.0), concurrency=ConcurrencyPolicy(64, 256))}
    assert policy.steps == {"root/classifier": PolicyLevel(timeout=0.5, hedge=HedgePolicy(0.05))}
    assert policy.to_dict() == yaml.safe_load(ISSUE_EXAMPLE)
    assert json.loads(policy.to_json()) == yaml.safe_load(policy.to_yaml()) == policy.to_dict()


def test_json_text_a_path_a_dict_and_a_policy_load_alike(tmp_path):
    as_dict = yaml.safe_load(ISSUE_EXAMPLE)
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(as_dict))
    loaded = [load_policy(json.dumps(as_dict)), load_policy(path), load_policy(str(path)),
              load_policy(as_dict)]
    assert {(p.name, tuple(p.services), tuple(p.steps)) for p in loaded} == {
        ("production", ("model-a",), ("root/classifier",))}
    assert loaded[1].source == str(path)
    assert load_policy(loaded[0]) is loaded[0]


def test_a_multi_document_file_gives_its_traffic_policy(tmp_path):
    path = tmp_path / "both.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "serving.kserve.io/v1alpha1",
                                    "kind": "InferenceGraph", "metadata": {"name": "g"},
                                    "spec": GRAPH}) + "---\n" + ISSUE_EXAMPLE)
    assert load_policy(path).name == "production"
    assert engine.load(path).name == "g"  # and the graph loader picks the graph
    path.write_text(ISSUE_EXAMPLE + "---\n" + ISSUE_EXAMPLE)
    with pytest.raises(engine.GraphSpecError, match="2 TrafficPolicy documents"):
        load_policy(path)


def test_malformed_text_and_missing_files_are_spec_errors(tmp_path):
    with pytest.raises(engine.GraphSpecError) as info:
        load_policy("apiVersion: ige/v1alpha1\nspec: {default: [}\n")
    assert info.value.line == 2
    with pytest.raises(engine.GraphSpecError, match="no such file"):
        load_policy(str(tmp_path / "absent.yaml"))


def test_an_empty_spec_is_a_valid_policy_that_sets_nothing():
    policy = load_policy(doc({}))
    graph = engine.load(GRAPH)
    assert all(policy_of(graph, policy, "root", i).is_empty() for i in range(3))


# -- every check, with its path --------------------------------------------------------

INVALID = [
    ({"apiVersion": "ige/v1", "kind": "TrafficPolicy", "spec": {}}, "apiVersion", 'must be "ige/v1alpha1"'),
    ({"kind": "TrafficPolicy", "spec": {}}, "apiVersion", "Required value"),
    ({"apiVersion": "ige/v1alpha1", "kind": "Policy", "spec": {}}, "kind", 'must be "TrafficPolicy"'),
    ({"apiVersion": "ige/v1alpha1", "kind": "TrafficPolicy"}, "spec", "Required value"),
    (doc({}, extra=1), "extra", 'unknown field "extra"'),
    (doc({}, metadata={"name": 3}), "metadata.name", "must be of type string"),
    (doc({}, metadata={"nmae": "x"}), "metadata.nmae", "unknown field"),
    (doc({}, metadata={"labels": {"a": 1}}), "metadata.labels.a", "must be of type string"),
    (doc([]), "spec", "must be of type object"),
    (doc({"defaults": {}}), "spec.defaults", 'unknown field "defaults"'),
    (doc({"default": {"tmeout": "1s"}}), "spec.default.tmeout", 'unknown field "tmeout"'),
    (doc({"default": {"timeout": "2x"}}), "spec.default.timeout", "must be a duration"),
    (doc({"default": {"timeout": "0ms"}}), "spec.default.timeout", "must be greater than 0"),
    (doc({"default": {"timeout": -1}}), "spec.default.timeout", "must be greater than 0"),
    (doc({"default": {"timeout": None}}), "spec.default.timeout", "must be a duration"),
    (doc({"default": {"timeout": True}}), "spec.default.timeout", "must be a duration"),
    (doc({"default": {"endpoints": [A1]}}), "spec.default.endpoints", "per service or per step"),
    (doc({"default": {"loadBalancer": "round-robin"}}), "spec.default.loadBalancer",
     "per service or per step"),
    (doc({"default": {"retry": {"maxRetries": 11}}}), "spec.default.retry.maxRetries",
     "less than or equal to 10"),
    (doc({"default": {"retry": {"maxRetries": -1}}}), "spec.default.retry.maxRetries",
     "greater than or equal to 0"),
    (doc({"default": {"retry": {"initialDelayMs": -1}}}), "spec.default.retry.initialDelayMs",
     "greater than or equal to 0"),
    (doc({"default": {"retry": {"maxDelayMs": "1s"}}}), "spec.default.retry.maxDelayMs",
     "must be of type integer"),
    (doc({"default": {"retry": {"retries": 1}}}), "spec.default.retry.retries", "unknown field"),
    (doc({"default": {"retry": 2}}), "spec.default.retry", "must be of type object"),
    (doc({"services": []}), "spec.services", "must be of type object"),
    (doc({"services": {"m": None}}), "spec.services.m", "must be of type object"),
    (doc({"services": {"m": {"endpoints": A1}}}), "spec.services.m.endpoints", "must be of type array"),
    (doc({"services": {"m": {"endpoints": []}}}), "spec.services.m.endpoints", "at least one endpoint"),
    (doc({"services": {"m": {"endpoints": [3]}}}), "spec.services.m.endpoints[0]", "must be of type string"),
    (doc({"services": {"m": {"endpoints": ["ftp://x/m"]}}}), "spec.services.m.endpoints[0]",
     'unsupported protocol scheme "ftp"'),
    (doc({"services": {"m": {"endpoints": [A1, "10.0.0.3:8080"]}}}), "spec.services.m.endpoints[1]",
     "not a usable endpoint"),
    (doc({"services": {"m": {"endpoints": ["grpc://h:9000"]}}}), "spec.services.m.endpoints[0]",
     "grpc://host:port/<model>"),
    (doc({"services": {"m": {"endpoints": [A1, "grpc://h:9000/m"]}}}), "spec.services.m.endpoints",
     "must all be HTTP(S) or all grpc://"),
    (doc({"services": {"m": {"loadBalancer": "random"}}}), "spec.services.m.loadBalancer",
     "supported values"),
    (doc({"services": {"m": {"circuitBreaker": {"consecutiveFailures": 0}}}}),
     "spec.services.m.circuitBreaker.consecutiveFailures", "greater than or equal to 1"),
    (doc({"services": {"m": {"circuitBreaker": {"openFor": "0s"}}}}),
     "spec.services.m.circuitBreaker.openFor", "greater than 0"),
    (doc({"services": {"m": {"circuitBreaker": {"failures": 3}}}}),
     "spec.services.m.circuitBreaker.failures", "unknown field"),
    (doc({"services": {"m": {"concurrency": {"maxQueued": 1}}}}),
     "spec.services.m.concurrency.maxInFlight", "Required value"),
    (doc({"services": {"m": {"concurrency": {"maxInFlight": 0}}}}),
     "spec.services.m.concurrency.maxInFlight", "greater than or equal to 1"),
    (doc({"services": {"m": {"concurrency": {"maxInFlight": 1, "maxQueued": -1}}}}),
     "spec.services.m.concurrency.maxQueued", "greater than or equal to 0"),
    (doc({"services": {URL_B: {"timeout": "x"}}}), f'spec.services["{URL_B}"].timeout',
     "must be a duration"),
    (doc({"steps": {"root": {}}}), "spec.steps.root", 'expected "<node>/<step name or index>"'),
    (doc({"steps": {"root/": {}}}), 'spec.steps["root/"]', "expected"),
    (doc({"steps": {"root/0": {"hedge": {}}}}), 'spec.steps["root/0"].hedge.after', "Required value"),
    (doc({"steps": {"root/0": {"hedge": {"after": "-5ms"}}}}), 'spec.steps["root/0"].hedge.after',
     "greater than 0"),
    (doc({"steps": {"root/0": {"hedge": {"after": "1s", "to": 2}}}}),
     'spec.steps["root/0"].hedge.to', "unknown field"),
]


@pytest.mark.parametrize("document, path, message", INVALID, ids=[i[1] for i in INVALID])
def test_every_invalid_field_is_an_error_with_its_path(document, path, message):
    errors = [d for d in diagnose_document(document) if d.severity == "error"]
    assert [d.path for d in errors] == [path]
    assert message in errors[0].message
    with pytest.raises(engine.GraphValidationError) as info:
        load_policy(document)
    assert info.value.path == path and info.value.kind == "TrafficPolicy"
    assert str(info.value).startswith("invalid TrafficPolicy (1 error(s)):")
    assert isinstance(info.value, engine.GraphSpecError)


def test_every_error_is_reported_at_once_in_document_order():
    found = diagnose_document(doc({"default": {"timeout": "x", "retry": {"maxRetries": 50}},
                                   "steps": {"bad": {}}}))
    assert [d.path for d in found] == ["spec.default.timeout", "spec.default.retry.maxRetries",
                                       "spec.steps.bad"]


def test_a_repeated_endpoint_is_a_warning_kept_on_the_policy():
    policy = load_policy(doc({"services": {"m": {"endpoints": [A1, A1]}}}))
    [d] = policy.warnings
    assert (d.severity, d.path) == ("warning", "spec.services.m.endpoints[1]")


def test_hedge_and_every_other_step_field_are_allowed_at_every_level():
    fields = {"timeout": "1s", "retry": {}, "circuitBreaker": {}, "concurrency": {"maxInFlight": 1},
              "hedge": {"after": "10ms"}}
    everywhere = {**fields, "endpoints": [A1], "loadBalancer": "round-robin"}
    assert diagnose_document(doc({"default": fields, "services": {"m": everywhere},
                                  "steps": {"root/0": everywhere}})) == []


def test_defaults_of_the_policy_objects():
    policy = load_policy(doc({"default": {"retry": {}, "circuitBreaker": {},
                                          "concurrency": {"maxInFlight": 8}}}))
    assert policy.default == PolicyLevel(retry=RetryPolicy(3, 100, 300000),
                                         circuit_breaker=BreakerPolicy(5, 10.0),
                                         concurrency=ConcurrencyPolicy(8, 0))


# -- durations ------------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [
    ("250ms", 0.25), ("2s", 2.0), ("1m", 60.0), ("1h", 3600.0), ("1.5s", 1.5), ("1m30s", 90.0),
    (" 10s ", 10.0), (".5s", 0.5), (2, 2.0), (0.05, 0.05)])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "5", "2 s", "1d", "s", "1ms2", "-1s", "0s", 0, -1,
                                   float("nan"), float("inf"), True, None, [1]])
def test_bad_durations(value):
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize("seconds, text", [(0.5, "500ms"), (2.0, "2s"), (60.0, "1m"),
                                           (90.0, "90s"), (1.5, "1500ms"), (0.1, "100ms"),
                                           (0.0005, "0.5ms"), (120, "2m")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


# -- merging --------------------------------------------------------------------------

def test_the_issues_example_merged_per_step():
    graph = engine.load(GRAPH)
    policy = load_policy(ISSUE_EXAMPLE)
    assert policy_of(graph, policy, "root", 0) == StepPolicy(
        timeout=0.5, retry=RetryPolicy(2, 50, 1000), endpoints=(A1, A2),
        load_balancer="least-outstanding", circuit_breaker=BreakerPolicy(5, 10.0),
        concurrency=ConcurrencyPolicy(64, 256), hedge=HedgePolicy(0.05), service="model-a")
    assert policy_of(graph, policy, "root", 1) == StepPolicy(timeout=2.0,
                                                             retry=RetryPolicy(2, 50, 1000))
    assert policy_of(graph, policy, "root", 2) == StepPolicy()  # runs a node
    assert policy_of(graph, policy, "inner", 0) == policy_of(graph, policy, "root", 1)


def level_graph(step_retry=None, default_retry=None):
    step = {"name": "s", "serviceName": "svc", "serviceUrl": URL_B}
    if step_retry is not None:
        step["retry"] = step_retry
    spec = {"nodes": {"root": {"routerType": "Sequence", "steps": [step]}}}
    if default_retry is not None:
        spec["defaultRetry"] = default_retry
    return engine.load(spec)


def test_each_level_wins_over_the_ones_before_it():
    def retry_of(graph, spec):
        return policy_of(graph, load_policy(doc(spec)) if spec is not None else None).retry.max_retries

    r = lambda n: {"retry": {"maxRetries": n}}  # noqa: E731
    assert retry_of(level_graph(), {"default": r(1)}) == 1
    assert retry_of(level_graph(default_retry={"maxRetries": 2}), {"default": r(1)}) == 2
    assert retry_of(level_graph(default_retry={"maxRetries": 2}),
                    {"default": r(1), "services": {"svc": r(3)}}) == 3
    assert retry_of(level_graph({"maxRetries": 4}, {"maxRetries": 2}),
                    {"default": r(1), "services": {"svc": r(3)}}) == 4
    assert retry_of(level_graph({"maxRetries": 4}, {"maxRetries": 2}),
                    {"default": r(1), "services": {"svc": r(3)}, "steps": {"root/0": r(5)}}) == 5
    assert retry_of(level_graph({"maxRetries": 4}), {"steps": {"root/0": r(5), "root/s": r(6)}}) == 6
    assert retry_of(level_graph({"maxRetries": 4}), None) == 4


def test_levels_merge_field_by_field():
    policy = load_policy(doc({
        "default": {"timeout": "1s", "circuitBreaker": {"consecutiveFailures": 2}},
        "services": {"svc": {"timeout": "2s", "endpoints": [A1, A2]}},
        "steps": {"root/s": {"loadBalancer": "least-outstanding"}}}))
    assert policy_of(level_graph(), policy) == StepPolicy(
        timeout=2.0, endpoints=(A1, A2), load_balancer="least-outstanding",
        circuit_breaker=BreakerPolicy(2, 10.0), service="svc")


def test_a_service_name_entry_wins_over_a_service_url_entry_and_only_one_applies():
    policy = load_policy(doc({"services": {"svc": {"timeout": "1s"},
                                           URL_B: {"timeout": "2s", "hedge": {"after": "5ms"}}}}))
    assert policy_of(level_graph(), policy) == StepPolicy(timeout=1.0, service="svc")
    only_url = load_policy(doc({"services": {URL_B: {"timeout": "2s"}}}))
    assert policy_of(level_graph(), only_url) == StepPolicy(timeout=2.0, service=URL_B)


def test_no_policy_and_no_retry_fields_leave_every_step_empty():
    graph = engine.load(GRAPH)
    assert all(policy_of(graph, None, n, i).is_empty()
               for n, i in (("root", 0), ("root", 1), ("root", 2), ("inner", 0)))


def test_settings_that_change_nothing_leave_the_step_empty():
    # a load balancer with nothing to balance, a services entry that sets nothing else
    policy = load_policy(doc({"services": {"svc": {"loadBalancer": "least-outstanding"}}}))
    assert policy_of(level_graph(), policy).is_empty()
    assert not StepPolicy(timeout=1.0).is_empty()
    assert StepPolicy().summary() == ""


# -- against a graph ------------------------------------------------------------------

def test_keys_that_match_nothing_in_the_graph_are_warnings():
    graph = engine.load(GRAPH)
    policy = load_policy(doc({
        "services": {"model-a": {}, URL_B: {}, "model-z": {}},
        "steps": {"root/classifier": {}, "root/1": {}, "root/2": {}, "root/7": {},
                  "nowhere/0": {}, "inner/0": {}}}))
    found = policy.diagnose(graph)
    assert all(d.severity == "warning" for d in found)
    assert [d.path for d in found] == ["spec.services.model-z", 'spec.steps["root/2"]',
                                       'spec.steps["root/7"]', 'spec.steps["nowhere/0"]']
    assert "runs a node" in found[1].message


# -- plumbing -------------------------------------------------------------------------

def test_policy_carries_the_traffic_policy_and_compile_wraps_one(tmp_path):
    assert engine.Policy().traffic is None
    traffic = load_policy(ISSUE_EXAMPLE)
    assert as_policy(traffic).traffic is traffic
    path = tmp_path / "p.yaml"
    path.write_text(ISSUE_EXAMPLE)
    assert as_policy(path).traffic.name == "production"
    assert as_policy(yaml.safe_load(ISSUE_EXAMPLE)).traffic.name == "production"
    given = engine.Policy(namespace="ns")
    assert as_policy(given) is given and as_policy(None) is None
    with pytest.raises(engine.GraphValidationError):
        as_policy(doc({"default": {"timeout": "never"}}))
    graph = engine.load(GRAPH)
    assert graph.compile(policy=traffic).name == graph.compile().name


def test_explain_prints_a_policy_line_for_steps_whose_policy_is_set():
    def step(index, policy):
        return SimpleNamespace(index=index, name=None, target=_core.StepTarget.TARGET_NODE,
                               node_index=0, condition=None, use_response=False,
                               map_predictions=False, hard=False, policy=policy)

    node = SimpleNamespace(index=0, name="root", router_type=_core.RouterType.ROUTER_SEQUENCE,
                           steps=[step(0, load_policy(ISSUE_EXAMPLE).step_policy(
                               engine.load(GRAPH), "root", engine.load(GRAPH).nodes["root"].steps[0])),
                               step(1, StepPolicy()), step(2, None)])
    compiled = SimpleNamespace(nodes=[node], name="g", service_timeout=None)
    lines = Plan(None, compiled, None, None, timeouts=None).explain().splitlines()
    policy_lines = [line.strip() for line in lines if "policy:" in line]
    assert policy_lines == ["policy: timeout 500ms, retry 2x 50..1000ms, endpoints 2 "
                            "(least-outstanding), breaker 5/10s, concurrency 64+256, "
                            "hedge 50ms, service model-a"]
    assert lines.index("    0. 0 -> node [0]") + 1 == lines.index("       " + policy_lines[0])


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv], stdout=out, stderr=err, stdin=io.StringIO(""))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def files(tmp_path):
    good = tmp_path / "policy.yaml"
    good.write_text(ISSUE_EXAMPLE.replace("    root/classifier:", "    root/nope: {}\n    root/classifier:"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc({"default": {"timeout": "2x"},
                                       "steps": {"root/0": {"retry": {"maxRetries": 20}}}})))
    graph = tmp_path / "graph.yaml"
    graph.write_text(yaml.safe_dump(GRAPH))
    return SimpleNamespace(good=good, bad=bad, graph=graph)


def test_validate_a_policy_alone_and_against_graphs(files):
    code, out, err = run("validate", "--policy", files.good)
    assert (code, out) == (0, "")
    assert err == "1 file(s): 0 error(s), 0 warning(s)\n"
    code, out, err = run("validate", "--policy", files.good, files.graph)
    assert code == 0
    assert out == (f'{files.good} (with {files.graph}): spec.steps["root/nope"]: warning: '
                   'node "root" has no step named or numbered "nope": the entry applies to nothing\n')
    assert err == "2 file(s): 0 error(s), 1 warning(s)\n"


def test_validate_an_invalid_policy_lists_every_error_with_its_path(files):
    code, out, err = run("validate", "--policy", files.bad, files.graph)
    assert code == 1
    assert out.splitlines() == [
        f'{files.bad}: spec.default.timeout: error: Invalid value: "2x": must be a duration '
        'such as "250ms", "2s", "1m" (units ms, s, m, h)',
        f'{files.bad}: spec.steps["root/0"].retry.maxRetries: error: Invalid value: 20: '
        "must be less than or equal to 10"]
    code, out, _ = run("validate", "--json", "--policy", files.bad)
    report = json.loads(out)
    assert (code, report["valid"], report["errors"]) == (1, False, 2)
    assert report["diagnostics"][0]["path"] == "spec.default.timeout"
    code, out, _ = run("validate", "--policy", files.bad.parent / "absent.yaml")
    assert code == 1 and "no such file" in out


def test_validate_needs_a_file_or_a_policy():
    code, _, err = run("validate")
    assert code == 2 and "--policy" in err


def test_explain_plan_takes_a_policy(files):
    code, out, _ = run("explain", "--plan", files.graph, "--policy", files.good)
    assert code == 0 and out.startswith("plan ")
    code, _, err = run("explain", "--plan", files.graph, "--policy", files.bad)
    assert code == 1 and "spec.default.timeout" in err


def _serve(args, env=None):
    return subprocess.run([sys.executable, "-m", "engine", "serve", *map(str, args),
                           "--host", "127.0.0.1", "--http-port", "0", "--grpc-port", "0"],
                          capture_output=True, text=True, timeout=60,
                          env={**__import__("os").environ, **(env or {})})


def test_serve_fails_fast_on_an_invalid_policy_from_the_flag_or_the_env(files):
    for args, env in (([files.graph, "--policy", files.bad], None),
                      ([files.graph], {"IGE_POLICY_FILE": str(files.bad)})):
        proc = _serve(args, env)
        assert proc.returncode == 1, proc.stderr
        assert f"invalid TrafficPolicy {files.bad} (2 error(s))" in proc.stderr
        assert "spec.default.timeout: error:" in proc.stderr
    # the flag wins over the env
    proc = _serve([files.graph, "--policy", files.bad], {"IGE_POLICY_FILE": str(files.good)})
    assert proc.returncode == 1 and "spec.default.timeout" in proc.stderr


def test_serve_runs_with_a_valid_policy_and_warns_about_unmatched_keys(files, tmp_path):
    with ThreadedModel(static(b'{"predictions": [1]}')) as model:
        graph = tmp_path / "served.yaml"
        graph.write_text(yaml.safe_dump({"nodes": {"root": {"routerType": "Sequence", "steps": [
            {"name": "classifier", "serviceUrl": model.url + "/v1/models/a:predict"}]}}}))
        port = free_port()
        proc = start(["serve", graph, "--host", "127.0.0.1", "--http-port", str(port),
                      "--grpc-port", "0", "--drain-seconds", "0"],
                     extra_env={"IGE_POLICY_FILE": str(files.good)})
        try:
            wait_ready(port, proc)
            assert post(port, {"instances": [1]}) == (200, {"predictions": [1]})
        finally:
            assert stop(proc) == 0
        assert 'spec.services.model-a' in proc.err_text and "applies to nothing" in proc.err_text


def test_every_traffic_policy_example_in_docs_policy_md_is_valid():
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parent.parent / "docs" / "policy.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "kind: TrafficPolicy" in b]
    assert len(blocks) >= 3
    for block in blocks:
        for d in yaml.safe_load_all(block):
            if d.get("kind") == "TrafficPolicy":
                load_policy(d)
            elif d.get("kind") == "ConfigMap":
                load_policy(d["data"]["policy.yaml"])
