# Declarations of ext/backends/policy.pyx.
cdef enum:
    BREAKER_CLOSED = 0
    BREAKER_OPEN = 1
    BREAKER_HALF_OPEN = 2


cdef class EndpointState:
    cdef readonly Backend backend
    cdef readonly str url
    cdef readonly int threshold         # consecutive failures that open the breaker; 0: no breaker
    cdef readonly double open_for       # seconds an open breaker refuses calls
    cdef readonly int state             # BREAKER_*
    cdef readonly int failures          # consecutive failed calls
    cdef readonly double open_until
    cdef readonly long long outstanding
    cdef readonly long long opened_total
    cdef readonly long long rejected_total
    cdef bint available(self, double now)
    cdef void started(self, double now)
    cdef void abandoned(self)
    cdef void finished(self, bint failed, double now)


cdef class ServiceLimiter:
    cdef readonly str name
    cdef readonly int max_in_flight
    cdef readonly int max_queued
    cdef readonly long long in_flight
    cdef readonly long long shed_total
    cdef object waiters                 # deque of futures, in arrival order
    cdef object acquire(self)
    cdef void release(self)
    cdef void abandon(self, object fut)


cdef class PolicyBackend(Backend):
    cdef readonly tuple endpoints       # of EndpointState
    cdef readonly bint least_outstanding
    cdef readonly double timeout        # seconds per attempt; 0: the step's own
    cdef readonly int max_retries
    cdef readonly double initial_delay  # seconds
    cdef readonly double max_delay
    cdef readonly ServiceLimiter limiter
    cdef readonly double hedge_after    # seconds; 0: no hedging
    cdef readonly tuple site            # (node, step)
    cdef readonly long long retries_total
    cdef readonly long long hedges_total
    cdef Py_ssize_t cursor              # round-robin position
    cdef EndpointState pick(self, EndpointState avoid, double now)
    cdef object circuit_open(self)
    cdef RunContext attempt_context(self, RunContext ctx)
    cdef void log_retry(self, EndpointState ep, object outcome, int retry, double delay)
