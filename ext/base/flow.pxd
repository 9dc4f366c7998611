# Declarations of ext/base/flow.pyx.
cdef enum FlowState:
    FLOW_RUNNING = 0
    FLOW_DONE = 1
    FLOW_FAILED = 2
    FLOW_CANCELLED = 3


cdef class Flow:
    cdef object coro
    cdef object loop
    cdef object awaiting
    cdef object value
    cdef object exc
    cdef list callbacks
    cdef object direct
    cdef int state
    cdef bint must_cancel               # cancelled with nothing to cancel: throw at the next step
    cdef void step(self)
    cdef void cancel_awaited(self)
    cdef void settle(self, int state, object value, object exc)


cpdef object start_flow(object awaitable, object loop)
