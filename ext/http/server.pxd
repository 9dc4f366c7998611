# Declarations of ext/http/server.pyx.
cdef class HttpRequest:
    cdef readonly bytes method
    cdef readonly bytes path
    cdef readonly list headers
    cdef readonly object body
    cdef readonly bint keep_alive
    cdef readonly object transport_info
    cdef bint http10


cdef class HttpResponse:
    cdef readonly int status
    cdef readonly object body
    cdef readonly list headers


cdef class _PendingAnswer:
    cdef object fut
    cdef HttpResponse response
    cdef HttpRequest request
    cdef bint keep_alive
    cdef bint http10
    cdef bint head
    cdef bint counted
    cdef double deadline


cdef class HttpServer:
    cdef readonly object handler
    cdef readonly Py_ssize_t max_body_size
    cdef readonly Py_ssize_t max_header_size
    cdef readonly Py_ssize_t max_headers
    cdef readonly double read_timeout
    cdef readonly double write_timeout
    cdef readonly double idle_timeout
    cdef double timer_period
    cdef set connections
    cdef readonly bint draining
    cdef object drained
    cdef readonly int active_requests

    cdef void connection_gone(self, _HttpServerProtocol proto)


cdef class _HttpServerProtocol:
    cdef HttpServer server
    cdef double answer_deadline
    cdef object loop
    cdef object transport
    cdef object write
    cdef object parser
    cdef object pending
    cdef object peer
    cdef object timer
    cdef bytes url
    cdef list headers
    cdef list chunks
    cdef bytes body_buf                 # large Content-Length body, filled in place
    cdef _BodyReader reader
    cdef Py_ssize_t body_size
    cdef Py_ssize_t head_bytes
    cdef Py_ssize_t head_raw
    cdef Py_ssize_t nheaders
    cdef Py_ssize_t messages_done
    cdef long long content_length
    cdef bint in_message
    cdef bint headers_done
    cdef bint expect_continue
    cdef bint connection_header
    cdef bint continue_owed
    cdef bint closing
    cdef bint closed
    cdef bint lingering
    cdef bint writing_paused
    cdef bint reading_paused
    cdef bint chunked
    cdef bint taking_body               # body_buf is read past the parser
    cdef bint can_switch                # the transport may switch to the body reader
    cdef int error_status
    cdef str error_reason
    cdef double read_deadline
    cdef double write_deadline
    cdef double timer_at

    cdef bint feed(self, object data, Py_ssize_t start, Py_ssize_t end) except -1
    cdef Py_ssize_t take_body(self, const char *p, Py_ssize_t n) except -1
    cdef body_read(self, Py_ssize_t n)
    cdef finish_body(self)
    cdef dispatch(self, HttpRequest req)
    cdef flush(self)
    cdef send(self, HttpResponse resp, bint keep_alive, bint http10, bint head)
    cdef fail(self, int status, str reason)
    cdef stop(self, int status, str reason)
    cdef update_reading(self)
    cdef start_drain(self)
    cdef abort(self)
    cdef arm_timer(self)
