"""GET /metrics answers OpenMetrics 1.0 when the scrape's Accept lists it (Prometheus
asks for it first), else Prometheus text 0.0.4 as before. The OpenMetrics text is the
Prometheus text converted (core/metrics.pyx openmetrics_text); prometheus_client's
strict OpenMetrics parser must accept it and read the same samples."""
from __future__ import annotations

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus

import engine
from engine import _core
from faultkit import FaultyModel
from routerkit import raw_exchange, running_router, split_response

# what Prometheus 3 sends (scrape_protocols at their defaults), and Prometheus 2's
PROMETHEUS_3_ACCEPT = ("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
                       "application/openmetrics-text;version=0.0.1;q=0.4,"
                       "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,"
                       "text/plain;version=0.0.4;q=0.2,*/*;q=0.1")
PROMETHEUS_2_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                       "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
OPENMETRICS_TYPE = b"application/openmetrics-text; version=1.0.0; charset=utf-8"
TEXT_TYPE = b"text/plain; charset=utf-8"


@pytest.fixture(autouse=True)
def seeded():
    _core.seed_router_rng(4321)


def families(parsed):
    """{family name: (type, help, sorted samples)} from a parser's families."""
    out = {}
    for f in parsed:
        assert f.name not in out, f"family {f.name} twice"
        out[f.name] = (f.type, f.documentation,
                       sorted((s.name, tuple(sorted(s.labels.items())), s.value) for s in f.samples))
    return out


# ---- reading the Accept header ---------------------------------------------------------

@pytest.mark.parametrize("accept", [
    PROMETHEUS_3_ACCEPT, PROMETHEUS_2_ACCEPT,
    "application/openmetrics-text",
    "Application/OpenMetrics-Text; Version=1.0.0; Q=0.2",
    "text/plain;version=0.0.4;q=1 , application/openmetrics-text ; q=0.001",
    'application/openmetrics-text;version="1.0.0"',
    "application/openmetrics-text;version=0.0.1",
    "application/openmetrics-text;q=1.000",
])
def test_an_accept_that_lists_openmetrics(accept):
    assert _core.accepts_openmetrics(accept.encode())


@pytest.mark.parametrize("accept", [
    "", "text/plain;version=0.0.4", "*/*", "application/*", "text/plain, */*;q=0.1",
    "application/openmetrics-text;q=0",
    "application/openmetrics-text;version=1.0.0;q=0.000",
    "application/openmetrics-text;q=1.5",           # not a qvalue: the range is not counted
    "application/openmetrics-text;q=abc",
    "application/openmetrics-text;q=nan",
    "application/openmetrics-text;version=2.0.0",   # a text this router does not make
    "application/openmetrics-textual",
    "application/json, text/plain;q=0.9",
])
def test_an_accept_that_does_not(accept):
    assert not _core.accepts_openmetrics(accept.encode())


def test_any_accept_header_of_the_request_counts_whatever_its_name_case():
    assert _core.wants_openmetrics([(b"ACCEPT", b"application/openmetrics-text")])
    assert _core.wants_openmetrics([(b"Accept", b"text/plain"), (b"accept", b"application/openmetrics-text")])
    assert not _core.wants_openmetrics([(b"Accept-Encoding", b"application/openmetrics-text")])
    assert not _core.wants_openmetrics([(b"X-Accept", b"application/openmetrics-text"), (b"Accept", b"*/*")])
    assert not _core.wants_openmetrics([])


# ---- the conversion ------------------------------------------------------------------

TRICKY = (
    '# HELP odd_total A counter whose help has a backslash \\\\ and a newline \\n in it.\n'
    '# TYPE odd_total counter\n'
    'odd_total{step="a\\"b\\\\c",why="line\\none"} 3\n'
    'odd_total{step="plain",why=""} 0\n'
    '\n'
    '# a comment OpenMetrics has no room for\n'
    '# HELP bare A counter whose name lacks _total.\n'
    '# TYPE bare counter\n'
    'bare 7\n'
    '# TYPE loose untyped\n'
    'loose{x="1"} 2.5\n'
    '# HELP level\n'
    '# TYPE level gauge\n'
    'level -1.5\n'
    '# HELP lat_seconds Latency.\n'
    '# TYPE lat_seconds histogram\n'
    'lat_seconds_bucket{le="0.5"} 1\n'
    'lat_seconds_bucket{le="+Inf"} 2\n'
    'lat_seconds_sum 1.25\n'
    'lat_seconds_count 2\n'
)


def test_the_conversion_of_tricky_text():
    om = _core.openmetrics_text(TRICKY.encode()).decode()
    assert om.endswith("\n# EOF\n")
    assert om.count("# EOF") == 1
    assert "\n\n" not in om and "# a comment" not in om
    lines = om.splitlines()
    assert "# HELP odd A counter whose help has a backslash \\\\ and a newline \\n in it." in lines
    assert "# TYPE odd counter" in lines
    assert 'odd_total{step="a\\"b\\\\c",why="line\\none"} 3' in lines     # samples unchanged
    assert "# TYPE bare unknown" in lines and "# TYPE loose unknown" in lines
    om_families = families(parse_openmetrics(om))
    assert om_families["odd"] == ("counter", "A counter whose help has a backslash \\ and a newline \n in it.", [
        ("odd_total", (("step", 'a"b\\c'), ("why", "line\none")), 3.0),
        ("odd_total", (("step", "plain"), ("why", "")), 0.0)])
    assert om_families["bare"] == ("unknown", "A counter whose name lacks _total.", [("bare", (), 7.0)])
    assert om_families["level"] == ("gauge", "", [("level", (), -1.5)])
    assert om_families["lat_seconds"][0] == "histogram"
    # the same samples as the Prometheus text gives (but for `bare`, whose sample
    # prometheus_client's Prometheus parser renames bare_total)
    om_samples = sorted(s for name, (_, _, ss) in om_families.items() if name != "bare" for s in ss)
    text_samples = sorted((s.name, tuple(sorted(s.labels.items())), s.value)
                          for f in parse_prometheus(TRICKY) if f.name != "bare" for s in f.samples)
    assert om_samples == text_samples


def test_empty_text_is_just_the_terminator():
    assert _core.openmetrics_text(b"") == b"# EOF\n"


# ---- the router ----------------------------------------------------------------------

async def get_metrics(router, accept=None):
    head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    if accept is not None:
        head += b"Accept: " + accept.encode() + b"\r\n"
    status, headers, body = split_response(await raw_exchange(router.port, head + b"\r\n"))
    assert status == 200
    return headers[b"content-type"], bytes(body)


def flapping(n):
    return (503, {"error": "busy"}) if n % 2 == 0 else (200, {"ok": True})


# every family the router renders, by its OpenMetrics name
ROUTER_FAMILIES = {
    "ige_requests", "ige_requests_failed", "ige_requests_cancelled", "ige_requests_in_flight",
    "ige_draining", "ige_graph_reloads", "ige_headers_dropped", "ige_step_retries", "ige_step_hedges",
    "ige_service_in_flight", "ige_service_queued", "ige_service_shed", "ige_endpoint_outstanding",
    "ige_endpoint_circuit_state", "ige_endpoint_circuit_opened", "ige_endpoint_circuit_rejected",
    "ige_request_duration_seconds", "ige_request_bytes", "ige_response_bytes",
    "ige_step_duration_seconds", "ige_step_errors", "ige_client_connections_open",
    "ige_client_connections_idle"}


def test_a_prometheus_scrape_gets_openmetrics_with_the_same_samples(loop):
    async def body():
        flap = await FaultyModel(flapping).start()
        down = await FaultyModel(lambda n: (503, {"error": "down"})).start()
        try:
            policy = engine.load_policy({"apiVersion": "ige/v1alpha1", "kind": "TrafficPolicy", "spec": {
                "default": {"retry": {"maxRetries": 1, "initialDelayMs": 1, "maxDelayMs": 2}},
                "services": {"model-a": {"circuitBreaker": {"consecutiveFailures": 5},
                                         "concurrency": {"maxInFlight": 4, "maxQueued": 4}}}}})
            graph = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph",
                     "metadata": {"name": "shop"}, "spec": {"nodes": {"root": {"routerType": "Sequence", "steps": [
                         {"name": "clf", "serviceName": "model-a"},
                         {"name": 'a"b\\c\nd', "serviceUrl": down.url, "dependency": "Soft"}]}}}}
            async with running_router(graph, {"model-a": flap.url}, traffic=policy) as router:
                for _ in range(4):
                    assert (await router.post({"instances": [1]})).status == 503
                om_type, om = await get_metrics(router, PROMETHEUS_3_ACCEPT)
                om2_type, om2 = await get_metrics(router, PROMETHEUS_2_ACCEPT)
                text_type, text = await get_metrics(router)
                plain_type, plain = await get_metrics(router, "text/plain;version=0.0.4")
                q0_type, q0 = await get_metrics(router, "application/openmetrics-text;q=0,text/plain;q=0.5")
                rendered = router.instance.app.metrics_text()
        finally:
            await flap.close()
            await down.close()
        return om_type, om, om2_type, om2, text_type, text, plain_type, plain, q0_type, q0, rendered

    om_type, om, om2_type, om2, text_type, text, plain_type, plain, q0_type, q0, rendered = loop.run(body())
    assert om_type == om2_type == OPENMETRICS_TYPE
    assert om == om2
    assert om.endswith(b"\n# EOF\n") and om.count(b"# EOF") == 1
    # Prometheus text as before: its content type, the bytes metrics_text() renders
    assert text_type == plain_type == q0_type == TEXT_TYPE
    assert text == plain == q0 == rendered
    assert b"# EOF" not in text
    assert om == _core.openmetrics_text(text)

    om_families = families(parse_openmetrics(om.decode()))       # strict: raises on invalid text
    text_families = families(parse_prometheus(text.decode()))
    assert set(om_families) == ROUTER_FAMILIES
    assert om_families == text_families
    samples = {(name, labels): value for _, _, ss in om_families.values() for name, labels, value in ss}
    assert samples[("ige_requests_total", (("graph", "shop"),))] == 4
    assert samples[("ige_requests_failed_total", (("graph", "shop"),))] == 4
    assert samples[("ige_step_retries_total", (("graph", "shop"), ("node", "root"), ("step", "clf")))] == 4
    assert samples[("ige_step_errors_total", (("graph", "shop"), ("kind", "status"), ("node", "root"),
                                              ("step", 'a"b\\c\nd')))] == 4
    assert samples[("ige_request_duration_seconds_count", (("code", "503"), ("graph", "shop"),
                                                           ("protocol", "http")))] == 4
