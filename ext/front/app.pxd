# Declarations of ext/front/app.pyx.
cdef class GraphApp:
    cdef readonly CompiledPlan plan
    cdef readonly HeaderPropagation propagation
    cdef readonly bint draining
    cdef readonly long long requests_total
    cdef readonly long long requests_failed
    cdef readonly long long requests_cancelled
    cdef readonly long long in_flight
    cdef readonly object access_log
    cdef readonly bint kserve_paths     # only /readyz is special; every other path runs the graph
    cpdef bytes metrics_text(self)
