# Declarations of ext/http/client.pyx.
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


cdef class _Call


cdef class ResponseSink(StepCall):
    cdef _Call call                     # in the pool until the outcome is in (abort)
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
    cdef _HostPool queued_in            # set while it waits in that pool's queue

    cdef bint is_done(self)
    cdef cancel(self)
    cdef arm_own_timer(self, loop)
    cdef deliver(self, ClientResponse resp, object exc)
    cdef bint settle(self) except -1
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
    cdef _Call c_request_to(self, Endpoint ep, object body, list headers, double timeout,
                            ResponseSink sink)
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
    cdef Py_ssize_t dead_waiters        # cancelled or timed out, still in waiters

    cdef submit(self, _Call call)
    cdef _Call next_waiter(self)
    cdef drop_waiter(self, _Call call)
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
    cdef bint buffered                  # the transport calls get_buffer (uvloop)
    cdef bint in_reader                 # get_buffer hands out the body reader's window
    cdef bytearray head
    cdef int state
    cdef str addresses
    cdef double idle_since
    cdef int status
    cdef list headers
    cdef object body
    cdef list chunks
    cdef _BodyReader reader
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
    cdef body_read(self, Py_ssize_t n)
    cdef bint parse_head(self, const char *s, Py_ssize_t length) except -1
    cdef complete(self, _Call call, bint may_reuse)


cdef class _ForwardOne:
    cdef HttpClient client
    cdef Endpoint ep


cdef class _Relay(ResponseSink):
    cdef object out
