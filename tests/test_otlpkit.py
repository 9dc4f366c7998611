"""tests/otlpkit.py's receivers against the real OpenTelemetry SDK and its OTLP
exporters (HTTP/protobuf and gRPC): every field the SDK sends is decoded, compression
is undone, bad bodies are refused, and a refusing collector makes the exporter report
failure while the receiver counts the attempt. Local TracerProviders only (no global
state); every wait is bounded; every receiver and provider is closed."""
from __future__ import annotations

import gzip
import http.client
import socket

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from otlpkit import ExportTraceServiceRequest, OtlpGrpcReceiver, OtlpHttpReceiver

WAIT = 10.0


def receiver(transport):
    return OtlpHttpReceiver() if transport == "http" else OtlpGrpcReceiver()


def exporter(transport, rx, **options):
    if transport == "http":
        return HttpSpanExporter(endpoint=rx.traces_url, **options)
    return GrpcSpanExporter(endpoint=rx.endpoint, insecure=True, **options)


def provider(processor):
    p = TracerProvider(resource=Resource.create({"service.name": "otlpkit-test", "deployment.n": 3}))
    p.add_span_processor(processor)
    return p


LINKED = SpanContext(trace_id=0x0af7651916cd43dd8448eb211c80319c, span_id=0xb7ad6b7169203331,
                     is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))


def make_spans(tracer):
    """A server span and its client child (error status, an event, a link): their
    SDK ReadableSpans."""
    with tracer.start_as_current_span("graph", kind=SpanKind.SERVER, attributes={
            "s": "text", "i": 42, "f": 2.5, "b": True, "strs": ["a", "b"], "ints": [1, 2, 3],
            "floats": [0.5, 1.5], "bools": [True, False]}) as parent:
        with tracer.start_as_current_span("step", kind=SpanKind.CLIENT, links=[Link(LINKED, {"why": "retry"})],
                                          attributes={"url": "http://m/v1/models/m:predict"}) as child:
            child.add_event("retry", {"attempt": 2})
            child.set_status(Status(StatusCode.ERROR, "upstream said 503"))
    return parent, child


@pytest.mark.parametrize("transport", ["http", "grpc"])
@pytest.mark.parametrize("batch", [False, True], ids=["simple", "batch"])
def test_the_receiver_decodes_every_field_the_sdk_sends(transport, batch):
    with receiver(transport) as rx:
        out = exporter(transport, rx)
        p = provider(BatchSpanProcessor(out) if batch else SimpleSpanProcessor(out))
        try:
            parent, child = make_spans(p.get_tracer("otlpkit.scope", "1.2.3"))
            assert p.force_flush(int(WAIT * 1000))
            spans = rx.wait_for_spans(2, WAIT)
        finally:
            p.shutdown()
        assert len(spans) == 2
        got_parent, got_child = rx.span("graph"), rx.span("step")
        pctx, cctx = parent.get_span_context(), child.get_span_context()

        assert got_parent.trace_id == got_child.trace_id == f"{pctx.trace_id:032x}"
        assert got_parent.span_id == f"{pctx.span_id:016x}" and got_child.span_id == f"{cctx.span_id:016x}"
        assert got_parent.parent_span_id == ""
        assert got_child.parent_span_id == got_parent.span_id
        assert (got_parent.kind, got_child.kind) == ("SPAN_KIND_SERVER", "SPAN_KIND_CLIENT")
        assert (got_parent.start_time_unix_nano, got_parent.end_time_unix_nano) == (parent.start_time, parent.end_time)
        assert (got_child.start_time_unix_nano, got_child.end_time_unix_nano) == (child.start_time, child.end_time)
        assert got_parent.duration_ns >= got_child.duration_ns > 0
        assert (got_parent.status_code, got_parent.status_message) == ("STATUS_CODE_UNSET", "")
        assert (got_child.status_code, got_child.status_message) == ("STATUS_CODE_ERROR", "upstream said 503")
        assert got_parent.attributes == {"s": "text", "i": 42, "f": 2.5, "b": True, "strs": ["a", "b"],
                                         "ints": [1, 2, 3], "floats": [0.5, 1.5], "bools": [True, False]}
        assert type(got_parent.attributes["i"]) is int and type(got_parent.attributes["f"]) is float
        assert got_child.attributes == {"url": "http://m/v1/models/m:predict"}
        assert [(e.name, e.attributes) for e in got_child.events] == [("retry", {"attempt": 2})]
        assert got_child.events[0].time_unix_nano == child.events[0].timestamp
        assert [(ln.trace_id, ln.span_id, ln.attributes) for ln in got_child.links] == [
            ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", {"why": "retry"})]
        for s in spans:
            assert s.resource["service.name"] == "otlpkit-test" and s.resource["deployment.n"] == 3
            assert s.resource["telemetry.sdk.name"] == "opentelemetry"
            assert (s.scope_name, s.scope_version) == ("otlpkit.scope", "1.2.3")
        calls = rx.exports
        assert sum(c.spans for c in calls) == 2
        assert all(c.status in (200, "OK") and c.size > 0 for c in calls)


def test_gzip_bodies_are_decompressed():
    with OtlpHttpReceiver() as rx:
        memory = InMemorySpanExporter()
        p = provider(SimpleSpanProcessor(memory))
        out = HttpSpanExporter(endpoint=rx.traces_url, compression=Compression.Gzip)
        try:
            with p.get_tracer("t").start_as_current_span("big", attributes={"text": "abc" * 2000}):
                pass
            assert out.export(memory.get_finished_spans()) is SpanExportResult.SUCCESS
        finally:
            out.shutdown()
            p.shutdown()
        (call,) = rx.exports
        assert call.content_encoding == "gzip" and call.wire_size < call.size
        assert rx.span("big").attributes == {"text": "abc" * 2000}


def test_grpc_compression_is_undone_by_grpc():
    with OtlpGrpcReceiver() as rx:
        out = GrpcSpanExporter(endpoint=rx.endpoint, insecure=True, compression=grpc.Compression.Gzip)
        p = provider(SimpleSpanProcessor(out))
        try:
            with p.get_tracer("t").start_as_current_span("big", attributes={"text": "abc" * 2000}):
                pass
            assert rx.wait_for_spans(1, WAIT)[0].attributes == {"text": "abc" * 2000}
        finally:
            p.shutdown()


def post(rx, path, body, headers):
    conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=WAIT)
    try:
        conn.request("POST", path, body, headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


PROTOBUF = {"Content-Type": "application/x-protobuf"}


def test_bodies_that_do_not_decode_paths_and_types_are_refused():
    with OtlpHttpReceiver() as rx:
        assert post(rx, "/v1/traces", b"not a protobuf", PROTOBUF)[0] == 400
        assert post(rx, "/v1/traces", b"\x1f\x8b not gzip", {**PROTOBUF, "Content-Encoding": "gzip"})[0] == 400
        assert post(rx, "/v1/traces", b"{}", {"Content-Type": "application/json"})[0] == 415
        assert post(rx, "/v1/metrics", b"", PROTOBUF)[0] == 404
        # an empty request is a valid one; the answer is an ExportTraceServiceResponse
        status, body = post(rx, "/v1/traces", gzip.compress(ExportTraceServiceRequest().SerializeToString()),
                            {**PROTOBUF, "Content-Encoding": "gzip"})
        assert (status, body) == (200, b"")
        assert [c.status for c in rx.exports] == [400, 400, 415, 200]
        assert rx.spans() == []


def test_a_chunked_body_is_read():
    with OtlpHttpReceiver() as rx:
        conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=WAIT)
        try:
            data = ExportTraceServiceRequest().SerializeToString() + b"\x0a\x00"   # one empty ResourceSpans
            conn.request("POST", "/v1/traces", iter([data[:1], data[1:]]), PROTOBUF, encode_chunked=True)
            assert conn.getresponse().status == 200
        finally:
            conn.close()
        assert rx.exports[0].size == 2


@pytest.mark.parametrize("transport, refusal, retried", [
    ("http", 503, 200), ("http", 429, 200),
    ("grpc", grpc.StatusCode.UNAVAILABLE, "OK"), ("grpc", grpc.StatusCode.RESOURCE_EXHAUSTED, "OK")])
def test_a_refusing_collector_fails_the_export_and_counts_the_attempt(transport, refusal, retried):
    with receiver(transport) as rx:
        memory = InMemorySpanExporter()
        p = provider(SimpleSpanProcessor(memory))
        # a timeout shorter than the exporter's first backoff: one attempt, then failure
        out = exporter(transport, rx, timeout=0.5)
        try:
            parent, child = make_spans(p.get_tracer("t"))
            finished = memory.get_finished_spans()
            rx.fail_next(1, refusal)
            assert out.export(finished) is SpanExportResult.FAILURE
            refused = getattr(refusal, "name", refusal)
            assert [(c.status, c.spans) for c in rx.exports] == [(refused, 2)]
            assert rx.spans() == []
            # told to retry at once, the exporter's retry gets through
            rx.fail_next(1, refusal, retry_after=0)
            assert out.export(finished) is SpanExportResult.SUCCESS
            assert [c.status for c in rx.exports] == [refused, refused, retried]
            assert {s.name for s in rx.wait_for_spans(2, WAIT)} == {"graph", "step"}
        finally:
            out.shutdown()
            p.shutdown()


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_waiting_for_spans_that_do_not_come_says_what_came(transport):
    with receiver(transport) as rx:
        with pytest.raises(AssertionError, match="0 of 1 spans after 0.05s"):
            rx.wait_for_spans(1, 0.05)


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_close_ends_kept_alive_connections_and_frees_the_port(transport):
    rx = receiver(transport)
    out = exporter(transport, rx)
    p = provider(SimpleSpanProcessor(out))
    try:
        with p.get_tracer("t").start_as_current_span("one"):
            pass
        rx.wait_for_spans(1, WAIT)       # the exporter's connection stays open
        rx.close()
        rx.close()                       # twice is harmless
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", rx.port), timeout=WAIT).close()
        if transport == "http":
            assert not rx._thread.is_alive()
    finally:
        p.shutdown()
        rx.close()


def test_env_points_an_sdk_exporter_at_the_receiver(monkeypatch):
    for cls, exporter_cls in ((OtlpHttpReceiver, HttpSpanExporter), (OtlpGrpcReceiver, GrpcSpanExporter)):
        with cls() as rx:
            for name, value in rx.env().items():
                monkeypatch.setenv(name, value)
            out = exporter_cls()          # configured by the environment alone
            p = provider(SimpleSpanProcessor(out))
            try:
                with p.get_tracer("t").start_as_current_span("from-env"):
                    pass
                assert rx.wait_for_spans(1, WAIT)[0].name == "from-env"
            finally:
                p.shutdown()
