# Declarations of ext/core/headers.pyx.
cdef class HeaderPropagation:
    cdef list patterns
    cdef dict verdicts
    cdef object verdict(self, object raw_name)
    cpdef list select(self, list headers)
