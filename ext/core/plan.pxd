# Declarations of ext/core/plan.pyx.
from engine._gjson cimport Path, SwitchTable


cpdef enum RouterType:
    ROUTER_SEQUENCE = 0
    ROUTER_SPLITTER = 1
    ROUTER_ENSEMBLE = 2
    ROUTER_SWITCH = 3


cpdef enum StepTarget:
    TARGET_BACKEND = 0
    TARGET_NODE = 1


cdef class StepResult:
    cdef readonly int status
    cdef readonly object body
    cdef readonly list headers          # [(bytes, bytes)] of the answer, or None


cdef class RequestStats:
    cdef readonly long long total
    cdef readonly long long failed      # answered with a 5xx status
    cdef readonly long long cancelled   # the client hung up before the answer
    cdef readonly long long in_flight
    cdef Histogram http_ok              # request durations (core/metrics.pyx): HTTP 200,
    cdef Histogram grpc_ok              #   gRPC OK,
    cdef dict other                     #   (protocol, code label) -> Histogram for the rest
    cdef long long bytes_in[2]          # request and response body bytes per protocol
    cdef long long bytes_out[2]         #   (0 http, 1 grpc)
    cdef void observe(self, int protocol, int status, str code, double seconds,
                      Py_ssize_t bytes_in, Py_ssize_t bytes_out)
    cdef tuple http_ok_bounds(self)


cdef class RunContext
cdef class Response
cdef class PlanStep
cdef class TraceContext                 # core/trace.pyx
cdef class SpanRecord


cdef class FrontEnd:
    cdef object finish(self, RunContext ctx, Response r)


cdef class RunContext:
    cdef readonly list headers          # [(bytes, bytes)] forwarded to every step
    cdef readonly double timeout        # serviceClient seconds; <= 0: none
    cdef readonly bint v2_bridge        # the request entered as an OIP message (execute.pyx)
    cdef PlanStep step                  # failure records and step metrics: the step running
    cdef double started                 #   and when it started (execute.pyx)
    cdef RequestStats stats             # the front end's counters, or None
    cdef FrontEnd front                 # the front end's adapter, or None: execute() answers a Response
    cdef object request                 #   and the request it adapts
    cdef double received                # when the front end took the request (access log)
    cdef readonly TraceContext trace    # the request's trace (core/trace.pyx), or None: tracing off
    cdef SpanRecord span                #   and the span of the step call running


cdef class Backend:
    cdef readonly str description
    cdef object call(self, object body, RunContext ctx)


cdef class PlanStep:
    cdef readonly int index
    cdef readonly str name
    cdef readonly bytes ensemble_key    # JSON-encoded key with the colon: b'"name":'
    cdef readonly int target            # StepTarget
    cdef readonly int node_index        # when target is TARGET_NODE
    cdef readonly Backend backend       # when target is TARGET_BACKEND
    cdef readonly Path condition        # None when the step has none
    cdef readonly str condition_text
    cdef readonly bint use_response     # data: $response (never for a Sequence's first step)
    cdef readonly bint map_predictions
    cdef readonly bint hard
    cdef readonly int weight_end        # Splitter: cumulative weight up to this step
    cdef readonly tuple site            # (node name, step name or index, target or None)
    cdef readonly object policy         # engine.spec.traffic.StepPolicy, or None: no policy
    cdef readonly StepStats stats       # its metrics slots (core/metrics.pyx); None for node steps
    cdef readonly Path data_path        # data: $response.<path> / $request.<path> (Sequence), or None
    cdef readonly str data_text         #   as written, for the 400 a path that selects nothing answers


cdef class PlanNode:
    cdef readonly int index
    cdef readonly str name
    cdef readonly int router_type       # RouterType
    cdef readonly tuple steps           # of PlanStep, in spec order
    cdef readonly tuple ensemble_order  # Ensemble: step positions sorted by key (Go map order)
    cdef readonly bint merge_outputs    # Sequence with outputs: all (answers every step's answer)
    cdef readonly tuple switch_groups   # Switch: ((first step index, SwitchTable), ...) in step
                                        #   order, runs of conditions decided in one walk; or None


cdef class MessageBridge:
    cdef readonly object header_json
    cdef readonly object merge
    cdef readonly object json_body
    cdef readonly object local_call
    cdef readonly object http_answer


cdef class CompiledPlan:
    cdef readonly tuple nodes           # of PlanNode; nodes[0] is root
    cdef readonly double service_timeout
    cdef readonly str name
    cdef readonly MessageBridge bridge   # converters for OIP messages, or None
    cdef readonly tuple buckets         # histogram bounds of its metrics (seconds)
    cdef readonly bint step_metrics     # record per-step metrics (a flag checked once per step)


cdef class Response:
    cdef readonly int status
    cdef readonly object body
    cdef readonly bytes content_type
