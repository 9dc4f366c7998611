# Declarations of ext/base/buffer.pyx.
cdef struct ByteBuf:
    char *data
    Py_ssize_t len
    Py_ssize_t cap
