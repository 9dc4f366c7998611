# Tracing in the core: W3C Trace Context in and out, and compact span records.
#
# With a Tracer installed (set_tracer; engine/tracing.py installs one from the
# OTEL_* env), a front end begins a TraceContext per request from the request's
# `traceparent`/`tracestate` (or a new trace id), every model call gets its own span
# id and carries `traceparent` with the request's trace id, and the executor fills a
# SpanRecord per sampled server request and step call: ids, wall-clock times, status
# and references to the plan's tables. Nothing else happens on the request path: the
# records queue here and a thread of engine/tracing.py takes them in batches, turns
# them into the OpenTelemetry SDK's spans (names, attributes) and exports them.
# Without a Tracer, the only cost is a None check per request and per step.
from libc.stdint cimport uint64_t, int64_t
from posix.time cimport clock_gettime, timespec, CLOCK_REALTIME
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize

import os as _os

cdef bytes _TRACEPARENT = b"traceparent"
cdef bytes _TRACESTATE = b"tracestate"
cdef Py_ssize_t _TRACESTATE_MAX = 512     # W3C: a vendor may drop a longer tracestate


cdef inline int64_t wall_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef inline void put_hex(char* out, uint64_t v, int digits) noexcept nogil:
    cdef int i
    for i in range(digits - 1, -1, -1):
        out[i] = _HEX[v & 15]      # json/go_json.pyx
        v >>= 4


cdef bint parse_hex64(const char* s, int digits, uint64_t* out) noexcept nogil:
    """``digits`` lower-case hex digits (W3C forbids upper case) as a number."""
    cdef uint64_t v = 0
    cdef int i, d
    cdef unsigned char c
    for i in range(digits):
        c = <unsigned char>s[i]
        if 48 <= c <= 57:
            d = c - 48
        elif 97 <= c <= 102:
            d = c - 87
        else:
            return False
        v = (v << 4) | <uint64_t>d
    out[0] = v
    return True


@cython.freelist(64)
@cython.final
cdef class SpanRecord:
    """One finished (or running) server request or step call, as the core saw it."""

    @property
    def span_id(self):
        return self.span_id

    @property
    def parent_id(self):
        return self.parent_id

    def __repr__(self):
        return (f"SpanRecord(kind={self.kind}, span_id={self.span_id:016x}, "
                f"parent_id={self.parent_id:016x}, status={self.status}, error={self.error!r})")


@cython.freelist(32)
@cython.final
cdef class TraceContext:
    """A request's trace: its id, the server span's id and whether it is sampled."""

    @property
    def trace_id(self):
        """The trace id as a 128-bit integer."""
        return (<object>self.hi << 64) | <object>self.lo

    @property
    def trace_id_hex(self):
        return self.trace_id_hex()

    @property
    def span_id(self):
        return self.span_id

    @property
    def remote_parent(self):
        return self.remote_parent

    @property
    def sampled(self):
        return self.sampled

    @property
    def tracestate(self):
        return self.tracestate

    @property
    def server(self):
        return self.server

    cdef str trace_id_hex(self):
        cdef char buf[32]
        put_hex(buf, self.hi, 16)
        put_hex(buf + 16, self.lo, 16)
        return buf[:32].decode("ascii")

    cdef list step_headers(self, list headers, uint64_t span_id):
        """``headers`` (the request's propagated ones) without any trace context of
        the caller's, plus this trace's `traceparent` for the call with ``span_id``
        and the caller's `tracestate`."""
        cdef char buf[55]
        cdef list out
        if self.base_headers is None:
            self.base_headers = [h for h in headers
                                 if bytes(h[0]).lower() not in (_TRACEPARENT, _TRACESTATE)]
        out = list(self.base_headers)
        buf[0] = b"0"; buf[1] = b"0"; buf[2] = b"-"
        put_hex(buf + 3, self.hi, 16)
        put_hex(buf + 19, self.lo, 16)
        buf[35] = b"-"
        put_hex(buf + 36, span_id, 16)
        buf[52] = b"-"
        buf[53] = b"0"
        buf[54] = b"1" if self.sampled else b"0"
        out.append((_TRACEPARENT, PyBytes_FromStringAndSize(buf, 55)))
        if self.tracestate is not None:
            out.append((_TRACESTATE, self.tracestate))
        return out

    def headers_for(self, list headers, unsigned long long span_id):
        """Python entry to step_headers (tests)."""
        return self.step_headers(headers, span_id)


cdef bint parse_traceparent(bytes value, TraceContext tc) noexcept:
    """W3C traceparent `version-traceid-parentid-flags` into ``tc``; False when
    invalid (the router then starts a new trace, as the spec says)."""
    cdef const char* s = PyBytes_AS_STRING(value)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(value)
    cdef uint64_t version, hi, lo, parent, flags
    # trailing spaces and tabs are optional whitespace of the header value
    while n > 0 and (s[n - 1] == b" " or s[n - 1] == b"\t"):
        n -= 1
    while n > 0 and (s[0] == b" " or s[0] == b"\t"):
        s += 1
        n -= 1
    if n < 55 or s[2] != b"-" or s[35] != b"-" or s[52] != b"-":
        return False
    if not parse_hex64(s, 2, &version) or version == 0xff:
        return False
    if version == 0 and n != 55:
        return False
    if n > 55 and s[55] != b"-":        # a later version may append fields after a dash
        return False
    if (not parse_hex64(s + 3, 16, &hi) or not parse_hex64(s + 19, 16, &lo)
            or not parse_hex64(s + 36, 16, &parent) or not parse_hex64(s + 53, 2, &flags)):
        return False
    if (hi == 0 and lo == 0) or parent == 0:
        return False
    tc.hi = hi
    tc.lo = lo
    tc.remote_parent = parent
    tc.sampled = (flags & 1) != 0
    return True


@cython.final
cdef class Tracer:
    """Samples requests, makes ids and queues finished SpanRecords (at most
    ``max_queue``; beyond, a span is dropped and counted). ``wake()`` is called each
    time the queue reaches ``batch_size`` records."""

    def __init__(self, str sampler="parentbased_always_on", double ratio=1.0, *,
                 Py_ssize_t max_queue=2048, Py_ssize_t batch_size=512, wake=None):
        if sampler.startswith("parentbased_"):
            self.parent_based = True
            sampler = sampler[len("parentbased_"):]
        if sampler == "always_on":
            self.sampler = SAMPLE_ALWAYS_ON
        elif sampler == "always_off":
            self.sampler = SAMPLE_ALWAYS_OFF
        elif sampler == "traceidratio":
            if not 0.0 <= ratio <= 1.0:
                raise ValueError(f"sampler ratio {ratio} is not in [0, 1]")
            self.sampler = SAMPLE_RATIO
            # as the SDK's TraceIdRatioBased: the id's low 64 bits below ratio * 2**64
            self.ratio_bound = <uint64_t>min(round(ratio * 18446744073709551616.0), 18446744073709551615)
        else:
            raise ValueError(f"unknown sampler {sampler!r}")
        if max_queue < 1 or batch_size < 1:
            raise ValueError("max_queue and batch_size must be positive")
        self.max_queue = max_queue
        self.batch_size = min(batch_size, max_queue)
        self.wake = wake
        self.done = []
        cdef bytes seed = _os.urandom(8)
        self.rng = (<uint64_t>seed[0] | <uint64_t>seed[1] << 8 | <uint64_t>seed[2] << 16
                    | <uint64_t>seed[3] << 24 | <uint64_t>seed[4] << 32 | <uint64_t>seed[5] << 40
                    | <uint64_t>seed[6] << 48 | <uint64_t>seed[7] << 56)

    cdef uint64_t next_id(self) noexcept:
        """A non-zero 64-bit id (splitmix64 on the tracer's own state)."""
        cdef uint64_t z
        while True:
            self.rng += 0x9E3779B97F4A7C15ULL
            z = self.rng
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
            z = z ^ (z >> 31)
            if z != 0:
                return z

    cdef TraceContext begin(self, list headers, int protocol):
        """The trace of a request with ``headers`` (every (name, value) it came with)."""
        cdef TraceContext tc = TraceContext.__new__(TraceContext)
        cdef bytes parent = None
        cdef bint found = False, many = False
        cdef bytes key
        cdef list states = None
        cdef SpanRecord server
        tc.protocol = protocol
        for name, value in headers:
            if len(name) == 11 or len(name) == 10:
                key = bytes(name).lower()
                if key == _TRACEPARENT:
                    many = found
                    found = True
                    parent = value if type(value) is bytes else bytes(value)
                elif key == _TRACESTATE:
                    if states is None:
                        states = []
                    states.append(bytes(value))
        # more than one traceparent is invalid (W3C), as is a malformed one
        if found and not many and parse_traceparent(parent, tc):
            if states is not None:
                state = b",".join(states).strip(b" \t")
                if 0 < len(state) <= _TRACESTATE_MAX:
                    tc.tracestate = state
            if not self.parent_based:
                tc.sampled = self.root_sampled(tc.lo)
        else:
            tc.hi = self.next_id()
            tc.lo = self.next_id()
            tc.sampled = self.root_sampled(tc.lo)
        tc.span_id = self.next_id()
        if tc.sampled:
            server = SpanRecord.__new__(SpanRecord)
            server.trace = tc
            server.kind = SPAN_SERVER
            server.span_id = tc.span_id
            server.parent_id = tc.remote_parent
            server.start_ns = wall_ns()
            tc.server = server
        return tc

    cdef bint root_sampled(self, uint64_t lo) noexcept:
        if self.sampler == SAMPLE_ALWAYS_ON:
            return True
        if self.sampler == SAMPLE_RATIO:
            return lo < self.ratio_bound
        return False

    cdef SpanRecord client_span(self, TraceContext trace, PlanStep step):
        """A step call's span, started now (its id is the call's traceparent parent
        id, also when the trace is not sampled and the record is never queued)."""
        cdef SpanRecord span = SpanRecord.__new__(SpanRecord)
        span.trace = trace
        span.kind = SPAN_CLIENT
        span.span_id = self.next_id()
        span.parent_id = trace.span_id
        span.step = step
        if trace.sampled:
            span.start_ns = wall_ns()
        return span

    cdef void finish(self, SpanRecord span):
        """Queue a span that ended (only sampled ones; the first end wins)."""
        if span.end_ns != 0 or not span.trace.sampled:
            return
        span.end_ns = wall_ns()
        if len(self.done) >= self.max_queue:
            self.dropped += 1
            return
        self.done.append(span)
        self.finished += 1
        if len(self.done) == self.batch_size and self.wake is not None:
            self.wake()

    def take(self, Py_ssize_t limit=0):
        """The queued records, oldest first (at most ``limit`` when > 0), removed
        from the queue: the exporter thread's one entry. Atomic under the GIL."""
        cdef list out
        if limit <= 0 or limit >= len(self.done):
            out = self.done
            self.done = []
            return out
        out = self.done[:limit]
        del self.done[:limit]
        return out

    @property
    def queued(self):
        return len(self.done)

    def begin_trace(self, list headers, str protocol="http"):
        """Python entry to begin (tests, tools)."""
        return self.begin(headers, TRACE_GRPC if protocol == "grpc" else TRACE_HTTP)


# The process's tracer, or None: tracing off.
cdef Tracer _tracer = None


def set_tracer(tracer):
    """Install ``tracer`` (a Tracer) for every plan in this process; None: off."""
    global _tracer
    if tracer is not None and not isinstance(tracer, Tracer):
        raise TypeError("set_tracer takes a Tracer or None")
    _tracer = tracer


def get_tracer():
    return _tracer


cdef str trace_metrics():
    """The tracer's span counters for /metrics; nothing when tracing is off."""
    if _tracer is None:
        return ""
    return ("# HELP ige_trace_spans_finished_total Sampled spans finished and queued for export.\n"
            "# TYPE ige_trace_spans_finished_total counter\n"
            f"ige_trace_spans_finished_total {_tracer.finished}\n"
            "# HELP ige_trace_spans_dropped_total Finished spans dropped because the export queue was full.\n"
            "# TYPE ige_trace_spans_dropped_total counter\n"
            f"ige_trace_spans_dropped_total {_tracer.dropped}\n"
            "# HELP ige_trace_spans_exported_total Spans the exporters took.\n"
            "# TYPE ige_trace_spans_exported_total counter\n"
            f"ige_trace_spans_exported_total {_tracer.exported}\n"
            "# HELP ige_trace_spans_export_failed_total Spans whose export failed.\n"
            "# TYPE ige_trace_spans_export_failed_total counter\n"
            f"ige_trace_spans_export_failed_total {_tracer.export_failed}\n")


cdef inline void end_span(SpanRecord span, int status) noexcept:
    """End a step call's span with the answer's status (a status, not a failure)."""
    if span.end_ns == 0 and _tracer is not None:
        span.status = status
        _tracer.finish(span)


cdef void fail_span(SpanRecord span, BaseException e, str kind):
    """End a span with the failure ``e`` (``kind``: its error.type)."""
    if span is None or span.end_ns != 0:
        return
    span.error = str(e) or type(e).__name__
    span.error_type = kind if kind is not None else type(e).__name__
    if _tracer is not None:
        _tracer.finish(span)


cdef TraceContext begin_request(CompiledPlan plan, list headers, int protocol):
    """The trace of a request to ``plan`` a front end took with ``headers``, or None
    when tracing is off."""
    if _tracer is None:
        return None
    cdef TraceContext tc = _tracer.begin(headers, protocol)
    if tc.server is not None:
        tc.server.plan = plan
    return tc


cdef SpanRecord start_client_span(TraceContext trace, PlanStep step):
    """The span of a call of ``step`` within ``trace``, or None (tracer removed)."""
    if _tracer is None:
        return None
    return _tracer.client_span(trace, step)


cdef void end_server_span(TraceContext trace, int status, str code, str error, str error_type):
    """End a request's server span with its answer (``status``; gRPC: ``code``) or
    the failure that left it without one."""
    cdef SpanRecord server = trace.server
    if server is None or server.end_ns != 0 or _tracer is None:
        return
    server.status = status
    server.code = code
    server.error = error
    server.error_type = error_type
    _tracer.finish(server)


def trace_request(RunContext ctx, CompiledPlan plan, list headers, str protocol="http"):
    """Begin the trace of ``ctx``'s request from its ``headers`` (every (name, value)
    bytes pair it came with) when tracing is on: for front ends written in Python
    and the embedded Plan.infer. The server span ends in execute()."""
    ctx.trace = begin_request(plan, headers, TRACE_GRPC if protocol == "grpc" else TRACE_HTTP)
    return ctx.trace


# for engine/tracing.py, which reads records from Python
KIND_SERVER = SPAN_SERVER
KIND_CLIENT = SPAN_CLIENT
PROTOCOL_HTTP = TRACE_HTTP
PROTOCOL_GRPC = TRACE_GRPC
