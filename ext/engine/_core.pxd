# Declarations of engine._core (ext/_core.pyx and the files it includes).
# Cython finds this file by the module's dotted name (include_path=["ext"]).
from engine._gjson cimport Path


cpdef enum RouterType:
    ROUTER_SEQUENCE = 0
    ROUTER_SPLITTER = 1
    ROUTER_ENSEMBLE = 2
    ROUTER_SWITCH = 3


cpdef enum StepTarget:
    TARGET_BACKEND = 0
    TARGET_NODE = 1


# ---- plan.pyx -------------------------------------------------------------

cdef class StepResult:
    cdef readonly int status
    cdef readonly object body


cdef class RunContext:
    cdef readonly list headers          # [(bytes, bytes)] forwarded to every step
    cdef readonly double timeout        # serviceClient seconds; <= 0: none
    cdef readonly object request_headers  # as received, for local callables


cdef class Backend:
    cdef readonly str description
    cdef object call(self, object body, RunContext ctx)


cdef class HeaderPropagation:
    cdef list patterns
    cdef dict verdicts
    cdef object verdict(self, object raw_name)
    cpdef list select(self, list headers)


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


cdef class PlanNode:
    cdef readonly int index
    cdef readonly str name
    cdef readonly int router_type       # RouterType
    cdef readonly tuple steps           # of PlanStep, in spec order
    cdef readonly tuple ensemble_order  # Ensemble: step positions sorted by key (Go map order)


cdef class CompiledPlan:
    cdef readonly tuple nodes           # of PlanNode; nodes[0] is root
    cdef readonly double service_timeout
    cdef readonly list propagate_patterns   # compiled re.Pattern objects
    cdef readonly str name


cdef class Response:
    cdef readonly int status
    cdef readonly object body
    cdef readonly bytes content_type


cdef class EnsembleJoin:
    cdef PlanNode node
    cdef list outcomes
    cdef int cursor
    cdef object waiter
    cdef void settle(self, int i, object outcome)
    cdef void advance(self)


# ---- local_backend.pyx ----------------------------------------------------

cdef class LocalBackend(Backend):
    cdef readonly object fn
    cdef bint wants_headers

