# Declarations of ext/core/trace.pyx.
from libc.stdint cimport uint64_t, int64_t


cpdef enum SpanKind:
    SPAN_SERVER = 0
    SPAN_CLIENT = 1


cpdef enum TraceProtocol:
    TRACE_HTTP = 0
    TRACE_GRPC = 1


cpdef enum Sampler:
    SAMPLE_ALWAYS_OFF = 0
    SAMPLE_ALWAYS_ON = 1
    SAMPLE_RATIO = 2


cdef class SpanRecord:
    cdef readonly TraceContext trace
    cdef uint64_t span_id
    cdef uint64_t parent_id             # 0: a root span
    cdef readonly int kind              # SpanKind
    cdef readonly int64_t start_ns      # unix nanoseconds (CLOCK_REALTIME)
    cdef readonly int64_t end_ns        # 0 while the span runs
    cdef readonly int status            # the HTTP status answered; 0: none
    cdef readonly str code              # gRPC status name (server spans of gRPC calls), or None
    cdef readonly str error             # why it failed without an answer, or None
    cdef readonly str error_type        # the failure's class (StepErrorKind name or exception type)
    cdef readonly PlanStep step         # client spans: the step called
    cdef readonly CompiledPlan plan     # server spans: the graph run
    cdef readonly bytes method          # server spans of HTTP requests: method and path
    cdef readonly bytes path


cdef class TraceContext:
    cdef uint64_t hi                    # the trace id, high and low 64 bits
    cdef uint64_t lo
    cdef uint64_t span_id               # the server span's id: the parent of every step call
    cdef uint64_t remote_parent         # the caller's span id, 0 when the router started the trace
    cdef bint sampled
    cdef readonly int protocol          # TraceProtocol
    cdef bytes tracestate               # the caller's, forwarded unchanged, or None
    cdef list base_headers              # the request's propagated headers without trace context
    cdef SpanRecord server              # None when not sampled
    cdef bint front_ends                # the front end ends the server span (gRPC: its status)
    cdef str trace_id_hex(self)
    cdef list step_headers(self, list headers, uint64_t span_id)


cdef class Tracer:
    cdef int sampler                    # Sampler for traces the router starts
    cdef uint64_t ratio_bound           # SAMPLE_RATIO: sampled when the id's low 64 bits are below
    cdef bint parent_based              # follow the caller's sampled flag when it sent one
    cdef uint64_t rng                   # span and trace ids (splitmix64, seeded from os.urandom)
    cdef list done                      # finished SpanRecords waiting for the exporter
    cdef readonly Py_ssize_t max_queue
    cdef readonly Py_ssize_t batch_size
    cdef readonly long long dropped     # finished while the queue was full
    cdef readonly long long finished
    cdef public long long exported      # kept by the export thread (engine/tracing.py)
    cdef public long long export_failed
    cdef object wake                    # called once the queue holds a batch
    cdef uint64_t next_id(self) noexcept
    cdef TraceContext begin(self, list headers, int protocol)
    cdef bint root_sampled(self, uint64_t lo) noexcept
    cdef SpanRecord client_span(self, TraceContext trace, PlanStep step)
    cdef void finish(self, SpanRecord span)

