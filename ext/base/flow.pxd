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


cdef class StepCall:
    cdef object loop
    cdef object outcome
    cdef bint finished
    cdef bint failed
    cdef Flow waiter                    # the flow awaiting it, resumed from settle()
    cdef list callbacks                 # (callback, context) of Future-protocol awaiters
    cdef public bint _asyncio_future_blocking
    cdef void settle(self, object outcome, bint failed)
    cdef void abort(self)


cpdef object start_flow(object awaitable, object loop)
