"""deploy/grafana/ige.json: an importable Grafana dashboard whose queries use only
what a running router exports. Grafana is not run here; the checks are its JSON model
(ids, datasource input, layout), each PromQL expression's brackets, and every metric
and label the expressions name, against the /metrics of a router serving a graph under
a TrafficPolicy (so the policy families are there too)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import engine
from routerkit import ModelServer, raw_exchange, running_router, split_response, static

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "ige.json"
DATASOURCE = "${DS_PROMETHEUS}"


@pytest.fixture(scope="module")
def dashboard():
    return json.loads(DASHBOARD.read_text())


def panels(doc):
    for p in doc["panels"]:
        yield p
        yield from p.get("panels", [])


def expressions(doc):
    """(where, PromQL) of every panel target and every query variable."""
    for p in panels(doc):
        for t in p.get("targets", []):
            yield f"panel {p['id']} {p['title']!r} {t['refId']}", t["expr"]
    for v in doc["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]
            yield f"variable {v['name']}", q["query"] if isinstance(q, dict) else q


def without_strings(expr):
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def balanced(expr):
    pairs, stack = {")": "(", "]": "[", "}": "{"}, []
    for c in without_strings(expr):
        if c in "([{":
            stack.append(c)
        elif c in pairs:
            if not stack or stack.pop() != pairs[c]:
                return False
    return not stack


METRIC = re.compile(r"\b(ige_[a-z0-9_]+)\b")


def used(expr):
    """({metric names}, {label names the expression filters or groups by})."""
    bare = without_strings(expr)
    metrics = set(METRIC.findall(bare))
    labels = set()
    for selector in re.findall(r"ige_[a-z0-9_]+\{([^}]*)\}", bare):
        labels |= set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", selector))
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", bare):
        labels |= {x.strip() for x in group.split(",") if x.strip()}
    m = re.match(r"label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$", bare.strip())
    if m:
        labels.add(m.group(2))
    return metrics, labels


def test_the_json_model_imports_with_a_prometheus_input(dashboard):
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    assert dashboard["__inputs"][0]["pluginId"] == "prometheus"
    required = {r["id"] for r in dashboard["__requires"]}
    assert {"grafana", "prometheus"} <= required
    assert {p["type"] for p in panels(dashboard) if p["type"] != "row"} <= required
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"graph", "node", "step"}
    for v in dashboard["templating"]["list"]:
        assert v["datasource"]["uid"] == DATASOURCE


def test_panels_have_unique_ids_the_datasource_and_a_layout_without_overlaps(dashboard):
    all_panels = list(panels(dashboard))
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids))
    boxes = []
    for p in all_panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["y"] >= 0 and g["w"] > 0 and g["h"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        boxes.append((p["title"], g))
        if p["type"] == "row":      # a row holds no query
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": DATASOURCE}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == DATASOURCE and t["expr"], p["title"]
        assert p.get("description"), p["title"]
    for i, (a, ga) in enumerate(boxes):
        for b, gb in boxes[i + 1:]:
            apart = (ga["x"] + ga["w"] <= gb["x"] or gb["x"] + gb["w"] <= ga["x"]
                     or ga["y"] + ga["h"] <= gb["y"] or gb["y"] + gb["h"] <= ga["y"])
            assert apart, (a, b)
    heatmaps = [p for p in all_panels if p["type"] == "heatmap"]
    assert heatmaps and all(t["format"] == "heatmap" for p in heatmaps for t in p["targets"])
    assert all("ige_step_duration_seconds_bucket" in t["expr"] for p in heatmaps for t in p["targets"])


def test_every_expression_has_balanced_brackets(dashboard):
    for where, expr in expressions(dashboard):
        assert balanced(expr), (where, expr)
    assert not balanced('sum(rate(x{a="("}[5m])')     # the check itself can fail


POLICY = {"apiVersion": "ige/v1alpha1", "kind": "TrafficPolicy", "spec": {
    "default": {"retry": {"maxRetries": 1, "initialDelayMs": 1, "maxDelayMs": 2}},
    "services": {"model": {"circuitBreaker": {"consecutiveFailures": 5, "openFor": "10s"},
                           "concurrency": {"maxInFlight": 4, "maxQueued": 4}, "hedge": {"after": "1s"}}}}}


def exported(loop):
    """{sample name: {label names}} of a router's /metrics after one request."""
    async def go():
        m = await ModelServer(static({"predictions": [1]})).start()
        graph = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"name": "s", "serviceName": "model"}]}}}
        try:
            async with running_router(graph, {"model": m.url}, traffic=engine.load_policy(POLICY)) as router:
                assert (await router.post({"instances": [1]})).status == 200
                raw = await raw_exchange(router.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        finally:
            await m.close()
        status, _, body = split_response(raw)
        assert status == 200
        return body.decode()
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(loop.run(go())):
        for s in family.samples:
            names.setdefault(s.name, set()).update(s.labels)
    return names


def test_every_metric_and_label_a_query_uses_is_exported(dashboard, loop):
    names = exported(loop)
    seen = set()
    for where, expr in expressions(dashboard):
        metrics, labels = used(expr)
        assert metrics, (where, expr)
        for metric in metrics:
            assert metric in names, (where, metric)
            missing = labels - names[metric]
            assert not missing, (where, metric, missing)
        seen |= metrics
    # the families the dashboard is for are all on it
    for family in ("ige_request_duration_seconds_bucket", "ige_step_duration_seconds_bucket", "ige_step_errors_total",
                   "ige_endpoint_circuit_state", "ige_step_retries_total", "ige_step_hedges_total",
                   "ige_requests_in_flight", "ige_client_connections_open", "ige_request_bytes_total"):
        assert family in seen, family


def test_the_label_check_can_fail():
    assert used('sum by (code) (rate(ige_step_errors_total{graph=~"$graph"}[5m]))') == (
        {"ige_step_errors_total"}, {"code", "graph"})
    assert used("label_values(ige_requests_total, graph)") == ({"ige_requests_total"}, {"graph"})
