"""OpenTelemetry tracing: W3C Trace Context in and out, one server span per graph
request and one client span per model call, exported by the SDK's OTLP exporters to
a real receiver (tests/otlpkit.py), configured by the standard OTEL_* env."""
from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys

import grpc
import numpy as np
import orjson
import pytest

from engine import _core, tracing
from engine.errors import GraphSpecError
from engine.oip import InferRequest, from_numpy
from oipkit import GrpcClient, GrpcModel, numpy_model
from otlpkit import OtlpGrpcReceiver, OtlpHttpReceiver
from routerkit import ModelServer, closed_port, free_port, raw_exchange, running_router, split_response, static

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01".encode()


def config(**kw):
    """What OTEL_TRACES_EXPORTER=otlp gives, exporting at once (tests)."""
    kw.setdefault("schedule_delay", 0.02)
    return tracing.TracingConfig(exporters=("otlp",), **kw)


@pytest.fixture
def receiver(monkeypatch):
    with OtlpHttpReceiver() as rx:
        for key, value in rx.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
        monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
        yield rx


async def scrape(router) -> str:
    raw = await raw_exchange(router.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, _, body = split_response(raw)
    assert status == 200
    return body.decode()


def header(request, name: bytes):
    values = [v for k, v in request.headers if k.lower() == name]
    assert len(values) <= 1, f"{name!r} sent {len(values)} times"
    return values[0] if values else None


def parse_traceparent(value: bytes):
    version, trace_id, span_id, flags = value.decode().split("-")
    assert version == "00" and len(trace_id) == 32 and len(span_id) == 16 and len(flags) == 2
    return trace_id, span_id, flags


# ---- trace context parsing and sampling (no server) -----------------------------------

def begin(headers, sampler="parentbased_always_on", ratio=1.0):
    return _core.Tracer(sampler, ratio).begin_trace(headers)


def test_a_valid_traceparent_is_honoured():
    tc = begin([(b"Traceparent", TRACEPARENT), (b"tracestate", b"congo=t61rcWkgMzE")])
    assert tc.trace_id_hex == TRACE
    assert tc.remote_parent == int(PARENT, 16)
    assert tc.sampled and tc.server is not None
    assert tc.span_id not in (0, int(PARENT, 16))
    assert tc.tracestate == b"congo=t61rcWkgMzE"


@pytest.mark.parametrize("value", [
    b"00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",   # upper case
    b"00-" + TRACE.encode() + b"-" + PARENT.encode() + b"-01-extra",  # version 00 has 4 fields
    b"ff-" + TRACE.encode() + b"-" + PARENT.encode() + b"-01",       # version ff is invalid
    b"00-" + b"0" * 32 + b"-" + PARENT.encode() + b"-01",             # zero trace id
    b"00-" + TRACE.encode() + b"-" + b"0" * 16 + b"-01",              # zero parent id
    b"00-" + TRACE.encode()[:31] + b"-" + PARENT.encode() + b"-01",   # short trace id
    b"00_" + TRACE.encode() + b"-" + PARENT.encode() + b"-01",
    b"00-" + TRACE.encode() + b"-" + PARENT.encode() + b"-0g",
    b"",
])
def test_an_invalid_traceparent_starts_a_new_trace(value):
    tc = begin([(b"traceparent", value), (b"tracestate", b"a=b")])
    assert tc.remote_parent == 0
    assert tc.trace_id_hex != TRACE and tc.trace_id != 0
    assert tc.tracestate is None        # tracestate means nothing without its traceparent


def test_two_traceparents_are_invalid_and_a_later_version_is_read():
    assert begin([(b"traceparent", TRACEPARENT), (b"traceparent", TRACEPARENT)]).remote_parent == 0
    later = begin([(b"traceparent", b"01-" + TRACE.encode() + b"-" + PARENT.encode() + b"-01-more")])
    assert later.trace_id_hex == TRACE and later.remote_parent == int(PARENT, 16)


def test_tracestate_headers_are_joined_and_an_oversized_one_dropped():
    tc = begin([(b"traceparent", TRACEPARENT), (b"tracestate", b"a=1"), (b"tracestate", b"b=2")])
    assert tc.tracestate == b"a=1,b=2"
    big = begin([(b"traceparent", TRACEPARENT), (b"tracestate", b"k=" + b"v" * 600)])
    assert big.tracestate is None


def test_step_headers_replace_the_callers_trace_context():
    tc = begin([(b"traceparent", TRACEPARENT), (b"tracestate", b"a=1")])
    forwarded = [(b"X-Request-Id", b"r1"), (b"TraceParent", TRACEPARENT), (b"TRACESTATE", b"old")]
    out = tc.headers_for(forwarded, 0x1234)
    assert out == [(b"X-Request-Id", b"r1"),
                   (b"traceparent", f"00-{TRACE}-0000000000001234-01".encode()),
                   (b"tracestate", b"a=1")]
    assert forwarded[1] == (b"TraceParent", TRACEPARENT)     # the request's list is not touched


def test_parent_based_sampling_follows_the_callers_flag():
    off = begin([(b"traceparent", f"00-{TRACE}-{PARENT}-00".encode())])
    assert not off.sampled and off.server is None
    assert off.headers_for([], 7)[0][1].endswith(b"-00")      # propagated, not sampled
    assert begin([(b"traceparent", TRACEPARENT)], "parentbased_always_off").sampled
    assert not begin([], "parentbased_always_off").sampled
    # not parent based: the router's own decision, whatever the caller's flag
    assert not begin([(b"traceparent", TRACEPARENT)], "always_off").sampled
    assert begin([(b"traceparent", f"00-{TRACE}-{PARENT}-00".encode())], "always_on").sampled


def test_trace_id_ratio_samples_that_share_of_new_traces():
    assert not any(begin([], "traceidratio", 0.0).sampled for _ in range(200))
    assert all(begin([], "traceidratio", 1.0).sampled for _ in range(200))
    tracer = _core.Tracer("traceidratio", 0.25)
    n = 4000
    hits = sum(tracer.begin_trace([]).sampled for _ in range(n))
    assert 0.2 * n < hits < 0.3 * n
    # the decision is the SDK's: the trace id's low 64 bits against ratio * 2**64
    for _ in range(200):
        tc = tracer.begin_trace([])
        assert tc.sampled == ((tc.trace_id & (2**64 - 1)) < round(0.25 * 2**64))


def test_ids_are_unique_and_tracers_do_not_share_a_sequence():
    a, b = _core.Tracer(), _core.Tracer()
    ids = {a.begin_trace([]).trace_id for _ in range(2000)}
    assert len(ids) == 2000
    assert a.begin_trace([]).trace_id != b.begin_trace([]).trace_id


def test_the_queue_is_bounded_and_counts_what_it_drops():
    woken = []
    tracer = _core.Tracer(max_queue=3, batch_size=2, wake=lambda: woken.append(1))
    _core.set_tracer(tracer)
    try:
        step = _core.PlanStep(0, "m", 0, 0, _core.LocalBackend(lambda body: {"ok": 1}), None, None,
                              False, False, False, 0)
        plan = _core.CompiledPlan((_core.PlanNode(0, "root", 0, (step,)),), 0.0, "g")
        for _ in range(5):
            ctx = _core.RunContext([], 0.0)
            _core.trace_request(ctx, plan, [])
            asyncio.run(_core.execute(plan, b"{}", ctx))
    finally:
        _core.set_tracer(None)
    # each request: its server span and its step's
    assert tracer.finished == 3 and tracer.dropped == 7 and tracer.queued == 3
    assert woken == [1]                 # once, when the queue first held a batch
    records = tracer.take(2)
    assert len(records) == 2 and tracer.queued == 1
    assert [r.kind for r in records] == [_core.KIND_CLIENT, _core.KIND_SERVER]
    assert records[0].step is step and records[1].plan is plan
    assert all(r.end_ns >= r.start_ns > 0 for r in records)


# ---- configuration from the standard env ----------------------------------------------

def test_tracing_is_off_unless_an_exporter_is_named():
    assert tracing.from_env({}) is None
    assert tracing.from_env({"OTEL_TRACES_EXPORTER": "none"}) is None
    assert tracing.from_env({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}) is None


def test_env_settings_are_read():
    c = tracing.from_env({
        "OTEL_TRACES_EXPORTER": "otlp,console", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1",
        "OTEL_BSP_SCHEDULE_DELAY": "250", "OTEL_BSP_MAX_QUEUE_SIZE": "100",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "500", "OTEL_BSP_EXPORT_TIMEOUT": "2000"})
    assert c == tracing.TracingConfig(exporters=("otlp", "console"), protocol="grpc",
                                      sampler="parentbased_traceidratio", ratio=0.1,
                                      schedule_delay=0.25, max_queue=100, batch_size=100,
                                      export_timeout=2.0)
    # the signal-specific protocol wins, as the SDK's exporters read it
    assert tracing.from_env({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                             "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}).protocol == "http/protobuf"


@pytest.mark.parametrize("env, var", [
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "traceidratio",
      "OTEL_TRACES_SAMPLER_ARG": "1.5"}, "OTEL_TRACES_SAMPLER_ARG"),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "traceidratio",
      "OTEL_TRACES_SAMPLER_ARG": "half"}, "OTEL_TRACES_SAMPLER_ARG"),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_BSP_MAX_QUEUE_SIZE": "0"}, "OTEL_BSP_MAX_QUEUE_SIZE"),
])
def test_bad_env_fails_at_start_naming_the_variable(env, var):
    with pytest.raises(GraphSpecError, match=var):
        tracing.from_env(env)


# ---- end to end over HTTP ----------------------------------------------------------------

GRAPH = {"nodes": {
    "root": {"routerType": "Sequence", "steps": [
        {"serviceUrl": None, "name": "first"},
        {"serviceUrl": None, "name": "second", "data": "$response"},
        {"nodeName": "fan", "name": "fan-out"}]},
    "fan": {"routerType": "Ensemble", "steps": [
        {"serviceUrl": None, "name": "x"}, {"serviceUrl": None, "name": "y"}]}}}


def graph(first, second, x, y):
    doc = orjson.loads(orjson.dumps(GRAPH))
    steps = doc["nodes"]["root"]["steps"]
    steps[0]["serviceUrl"], steps[1]["serviceUrl"] = first, second
    fan = doc["nodes"]["fan"]["steps"]
    fan[0]["serviceUrl"], fan[1]["serviceUrl"] = x, y
    return doc


def test_spans_of_a_graph_request_reach_an_otlp_receiver(loop, receiver):
    async def go():
        a = await ModelServer(static({"a": 1})).start()
        b = await ModelServer(static({"err": "busy"}, 503)).start()       # soft: the graph goes on
        x = await ModelServer(static({"x": 1})).start()
        y = await ModelServer(static({"y": 2})).start()
        try:
            async with running_router(graph(a.url, b.url, x.url, y.url),
                                      options={"tracing": config()}) as router:
                r = await router.post(b'{"in": 1}', headers=[(b"traceparent", TRACEPARENT),
                                                            (b"tracestate", b"vendor=1")])
                assert r.status == 200
        finally:
            for m in (a, b, x, y):
                await m.close()
        return {"first": a, "second": b, "x": x, "y": y}
    models = loop.run(go())
    spans = receiver.wait_for_spans(5, timeout=10)
    assert len(spans) == 5
    assert {s.trace_id for s in spans} == {TRACE}
    server = receiver.span("POST graph")
    assert server.kind == "SPAN_KIND_SERVER" and server.parent_span_id == PARENT
    assert server.attributes == {"ige.graph": "graph", "http.request.method": "POST",
                                 "url.path": "/v1/models/graph:predict", "url.scheme": "http",
                                 "http.response.status_code": 200}
    assert server.status_code == "STATUS_CODE_UNSET"
    assert server.resource["service.name"] == "ige"
    assert server.scope_name == "engine"
    for node, step in (("root", "first"), ("root", "second"), ("fan", "x"), ("fan", "y")):
        span = receiver.span(f"POST {node}/{step}")
        model = models[step]
        assert span.kind == "SPAN_KIND_CLIENT"
        assert span.parent_span_id == server.span_id
        assert server.start_time_unix_nano <= span.start_time_unix_nano <= span.end_time_unix_nano \
            <= server.end_time_unix_nano
        assert span.attributes["url.full"] == model.url
        assert span.attributes["server.address"] == "127.0.0.1"
        assert span.attributes["server.port"] == model.port
        assert (span.attributes["ige.graph"], span.attributes["ige.node"], span.attributes["ige.step"]) \
            == ("graph", node, step)
        assert span.attributes["http.request.method"] == "POST"
        # the call carried the trace: same trace id, the client span's id, sampled
        assert parse_traceparent(header(model.requests[0], b"traceparent")) == (TRACE, span.span_id, "01")
        assert header(model.requests[0], b"tracestate") == b"vendor=1"
    failed = receiver.span("POST root/second")
    assert failed.attributes["http.response.status_code"] == 503
    assert failed.attributes["error.type"] == "503"
    assert failed.status_code == "STATUS_CODE_ERROR"
    assert receiver.span("POST root/first").status_code == "STATUS_CODE_UNSET"


def test_a_v2_infer_request_is_traced_with_its_path(loop, receiver):
    async def go():
        a = await ModelServer(static({"a": 1})).start()
        try:
            doc = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": a.url, "name": "m"}]}}}
            async with running_router(doc, options={"tracing": config()}) as router:
                r = await router.post(b'{"inputs": []}', path="/v2/models/graph/infer",
                                      headers=[(b"traceparent", TRACEPARENT)])
                assert r.status == 200
        finally:
            await a.close()
        return a
    a = loop.run(go())
    receiver.wait_for_spans(2, timeout=10)
    server = receiver.span("POST graph")
    assert server.attributes["url.path"] == "/v2/models/graph/infer"
    assert server.trace_id == TRACE and server.parent_span_id == PARENT
    client = receiver.span("POST root/m")
    assert parse_traceparent(header(a.requests[0], b"traceparent")) == (TRACE, client.span_id, "01")


def test_without_incoming_context_the_router_starts_the_trace(loop, receiver):
    async def go():
        a = await ModelServer(static({"a": 1})).start()
        try:
            doc = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": a.url}]}}}
            async with running_router(doc, options={"tracing": config()}) as router:
                assert (await router.post(b"{}")).status == 200
                assert (await router.post(b"{}")).status == 200
        finally:
            await a.close()
        return a
    a = loop.run(go())
    spans = receiver.wait_for_spans(4, timeout=10)
    servers = [s for s in spans if s.kind == "SPAN_KIND_SERVER"]
    assert len(servers) == 2 and all(s.parent_span_id == "" for s in servers)
    assert servers[0].trace_id != servers[1].trace_id
    sent = sorted(parse_traceparent(header(r, b"traceparent"))[0] for r in a.requests)
    assert sent == sorted(s.trace_id for s in servers)
    # an unnamed step is its index
    assert {s.name for s in spans if s.kind == "SPAN_KIND_CLIENT"} == {"POST root/0"}


def test_transport_failures_and_5xx_answers_mark_their_spans(loop, receiver):
    async def go():
        doc = {"nodes": {"root": {"routerType": "Sequence", "steps": [
            {"serviceUrl": f"http://127.0.0.1:{closed_port()}/v1/models/m:predict", "name": "gone"}]}}}
        async with running_router(doc, options={"tracing": config()}) as router:
            r = await router.post(b"{}")
            assert r.status == 500
    loop.run(go())
    spans = receiver.wait_for_spans(2, timeout=10)
    client = receiver.span("POST root/gone")
    assert client.status_code == "STATUS_CODE_ERROR"
    assert "connection refused" in client.status_message
    assert client.attributes["error.type"] == "transport"
    assert [e.name for e in client.events] == ["exception"]
    assert client.events[0].attributes["exception.type"] == "transport"
    server = receiver.span("POST graph")
    assert server.status_code == "STATUS_CODE_ERROR"
    assert server.attributes["http.response.status_code"] == 500
    assert server.attributes["error.type"] == "500"
    assert "connection refused" in server.status_message
    assert len(spans) == 2


def test_tracing_off_leaves_the_trace_context_to_propagate_headers(loop, monkeypatch):
    # KServe's router: no trace context of its own; a traceparent reaches the steps
    # only when PROPAGATE_HEADERS names it, unchanged
    async def go(patterns):
        a = await ModelServer(static({"a": 1})).start()
        try:
            doc = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": a.url}]}}}
            async with running_router(doc, propagate_headers=patterns) as router:
                assert (await router.post(b"{}", headers=[(b"traceparent", TRACEPARENT)])).status == 200
        finally:
            await a.close()
        return a.requests[0]
    assert _core.get_tracer() is None
    assert header(loop.run(go("X-Request-Id")), b"traceparent") is None
    assert header(loop.run(go("Traceparent")), b"traceparent") == TRACEPARENT


def test_a_propagated_traceparent_is_replaced_not_doubled(loop, receiver):
    async def go():
        a = await ModelServer(static({"a": 1})).start()
        try:
            doc = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": a.url}]}}}
            async with running_router(doc, propagate_headers="Trace.*,X-Id",
                                      options={"tracing": config()}) as router:
                assert (await router.post(b"{}", headers=[(b"traceparent", TRACEPARENT),
                                                          (b"X-Id", b"7")])).status == 200
        finally:
            await a.close()
        return a.requests[0]
    request = loop.run(go())
    client = [s for s in receiver.wait_for_spans(2, timeout=10) if s.kind == "SPAN_KIND_CLIENT"][0]
    assert parse_traceparent(header(request, b"traceparent")) == (TRACE, client.span_id, "01")
    assert header(request, b"x-id") == b"7"


def test_an_unsampled_request_propagates_its_context_and_exports_nothing(loop, receiver):
    async def go():
        a = await ModelServer(static({"a": 1})).start()
        try:
            doc = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": a.url}]}}}
            async with running_router(doc, options={"tracing": config()}) as router:
                r = await router.post(b"{}", headers=[(b"traceparent", f"00-{TRACE}-{PARENT}-00".encode())])
                assert r.status == 200
                metrics = await scrape(router)
        finally:
            await a.close()
        return a.requests[0], metrics
    request, metrics = loop.run(go())
    trace_id, span_id, flags = parse_traceparent(header(request, b"traceparent"))
    assert (trace_id, flags) == (TRACE, "00") and span_id != PARENT
    assert "ige_trace_spans_finished_total 0\n" in metrics
    assert receiver.exports == []


def test_a_failing_collector_disturbs_no_request(loop, receiver, monkeypatch):
    receiver.fail_next(1000)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0.5")     # the exporter gives up fast
    async def go():
        a = await ModelServer(static({"a": 1})).start()
        try:
            doc = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": a.url}]}}}
            async with running_router(doc, options={"tracing": config(export_timeout=2.0)}) as router:
                for _ in range(20):
                    assert (await router.post(b"{}")).status == 200
                receiver.wait_for_exports(1, timeout=10)
                pipeline = router.instance.tracing
                assert await asyncio.get_running_loop().run_in_executor(None, pipeline.force_flush, 10.0)
                metrics = await scrape(router)
        finally:
            await a.close()
        return metrics
    metrics = loop.run(go())
    assert receiver.spans() == []
    assert all(e.status == 503 for e in receiver.exports)
    assert "ige_trace_spans_finished_total 40\n" in metrics
    assert "ige_trace_spans_export_failed_total 40\n" in metrics
    assert "ige_trace_spans_exported_total 0\n" in metrics


# ---- logs carry the trace id ----------------------------------------------------------

class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def test_failed_step_and_access_log_lines_carry_the_trace_id(loop, receiver):
    steps, access = Records(), Records()
    steps_logger, access_logger = logging.getLogger("engine.steps"), logging.getLogger("engine.access")
    steps_logger.addHandler(steps)
    access_logger.addHandler(access)
    level = access_logger.level
    access_logger.setLevel(logging.INFO)
    async def go():
        b = await ModelServer(static({"err": 1}, 500)).start()
        try:
            doc = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": b.url, "name": "bad"}]}}}
            async with running_router(doc, options={"tracing": config(), "access_log": True}) as router:
                assert (await router.post(b"{}", headers=[(b"traceparent", TRACEPARENT)])).status == 500
        finally:
            await b.close()
    try:
        loop.run(go())
    finally:
        steps_logger.removeHandler(steps)
        access_logger.removeHandler(access)
        access_logger.setLevel(level)
    failed = [r for r in steps.records if r.getMessage() == "step failed"]
    assert len(failed) == 1 and failed[0].trace_id == TRACE and failed[0].status == 500
    lines = [r for r in access.records if r.getMessage() == "request"]
    assert len(lines) == 1
    line = lines[0]
    assert (line.graph, line.protocol, line.status, line.trace_id, line.bytes_in) == ("", "http", 500, TRACE, 2)
    assert line.ms > 0 and line.bytes_out > 0


# ---- gRPC: the front end's server span and gRPC steps' metadata ----------------------------

def test_grpc_front_end_and_grpc_steps_carry_the_trace(loop, receiver):
    access = Records()
    access_logger = logging.getLogger("engine.access")
    access_logger.addHandler(access)
    level = access_logger.level
    access_logger.setLevel(logging.INFO)

    async def go():
        m = await GrpcModel(numpy_model(lambda v: v * np.float32(2))).start()
        failing = await GrpcModel(lambda req: (grpc.StatusCode.UNAVAILABLE, "warming up")).start()
        try:
            doc = {"nodes": {"root": {"routerType": "Sequence", "steps": [
                {"serviceUrl": m.url("double"), "name": "double"}]}}}
            async with running_router(doc, grpc=True, options={"tracing": config(), "access_log": True}) as router:
                client = GrpcClient(router.grpc_port)
                try:
                    req = InferRequest("graph", [from_numpy("x", np.ones((1, 4), np.float32))])
                    await client.infer(req, metadata=(("traceparent", TRACEPARENT.decode()),))
                finally:
                    await client.close()
            doc["nodes"]["root"]["steps"][0]["serviceUrl"] = failing.url("m")
            async with running_router(doc, grpc=True, options={"tracing": config()}) as router:
                client = GrpcClient(router.grpc_port)
                try:
                    with pytest.raises(grpc.aio.AioRpcError) as e:
                        await client.infer(InferRequest("graph", [from_numpy("x", np.ones((1, 4), np.float32))]))
                    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
                finally:
                    await client.close()
        finally:
            await m.close()
            await failing.close()
        return m
    try:
        m = loop.run(go())
    finally:
        access_logger.removeHandler(access)
        access_logger.setLevel(level)
    spans = receiver.wait_for_spans(4, timeout=10)
    servers = [s for s in spans if s.kind == "SPAN_KIND_SERVER"]
    # the access line of a gRPC call: its status name, bytes and trace id
    (line,) = [r for r in access.records if r.getMessage() == "request"]
    assert (line.protocol, line.status, line.trace_id) == ("grpc", "OK", TRACE)
    assert line.bytes_in > 16 and line.bytes_out > 16 and line.ms > 0
    assert [s.name for s in servers] == ["inference.GRPCInferenceService/ModelInfer"] * 2
    ok = next(s for s in servers if s.trace_id == TRACE)
    assert ok.parent_span_id == PARENT
    assert ok.attributes["rpc.system"] == "grpc" and ok.attributes["rpc.grpc.status_code"] == 0
    assert ok.status_code == "STATUS_CODE_UNSET"
    step = next(s for s in spans if s.name == "ModelInfer root/double")
    assert step.parent_span_id == ok.span_id and step.attributes["rpc.method"] == "ModelInfer"
    assert step.attributes["server.port"] == m.port
    assert parse_traceparent(m.metadata[0]["traceparent"].encode()) == (TRACE, step.span_id, "01")
    bad = next(s for s in servers if s.trace_id != TRACE)
    assert bad.attributes["rpc.grpc.status_code"] == 14           # UNAVAILABLE
    assert bad.status_code == "STATUS_CODE_ERROR"


# ---- the standard env, end to end: ige serve in a subprocess, OTLP over gRPC -------------

def test_ige_serve_exports_over_otlp_grpc_as_the_env_says(tmp_path):
    with OtlpGrpcReceiver() as rx, ModelThread() as model:
        port = free_port()
        env = {**os.environ, **rx.env(), "OTEL_TRACES_EXPORTER": "otlp",
               "OTEL_SERVICE_NAME": "fraud-graph", "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test",
               "OTEL_BSP_SCHEDULE_DELAY": "50", "PYTHONPATH": os.pathsep.join(sys.path)}
        spec = orjson.dumps({"nodes": {"root": {"routerType": "Sequence",
                                                  "steps": [{"serviceUrl": model.url, "name": "score"}]}}})
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "serve", "--graph-json", spec.decode(), "--http-port", str(port),
             "--grpc-port", "0", "--drain-seconds", "0", "--host", "127.0.0.1"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            status = post_when_up(port, proc)
            assert status == 200
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()[-2000:]
        spans = rx.wait_for_spans(2, timeout=10)
        assert {s.resource["service.name"] for s in spans} == {"fraud-graph"}
        assert {s.resource["deployment.environment"] for s in spans} == {"test"}
        assert sorted(s.name for s in spans) == ["POST graph", "POST root/score"]


class ModelThread:
    """A model on a thread of its own (the router runs in another process)."""

    def __enter__(self):
        from routerkit import ThreadedModel
        self.threaded = ThreadedModel(static({"ok": True}))
        self.url = self.threaded.__enter__().url
        return self

    def __exit__(self, *exc):
        self.threaded.__exit__(*exc)


def post_when_up(port: int, proc, timeout: float = 30.0) -> int:
    import http.client
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ige serve exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("POST", "/v1/models/graph:predict", body=b"{}")
            status = conn.getresponse().status
            conn.close()
            return status
        except OSError:
            time.sleep(0.1)
    raise AssertionError("ige serve did not answer in time")
