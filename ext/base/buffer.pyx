# A growable byte buffer in C memory, for encoders that build their output in one
# place and hand it out as one bytes object.
from cpython.mem cimport PyMem_Realloc
from libc.string cimport memcpy

cdef int buf_reserve(ByteBuf *b, Py_ssize_t extra) except -1:
    cdef Py_ssize_t need = b.len + extra
    cdef Py_ssize_t cap = b.cap if b.cap else 256
    cdef char *p
    if need <= b.cap:
        return 0
    while cap < need:
        cap *= 2
    p = <char*>PyMem_Realloc(b.data, cap)
    if p == NULL:
        raise MemoryError()
    b.data = p
    b.cap = cap
    return 0


cdef inline int buf_put(ByteBuf *b, const void *s, Py_ssize_t n) except -1:
    if b.len + n > b.cap:
        buf_reserve(b, n)
    memcpy(b.data + b.len, s, n)
    b.len += n
    return 0


cdef inline int buf_byte(ByteBuf *b, char c) except -1:
    if b.len + 1 > b.cap:
        buf_reserve(b, 1)
    b.data[b.len] = c
    b.len += 1
    return 0
