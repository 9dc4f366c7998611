# Declarations of ext/oip/codec.pyx.
cdef class Message:
    pass


cdef bint is_oip(object body)
