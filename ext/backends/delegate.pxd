# Declarations of ext/backends/delegate.pyx.
cdef class DelegateBackend(Backend):
    cdef readonly object impl
    cdef readonly Backend plain
    cdef readonly bint bridge_bytes
