# Declarations of ext/core/metrics.pyx.
cdef enum StepErrorKind:
    ERR_STATUS = 0
    ERR_TIMEOUT = 1
    ERR_TRANSPORT = 2
    ERR_CIRCUIT_OPEN = 3
    ERR_OVERLOADED = 4
    ERR_KINDS = 5


cdef class Histogram:
    cdef Py_ssize_t n                   # finite bucket bounds
    cdef double* bounds                 # n upper bounds, increasing
    cdef long long* counts              # n + 1 per-bucket (not cumulative) counts; the last: +Inf
    cdef readonly double sum
    cdef readonly long long count
    cdef void observe(self, double seconds) noexcept


cdef class StepStats:
    cdef readonly tuple bounds
    cdef Histogram ok                   # code 200, the common case
    cdef dict other                     # code label (str) -> Histogram, made on first use
    cdef long long errors[5]            # per StepErrorKind
    cdef void observe(self, int status, double seconds)
    cdef void fail(self, int kind, double seconds)
