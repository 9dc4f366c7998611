# Declarations of ext/backends/v2http.pyx.
cdef class V2HttpBackend(Backend):
    cdef readonly HttpBackend plain     # the same URL for bytes, as KServe sends them
    cdef object encode
    cdef object decode
    cdef readonly bint bridge_bytes


cdef class V2StepCall(ResponseSink):
    cdef object decode
    cdef bint binary_added
