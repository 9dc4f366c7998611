# Declarations of ext/http/common.pyx.
# forward declarations: the server's and the client's connections
cdef class _HttpServerProtocol
cdef class _ClientConnection
cdef class _HostPool


cdef class _BodyReader:
    cdef object owner                   # _HttpServerProtocol or _ClientConnection
    cdef bint for_server
    cdef bytes body                     # the body being filled
    cdef Py_ssize_t offset              # bytes filled so far
    cdef Py_ssize_t end                 # len(body)
