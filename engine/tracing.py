"""OpenTelemetry tracing, configured by the standard OTEL_* environment.

The request path only fills compact span records (``engine._core.Tracer``,
ext/core/trace.pyx). A thread started here takes them in batches, turns each into
the OpenTelemetry SDK's ``ReadableSpan`` (names and attributes per OpenTelemetry's
HTTP and RPC semantic conventions, plus ``ige.graph``, ``ige.node``, ``ige.step``)
and hands the batch to the SDK's exporters: OTLP over HTTP/protobuf or gRPC, or the
console. The SDK is imported only when tracing is on.

Tracing is off unless ``OTEL_TRACES_EXPORTER`` names an exporter (KServe's router
does not trace; docs/observability.md).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

from . import __version__, _core
from .errors import GraphSpecError

log = logging.getLogger("engine.tracing")

SAMPLERS = ("always_on", "always_off", "traceidratio", "parentbased_always_on",
            "parentbased_always_off", "parentbased_traceidratio")
EXPORTERS = ("otlp", "console")
PROTOCOLS = ("http/protobuf", "grpc")
GRPC_SERVICE = "inference.GRPCInferenceService"
# gRPC status names -> codes (rpc.grpc.status_code); server spans of these are errors
# (OpenTelemetry's RPC conventions)
GRPC_CODES = {name: i for i, name in enumerate((
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED"))}
GRPC_SERVER_ERRORS = frozenset(("UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL",
                                "UNAVAILABLE", "DATA_LOSS"))


@dataclasses.dataclass(frozen=True)
class TracingConfig:
    """What the OTEL_* env asks for (``from_env``); exporters are made at start."""
    exporters: tuple[str, ...]
    protocol: str = "http/protobuf"
    sampler: str = "parentbased_always_on"
    ratio: float = 1.0
    schedule_delay: float = 5.0     # seconds between exports (OTEL_BSP_SCHEDULE_DELAY, ms)
    max_queue: int = 2048
    batch_size: int = 512
    export_timeout: float = 30.0    # seconds (OTEL_BSP_EXPORT_TIMEOUT, ms)


def _number(environ: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise GraphSpecError(f"{name}={raw!r}: expected a number") from None
    if not value >= minimum or value != value or value == float("inf"):
        raise GraphSpecError(f"{name}={raw!r}: expected a finite number >= {minimum:g}")
    return value


def from_env(environ: Mapping[str, str] | None = None) -> TracingConfig | None:
    """The tracing the env asks for, or None (off). A value the SDK would refuse
    fails here, at start, with the variable's name (GraphSpecError)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names or names == ["none"]:
        return None
    for n in names:
        if n not in EXPORTERS:
            raise GraphSpecError(f"OTEL_TRACES_EXPORTER={env['OTEL_TRACES_EXPORTER']!r}: "
                                 f"unknown exporter {n!r} (expected {', '.join(EXPORTERS)} or none)")
    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf").strip().lower()
    if "otlp" in names and protocol not in PROTOCOLS:
        var = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" if env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
               else "OTEL_EXPORTER_OTLP_PROTOCOL")
        raise GraphSpecError(f"{var}={protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    sampler = env.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
    if sampler not in SAMPLERS:
        raise GraphSpecError(f"OTEL_TRACES_SAMPLER={sampler!r}: expected one of {', '.join(SAMPLERS)}")
    ratio = 1.0
    if sampler.endswith("traceidratio"):
        ratio = _number(env, "OTEL_TRACES_SAMPLER_ARG", 1.0, minimum=0.0)
        if ratio > 1.0:
            raise GraphSpecError(f"OTEL_TRACES_SAMPLER_ARG={ratio:g}: a ratio is at most 1")
    max_queue = int(_number(env, "OTEL_BSP_MAX_QUEUE_SIZE", 2048, minimum=1))
    return TracingConfig(
        exporters=tuple(dict.fromkeys(names)), protocol=protocol, sampler=sampler, ratio=ratio,
        schedule_delay=_number(env, "OTEL_BSP_SCHEDULE_DELAY", 5000, minimum=0) / 1000.0,
        max_queue=max_queue,
        batch_size=min(max_queue, int(_number(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, minimum=1))),
        export_timeout=_number(env, "OTEL_BSP_EXPORT_TIMEOUT", 30000, minimum=0) / 1000.0)


def check_available(config: TracingConfig) -> None:
    """GraphSpecError when the packages ``config`` needs are not installed."""
    import importlib.util
    needed = ["opentelemetry.sdk.trace"]
    if "otlp" in config.exporters:
        needed.append("opentelemetry.exporter.otlp.proto.grpc.trace_exporter" if config.protocol == "grpc"
                      else "opentelemetry.exporter.otlp.proto.http.trace_exporter")
    for module in needed:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            raise GraphSpecError(f"OTEL_TRACES_EXPORTER={','.join(config.exporters)}: tracing needs "
                                 f"{module} (pip install 'inference-graph-engine[tracing]')")


def make_exporters(config: TracingConfig) -> list:
    """The SDK exporters ``config`` names; they read their endpoint, headers,
    timeout, compression and certificates from the OTEL_EXPORTER_OTLP_* env."""
    out = []
    for name in config.exporters:
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter
            out.append(ConsoleSpanExporter())
        elif config.protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            out.append(OTLPSpanExporter())
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            out.append(OTLPSpanExporter())
    return out


def make_resource(default_service: str):
    """OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME, else ``default_service`` as
    service.name; service.version is the engine's."""
    from opentelemetry.sdk.resources import Resource
    resource = Resource.create({"service.version": __version__})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": default_service}))
    return resource


class SpanConverter:
    """SpanRecords -> the SDK's ReadableSpans (runs on the export thread)."""

    def __init__(self, resource):
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry import trace
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.trace.status import Status, StatusCode
        self.trace = trace
        self.Event = Event
        self.ReadableSpan = ReadableSpan
        self.Status = Status
        self.StatusCode = StatusCode
        self.unset = Status(StatusCode.UNSET)
        self.sampled = trace.TraceFlags(trace.TraceFlags.SAMPLED)
        self.resource = resource
        self.scope = InstrumentationScope("engine", __version__)
        self.step_cache: dict = {}
        self.states: dict = {}

    def step_info(self, step, graph: str):
        """(name, kind, attributes) of a step's client spans: one per step, cached."""
        info = self.step_cache.get(step)
        if info is None:
            if len(self.step_cache) > 10000:    # plans replaced many times over
                self.step_cache.clear()
            node, label, target = step.site
            attrs = {"ige.graph": graph, "ige.node": node, "ige.step": label}
            url = target or ""
            parts = urlsplit(url) if "://" in url else None
            scheme = parts.scheme if parts is not None else ""
            SpanKind = self.trace.SpanKind
            if scheme in ("http", "https"):
                name, kind, rpc = f"POST {node}/{label}", SpanKind.CLIENT, False
                attrs.update({"http.request.method": "POST", "url.full": url})
            elif scheme == "grpc":
                name, kind, rpc = f"ModelInfer {node}/{label}", SpanKind.CLIENT, True
                attrs.update({"rpc.system": "grpc", "rpc.service": GRPC_SERVICE, "rpc.method": "ModelInfer"})
            else:
                name, kind, rpc = f"call {node}/{label}", SpanKind.INTERNAL, False
                attrs["ige.target"] = url
            if parts is not None and parts.hostname:
                attrs["server.address"] = parts.hostname
                try:
                    port = parts.port
                except ValueError:
                    port = None
                if port is None:
                    port = {"http": 80, "https": 443}.get(scheme)
                if port is not None:
                    attrs["server.port"] = port
            info = self.step_cache[step] = (name, kind, attrs, rpc)
        return info

    def trace_state(self, raw):
        if raw is None:
            return None
        state = self.states.get(raw)
        if state is None:
            if len(self.states) > 1000:
                self.states.clear()
            state = self.states[raw] = self.trace.TraceState.from_header([raw.decode("latin-1")])
        return state

    def convert(self, record):
        trace = self.trace
        tc = record.trace
        state = self.trace_state(tc.tracestate)
        flags = self.sampled
        context = trace.SpanContext(tc.trace_id, record.span_id, is_remote=False,
                                    trace_flags=flags, trace_state=state)
        parent = None
        if record.parent_id:
            parent = trace.SpanContext(tc.trace_id, record.parent_id,
                                       is_remote=record.kind == _core.KIND_SERVER,
                                       trace_flags=flags, trace_state=state)
        status_code = self.StatusCode.UNSET
        description = None
        events = ()
        if record.kind == _core.KIND_SERVER:
            graph = (record.plan.name if record.plan is not None else "") or "graph"
            attrs = {"ige.graph": graph}
            if tc.protocol == _core.PROTOCOL_GRPC:
                name, kind = f"{GRPC_SERVICE}/ModelInfer", trace.SpanKind.SERVER
                attrs.update({"rpc.system": "grpc", "rpc.service": GRPC_SERVICE, "rpc.method": "ModelInfer"})
                if record.code is not None:
                    attrs["rpc.grpc.status_code"] = GRPC_CODES.get(record.code, 2)
                    if record.code in GRPC_SERVER_ERRORS:
                        status_code = self.StatusCode.ERROR
                        description = record.code
            else:
                method = (record.method or b"POST").decode("latin-1")
                name, kind = f"{method} {graph}", trace.SpanKind.SERVER
                attrs["http.request.method"] = method
                if record.path is not None:
                    attrs["url.path"] = record.path.split(b"?", 1)[0].decode("latin-1")
                attrs["url.scheme"] = "http"
            if record.status:
                attrs["http.response.status_code"] = record.status
                if record.status >= 500:
                    status_code = self.StatusCode.ERROR
                    attrs["error.type"] = str(record.status)
            if record.error is not None:
                description = record.error
                if not record.status:           # no answer at all: cancelled, or a bug
                    status_code = self.StatusCode.ERROR
                    attrs["error.type"] = record.error_type or "error"
        else:
            graph = ""
            name, kind, base, rpc = self.step_info(record.step, self.graph_of(record))
            attrs = dict(base)
            if record.error is not None:
                status_code = self.StatusCode.ERROR
                description = record.error
                attrs["error.type"] = record.error_type or "error"
                events = (self.Event("exception", {"exception.type": record.error_type or "error",
                                              "exception.message": record.error},
                                timestamp=record.end_ns),)
            elif record.status:
                if rpc:
                    # a gRPC step's status is the HTTP status the graph sees for it
                    attrs["ige.status"] = record.status
                    if 200 <= record.status <= 299:
                        attrs["rpc.grpc.status_code"] = 0
                else:
                    attrs["http.response.status_code"] = record.status
                if not 200 <= record.status <= 299:
                    attrs["error.type"] = str(record.status)
                if record.status >= 400:
                    status_code = self.StatusCode.ERROR
        if status_code == self.StatusCode.UNSET:
            status = self.unset
        else:
            status = self.Status(status_code, description if status_code == self.StatusCode.ERROR else None)
        return self.ReadableSpan(name=name, context=context, parent=parent, resource=self.resource,
                            attributes=attrs, events=events, kind=kind, status=status,
                            start_time=record.start_ns, end_time=record.end_ns,
                            instrumentation_scope=self.scope)

    @staticmethod
    def graph_of(record) -> str:
        server = record.trace.server
        plan = server.plan if server is not None else None
        return (plan.name if plan is not None else "") or "graph"


class TracePipeline:
    """The process's tracer and its export thread: ``start`` installs the tracer,
    ``shutdown`` removes it, exports what is queued and stops the exporters."""

    def __init__(self, config: TracingConfig, exporters: list, resource):
        self.config = config
        self.exporters = exporters
        self.converter = SpanConverter(resource)
        self._wake = threading.Event()
        self._stopping = False
        self._idle = threading.Condition()
        self._busy = False
        self.tracer = _core.Tracer(config.sampler, config.ratio, max_queue=config.max_queue,
                                   batch_size=config.batch_size, wake=self._wake.set)
        self.thread = threading.Thread(target=self._run, name="ige-trace-export", daemon=True)

    def start(self) -> "TracePipeline":
        _core.set_tracer(self.tracer)
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.config.schedule_delay)
            self._wake.clear()
            self._export_queued()
        self._export_queued()

    def _export_queued(self) -> None:
        with self._idle:
            self._busy = True
        try:
            while True:
                records = self.tracer.take(self.config.batch_size)
                if not records:
                    return
                self._export(records)
        finally:
            with self._idle:
                self._busy = False
                self._idle.notify_all()

    def _export(self, records) -> None:
        from opentelemetry.sdk.trace.export import SpanExportResult
        try:
            spans = [self.converter.convert(r) for r in records]
        except Exception:
            log.exception("cannot convert span records", extra={"spans": len(records)})
            self.tracer.export_failed += len(records)
            return
        ok = True
        for exporter in self.exporters:
            try:
                ok = exporter.export(spans) == SpanExportResult.SUCCESS and ok
            except Exception:
                log.exception("span export failed", extra={"spans": len(spans)})
                ok = False
        if ok:
            self.tracer.exported += len(spans)
        else:
            self.tracer.export_failed += len(spans)

    def force_flush(self, timeout: float = 10.0) -> bool:
        """Export what is queued now; True when the queue was emptied in time."""
        with self._idle:
            self._wake.set()
            return self._idle.wait_for(lambda: not self._busy and self.tracer.queued == 0
                                       and not self._wake.is_set(), timeout)

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop tracing new requests, export the queued spans (bounded by
        OTEL_BSP_EXPORT_TIMEOUT, or ``timeout``) and shut the exporters down."""
        if _core.get_tracer() is self.tracer:
            _core.set_tracer(None)
        self._stopping = True
        self._wake.set()
        if self.thread.is_alive():
            self.thread.join(self.config.export_timeout if timeout is None else timeout)
        for exporter in self.exporters:
            try:
                exporter.shutdown()
            except Exception:
                log.exception("span exporter shutdown failed")


def start(config: TracingConfig, default_service: str = "ige", exporters: list | None = None) -> TracePipeline:
    """Install tracing for this process as ``config`` says (``exporters``: SDK
    exporters to use instead of the ones config names, for embedding programs and
    tests)."""
    if exporters is None:
        exporters = make_exporters(config)
    return TracePipeline(config, exporters, make_resource(default_service)).start()
