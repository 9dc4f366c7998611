# Declarations of engine._core's extension types (Cython finds this file by the module's
# dotted name with include_path=["ext"]); every cdef attribute is declared here.

cdef class _HttpServerProtocol
cdef class _ClientConnection


# ---- http_server.pyx ----

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
    cdef bint counted


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
    cdef int error_status
    cdef str error_reason
    cdef double read_deadline
    cdef double write_deadline
    cdef double timer_at

    cdef dispatch(self, HttpRequest req)
    cdef flush(self)
    cdef send(self, HttpResponse resp, bint keep_alive, bint http10)
    cdef fail(self, int status, str reason)
    cdef stop(self, int status, str reason)
    cdef update_reading(self)
    cdef start_drain(self)
    cdef abort(self)
    cdef arm_timer(self)


# ---- http_client.pyx ----

cdef class Endpoint:
    cdef readonly str url
    cdef readonly str host
    cdef readonly int port
    cdef readonly bint tls
    cdef readonly bytes target
    cdef bytes prefix
    cdef tuple pool_key
    cdef str dial_address
    cdef str error_prefix
    cdef object pool_owner
    cdef object pool


cdef class ClientResponse:
    cdef readonly int status
    cdef readonly list headers
    cdef readonly object body


cdef class ResponseSink:
    cdef on_response(self, ClientResponse resp)
    cdef on_error(self, object exc)


cdef class _Call:
    cdef Endpoint ep
    cdef object fut
    cdef ResponseSink sink
    cdef object timer
    cdef object conn
    cdef object body
    cdef bytes head
    cdef int phase
    cdef bint retried
    cdef double deadline

    cdef bint is_done(self)
    cdef arm_own_timer(self, loop)
    cdef deliver(self, ClientResponse resp, object exc)
    cdef finish(self, ClientResponse resp)
    cdef fail(self, str cause, bint prefixed=*)


cdef class HttpClient:
    cdef readonly Py_ssize_t max_per_host
    cdef readonly double idle_timeout
    cdef object ssl_context
    cdef object loop
    cdef dict pools
    cdef readonly bint closed

    cdef object c_request(self, Endpoint ep, object body, list headers, double timeout)
    cdef int c_request_to(self, Endpoint ep, object body, list headers, double timeout,
                          ResponseSink sink) except -1
    cdef submit_call(self, _Call call, Endpoint ep, object body, list headers, double timeout)


cdef class _HostPool:
    cdef HttpClient client
    cdef str host
    cdef str dial_address
    cdef int port
    cdef bint tls
    cdef list idle
    cdef object waiters
    cdef object timer
    cdef set active
    cdef Py_ssize_t nopen

    cdef submit(self, _Call call)
    cdef dial(self, _Call call)
    cdef release(self, _ClientConnection conn)
    cdef forget(self, _ClientConnection conn)
    cdef close(self)


cdef class _ClientConnection:
    cdef _HostPool pool
    cdef object transport
    cdef object write
    cdef _Call dialing
    cdef _Call call
    cdef bint counted
    cdef bint closed
    cdef bint reused
    cdef bint got_byte
    cdef bint response_close
    cdef bytearray head
    cdef int state
    cdef str addresses
    cdef double idle_since
    cdef int status
    cdef list headers
    cdef object body
    cdef list chunks
    cdef Py_ssize_t filled
    cdef Py_ssize_t remaining
    cdef long long chunk_size
    cdef int digits
    cdef Py_ssize_t line_len
    cdef object timer
    cdef double timer_at

    cdef arm_timer(self, double deadline)
    cdef bint in_idle(self)
    cdef abort(self)
    cdef start(self, _Call call, bint reused)
    cdef fail_read(self, _Call call, exc)
    cdef malformed(self, str what)
    cdef scan(self, data)
    cdef bint parse_head(self, const char *s, Py_ssize_t length) except -1
    cdef complete(self, _Call call, bint may_reuse)


cdef class _ForwardOne:
    cdef HttpClient client
    cdef Endpoint ep


cdef class _Relay(ResponseSink):
    cdef object out
