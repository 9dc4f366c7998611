# The one clock of the request path.
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC


cdef inline double mono_now() noexcept nogil:
    """CLOCK_MONOTONIC seconds; timers are armed with call_later(deadline - now)."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9
