# Declarations of ext/backends/delegate.pyx.
cdef class DelegateBackend(Backend):
    cdef readonly object impl
