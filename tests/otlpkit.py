"""Real OTLP trace receivers for the tracing tests: OTLP/HTTP (protobuf) and OTLP/gRPC
collectors on loopback, each serving from its own threads, so that they answer whether
the exporter runs in the test's loop, in a thread or in a subprocess.

    with OtlpHttpReceiver() as rx:
        env = rx.env()        # OTEL_EXPORTER_OTLP_ENDPOINT / _PROTOCOL for a router process
        ...                   # or OTLPSpanExporter(endpoint=rx.traces_url)
        spans = rx.wait_for_spans(2, timeout=10)

They decode every export into flat ReceivedSpan records (ids as lowercase hex), count
every export call (ExportCall: status, sizes) and can refuse the next exports
(fail_next) like a collector that is down or throttling."""
from __future__ import annotations

import gzip
import http.server
import socket
import threading
import zlib
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

ExportTraceServiceRequest = trace_service_pb2.ExportTraceServiceRequest
ExportTraceServiceResponse = trace_service_pb2.ExportTraceServiceResponse


# ---- the decoded records ----------------------------------------------------------------

@dataclass(frozen=True)
class ReceivedEvent:
    """A span event."""
    name: str
    time_unix_nano: int
    attributes: dict[str, Any]


@dataclass(frozen=True)
class ReceivedLink:
    """A span link: the linked span's ids (lowercase hex) and the link's attributes."""
    trace_id: str
    span_id: str
    trace_state: str
    attributes: dict[str, Any]


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as a collector received it, flattened with its resource and scope.
    ``kind`` and ``status_code`` are the proto enum names ("SPAN_KIND_SERVER",
    "STATUS_CODE_ERROR"); ``parent_span_id`` is "" for a root span."""
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    status_code: str
    status_message: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope_name: str
    scope_version: str = ""
    trace_state: str = ""
    events: tuple[ReceivedEvent, ...] = ()
    links: tuple[ReceivedLink, ...] = ()

    @property
    def duration_ns(self) -> int:
        return self.end_time_unix_nano - self.start_time_unix_nano


@dataclass(frozen=True)
class ExportCall:
    """One export call the receiver answered. ``status``: the HTTP status, or for gRPC
    the status code name ("OK", "UNAVAILABLE"); ``size``: bytes of the serialized
    request; ``wire_size``: bytes as received (compressed, for HTTP; gRPC: ``size``);
    ``spans``: spans in it (0 for a body that did not decode)."""
    status: int | str
    size: int
    wire_size: int
    spans: int
    content_encoding: str = ""


def any_value(v) -> Any:
    """An AnyValue as a python value: str, bool, int, float, bytes, list, dict or None."""
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return attributes(v.kvlist_value.values)
    return getattr(v, which)


def attributes(kvs) -> dict[str, Any]:
    """Repeated KeyValue as a dict."""
    return {kv.key: any_value(kv.value) for kv in kvs}


def received_spans(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    """The spans of one export request, in the order they came."""
    out = []
    for rs in request.resource_spans:
        resource = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(ReceivedSpan(
                    trace_id=s.trace_id.hex(), span_id=s.span_id.hex(), parent_span_id=s.parent_span_id.hex(),
                    name=s.name, kind=trace_pb2.Span.SpanKind.Name(s.kind),
                    start_time_unix_nano=s.start_time_unix_nano, end_time_unix_nano=s.end_time_unix_nano,
                    status_code=trace_pb2.Status.StatusCode.Name(s.status.code), status_message=s.status.message,
                    attributes=attributes(s.attributes), resource=resource,
                    scope_name=ss.scope.name, scope_version=ss.scope.version, trace_state=s.trace_state,
                    events=tuple(ReceivedEvent(e.name, e.time_unix_nano, attributes(e.attributes))
                                 for e in s.events),
                    links=tuple(ReceivedLink(link.trace_id.hex(), link.span_id.hex(), link.trace_state,
                                             attributes(link.attributes)) for link in s.links)))
    return out


# ---- what both receivers share ----------------------------------------------------------

class _Receiver:
    """Spans and export calls, guarded by one Condition the waits sleep on."""

    protocol = ""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._spans: list[ReceivedSpan] = []
        self._exports: list[ExportCall] = []
        self._failures: list[tuple[Any, float | None]] = []
        self.endpoint = ""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        """The OTEL_* environment that points an SDK exporter (in a router process) here."""
        return {"OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": self.protocol}

    def spans(self) -> list[ReceivedSpan]:
        """Every span received so far (from the exports that were answered OK)."""
        with self._cond:
            return list(self._spans)

    def span(self, name: str) -> ReceivedSpan:
        """The one received span called ``name`` (AssertionError if not exactly one)."""
        found = [s for s in self.spans() if s.name == name]
        assert len(found) == 1, f"{len(found)} spans named {name!r} in {[s.name for s in self.spans()]}"
        return found[0]

    @property
    def exports(self) -> list[ExportCall]:
        """Every export call answered so far, refused ones included."""
        with self._cond:
            return list(self._exports)

    def fail_next(self, n: int, status: Any = None, retry_after: float | None = None) -> None:
        """Refuse the next ``n`` exports with ``status`` (HTTP: 503 by default, or 429;
        gRPC: a grpc.StatusCode, UNAVAILABLE by default), telling the exporter to retry
        after ``retry_after`` seconds when given. Their spans are not kept."""
        with self._cond:
            self._failures.extend([(status, retry_after)] * n)

    def wait_for_spans(self, n: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        """The spans once at least ``n`` arrived; AssertionError with what did after ``timeout``."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._spans) >= n, timeout):
                raise AssertionError(f"{len(self._spans)} of {n} spans after {timeout}s: "
                                     f"{[s.name for s in self._spans]}; exports {self._exports}")
            return list(self._spans)

    def wait_for_exports(self, n: int, timeout: float = 10.0) -> list[ExportCall]:
        """The export calls once at least ``n`` were answered (refused ones count)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._exports) >= n, timeout):
                raise AssertionError(f"{len(self._exports)} of {n} exports after {timeout}s: {self._exports}")
            return list(self._exports)

    def _next_failure(self) -> tuple[Any, float | None] | None:
        with self._cond:
            return self._failures.pop(0) if self._failures else None

    def _record(self, call: ExportCall, spans: list[ReceivedSpan]) -> None:
        with self._cond:
            self._exports.append(call)
            self._spans.extend(spans)
            self._cond.notify_all()


# ---- OTLP/HTTP ----------------------------------------------------------------------

TRACES_PATH = "/v1/traces"


class _HttpServer(http.server.ThreadingHTTPServer):
    """Keeps its open connections so that close() can end kept-alive ones and join
    their threads (ThreadingHTTPServer joins non-daemon handler threads on close)."""
    daemon_threads = False
    block_on_close = True

    def __init__(self, receiver: OtlpHttpReceiver) -> None:
        self.receiver = receiver
        self.connections: set[socket.socket] = set()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _OtlpHandler)

    def process_request(self, request, client_address):
        with self.lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def end_connections(self) -> None:
        with self.lock:
            for conn in self.connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _OtlpHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30                    # a kept-alive connection idle this long is dropped
    server: _HttpServer

    def log_message(self, format, *args):     # noqa: A002 - the base class's name
        pass

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, status: int, body: bytes = b"", content_type: str = "text/plain",
                headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        wire = self._body()
        if self.path.split("?")[0] != TRACES_PATH:
            return self._answer(404, b"not found\n")
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        rx = self.server.receiver
        if content_type != "application/x-protobuf":
            rx._record(ExportCall(415, len(wire), len(wire), 0, encoding), [])
            return self._answer(415, b"only application/x-protobuf\n")
        try:
            data = (gzip.decompress(wire) if encoding == "gzip" else
                    zlib.decompress(wire) if encoding == "deflate" else wire)
            request = ExportTraceServiceRequest.FromString(data)
        except (OSError, EOFError, zlib.error, DecodeError):
            rx._record(ExportCall(400, len(wire), len(wire), 0, encoding), [])
            return self._answer(400, b"not an ExportTraceServiceRequest\n")
        spans = received_spans(request)
        failure = rx._next_failure()
        if failure is not None:
            status, retry_after = failure
            rx._record(ExportCall(status or 503, len(data), len(wire), len(spans), encoding), [])
            return self._answer(status or 503, b"refused\n",
                                headers={"Retry-After": str(int(retry_after))} if retry_after is not None else None)
        rx._record(ExportCall(200, len(data), len(wire), len(spans), encoding), spans)
        self._answer(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

    def _not_allowed(self):
        self._body()
        self._answer(404 if self.path.split("?")[0] != TRACES_PATH else 405, b"no\n")

    do_GET = do_PUT = do_DELETE = do_PATCH = _not_allowed


class OtlpHttpReceiver(_Receiver):
    """An OTLP/HTTP collector (protobuf, optionally gzip or deflate) on a free loopback
    port: POST /v1/traces answers 200 with an ExportTraceServiceResponse, 400 for a
    body that does not decode, 415 for another content type, 404 for another path;
    fail_next(n, 503 or 429) refuses exports. ``endpoint`` is the base URL
    (OTEL_EXPORTER_OTLP_ENDPOINT), ``traces_url`` the signal's."""

    protocol = "http/protobuf"

    def __init__(self) -> None:
        super().__init__()
        self._server = _HttpServer(self)
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.traces_url = self.endpoint + TRACES_PATH
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="otlp-http-receiver", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving, end open connections, join every thread."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.end_connections()
        self._server.server_close()
        self._thread.join(10)
        self._server = None


# ---- OTLP/gRPC ----------------------------------------------------------------------

class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OtlpGrpcReceiver) -> None:
        self.receiver = receiver

    def Export(self, request, context):  # noqa: N802 - the service's method name
        rx = self.receiver
        spans = received_spans(request)
        size = request.ByteSize()
        failure = rx._next_failure()
        if failure is not None:
            code, retry_after = failure
            code = code or grpc.StatusCode.UNAVAILABLE
            rx._record(ExportCall(code.name, size, size, len(spans)), [])
            if retry_after is not None:
                context.set_trailing_metadata((("google.rpc.retryinfo-bin", _retry_info(retry_after)),))
            context.abort(code, "refused")
        rx._record(ExportCall("OK", size, size, len(spans)), spans)
        return ExportTraceServiceResponse()


def _retry_info(seconds: float) -> bytes:
    """A serialized google.rpc.RetryInfo{retry_delay: seconds}, as the exporter reads it."""
    info = RetryInfo()
    info.retry_delay.seconds = int(seconds)
    info.retry_delay.nanos = int((seconds - int(seconds)) * 1e9)
    return info.SerializeToString()


class OtlpGrpcReceiver(_Receiver):
    """An OTLP/gRPC collector (TraceService.Export, insecure) on a free loopback port;
    ``endpoint`` is "http://127.0.0.1:PORT". fail_next(n, grpc.StatusCode...) refuses
    exports with that status."""

    protocol = "grpc"

    def __init__(self) -> None:
        super().__init__()
        self._pool = futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="otlp-grpc-receiver")
        self._server = grpc.server(self._pool)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server.start()

    def close(self) -> None:
        """Stop the server (cancelling calls in progress) and join its threads."""
        if self._server is None:
            return
        self._server.stop(None).wait(10)
        self._pool.shutdown(wait=True)
        self._server = None

