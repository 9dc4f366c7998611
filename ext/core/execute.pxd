# Declarations of ext/core/execute.pyx.
cdef class EnsembleJoin:
    cdef CompiledPlan plan
    cdef PlanNode node
    cdef list outcomes
    cdef int cursor
    cdef object waiter
    cdef double started                 # failure records: when the steps were started,
    cdef list contexts                  #   and the own RunContext of each node step
    cdef TraceContext trace             # the request's trace, or None
    cdef list spans                     # traced: the SpanRecord of each model call step
    cdef void settle(self, int i, object outcome)
    cdef void end_spans(self, int i, object outcome)
    cdef void advance(self)
