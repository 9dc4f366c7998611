# Declarations of ext/core/plan.pyx.
from engine._gjson cimport Path


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


cdef class RunContext
cdef class Response


cdef class FrontEnd:
    cdef object finish(self, RunContext ctx, Response r)


cdef class RunContext:
    cdef readonly list headers          # [(bytes, bytes)] forwarded to every step
    cdef readonly double timeout        # serviceClient seconds; <= 0: none
    cdef readonly bint v2_bridge        # the request entered as an OIP message (execute.pyx)
    cdef tuple site                     # failure records: PlanStep.site of the step running
    cdef double started                 #   and when it started (execute.pyx, _log_failures)
    cdef RequestStats stats             # the front end's counters, or None
    cdef FrontEnd front                 # the front end's adapter, or None: execute() answers a Response
    cdef object request                 #   and the request it adapts
    cdef double received                # when the front end took the request (access log)


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


cdef class PlanNode:
    cdef readonly int index
    cdef readonly str name
    cdef readonly int router_type       # RouterType
    cdef readonly tuple steps           # of PlanStep, in spec order
    cdef readonly tuple ensemble_order  # Ensemble: step positions sorted by key (Go map order)


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


cdef class Response:
    cdef readonly int status
    cdef readonly object body
    cdef readonly bytes content_type
