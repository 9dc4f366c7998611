# Declarations of ext/backends/local.pyx.
cdef class LocalBackend(Backend):
    cdef readonly object fn
    cdef bint wants_headers
    cdef MessageBridge bridge           # for message bodies (engine.bridge.local_call)
