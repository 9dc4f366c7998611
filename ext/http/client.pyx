# HTTP/1.1 client: Endpoint parsed once, per-host pool of keep-alive connections,
# a small response scanner, Go net/http error texts.
import errno as _errno
import logging as _logging
import os as _os
import ssl as _ssl
from urllib.parse import urlsplit as _urlsplit

from engine.errors import InternalEngineError as _InternalEngineError
from engine.errors import UpstreamError as _UpstreamError

cdef bytes _CONTENT_TYPE_JSON = b"Content-Type: application/json\r\n"
# a well-formed upstream never sends this much head; stop before memory does
cdef Py_ssize_t _MAX_RESPONSE_HEAD = 1024 * 1024

cdef enum ResponseState:
    RS_HEAD = 0
    RS_LENGTH = 1
    RS_CHUNK_SIZE = 2
    RS_CHUNK_EXT = 3
    RS_CHUNK_DATA = 4
    RS_CHUNK_END = 5
    RS_TRAILER = 6
    RS_UNTIL_EOF = 7
    RS_DONE = 8

cdef enum CallPhase:
    CP_WAITING = 0      # for a pool slot or a connection being dialled
    CP_HEADERS = 1      # request written, awaiting the response head
    CP_BODY = 2         # reading the response body
    CP_DONE = 3


@cython.final
cdef class Endpoint:
    """A backend URL parsed once: host, port, TLS and the request-line prefix."""

    def __init__(self, str url):
        parts = _urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise ValueError(f"unsupported URL scheme in {url!r}: only http:// and https://")
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"invalid port in URL {url!r}") from exc
        host = parts.hostname
        if not host:
            raise ValueError(f"URL {url!r} has no host")
        if parts.username is not None or parts.password is not None:
            raise ValueError(f"URL {url!r}: credentials in URLs are not supported")
        if any(c in url for c in "\r\n\t "):
            raise ValueError(f"URL {url!r} contains whitespace")
        self.url = url
        self.host = host
        self.tls = scheme == "https"
        self.port = port if port is not None else (443 if self.tls else 80)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        self.target = target.encode("ascii")
        host_header = parts.netloc.rpartition("@")[2]
        self.prefix = (b"POST " + self.target + b" HTTP/1.1\r\nHost: " +
                       host_header.encode("idna" if not host_header.isascii() else "ascii") + b"\r\n")
        self.pool_key = (host, self.port, self.tls)
        # Go formats the dial address as host:port, IPv6 in brackets
        self.dial_address = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        self.error_prefix = f'Post "{url}": '

    def __repr__(self):
        return f"<Endpoint {self.url}>"


@cython.final
@cython.no_gc      # holds only bytes and a list of bytes pairs: no cycles
@cython.freelist(32)
cdef class ClientResponse:
    """A backend's answer: status, headers in order, body bytes. The client builds these
    without calling __init__; the constructor is for local backends and tests."""

    def __init__(self, int status, object body=b"", list headers=None):
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else []

    def __repr__(self):
        return f"<ClientResponse {self.status} {len(self.body)} bytes>"


cdef object _client_log = _logging.getLogger("engine.http.client")


cdef class ResponseSink(StepCall):
    """C-level receiver of one call's outcome, for Cython callers that want no future
    and no extra loop iteration (HttpClient.c_request_to). Subclass in Cython and
    override both methods; they run inside the client's protocol callbacks and must
    not raise (an exception is logged and dropped). A StepCall (base/flow.pyx), so
    that a request's Flow can await the call and resume from its delivery: by
    default a failure settles it failed, and cancelling it cancels ``call`` (set by
    its owner to what c_request_to returned) in the pool."""

    cdef on_response(self, ClientResponse resp):
        raise _InternalEngineError(f"{type(self).__name__} does not implement ResponseSink.on_response")

    cdef on_error(self, object exc):
        self.call = None
        self.settle(exc, True)

    cdef void abort(self):
        # never sent if it still waits for a slot; its connection closed, and the
        # slot freed, if it is on one
        cdef _Call call = self.call
        self.call = None
        if call is not None:
            call.cancel()


@cython.freelist(32)
@cython.final
cdef class _Call:
    """One request through the pool, from submission to its outcome (future or sink)."""

    cdef bint is_done(self):
        return self.phase == CP_DONE or (self.fut is not None and self.fut.done())

    def on_timeout(self):
        self.timer = None
        if self.is_done():
            return
        if self.phase == CP_BODY:
            # Go returns this from reading resp.Body, not wrapped in url.Error
            text = "context deadline exceeded (Client.Timeout or context cancellation while reading body)"
        else:
            text = self.ep.error_prefix + \
                "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        conn = self.conn
        self.phase = CP_DONE
        if self.queued_in is not None:
            self.queued_in.drop_waiter(self)
        if conn is not None:
            self.conn = None
            (<_ClientConnection>conn).call = None
            (<_ClientConnection>conn).abort()
        self.deliver(None, _UpstreamError(text, url=self.ep.url))

    cdef cancel(self):
        """The caller no longer wants the answer (its client hung up). Nothing is
        delivered. A call still waiting for a slot is never sent; one being dialled
        leaves the new connection to the next call; one on a connection closes it:
        HTTP/1.1 answers come in order, so that connection could carry nothing else
        before this answer arrived. Its slot is freed when the close is done."""
        cdef _ClientConnection conn
        if self.phase == CP_DONE:
            return
        self.phase = CP_DONE
        self.sink = None
        self.body = None
        self.head = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.queued_in is not None:
            self.queued_in.drop_waiter(self)
        if self.conn is not None:
            conn = <_ClientConnection>self.conn
            self.conn = None
            conn.call = None
            conn.abort()

    cdef arm_own_timer(self, loop):
        """A timer for a call that has no connection yet (waiting or dialling)."""
        if self.deadline > 0 and self.timer is None:
            self.timer = loop.call_later(max(self.deadline - mono_now(), 0.0), self.on_timeout)

    cdef deliver(self, ClientResponse resp, object exc):
        cdef ResponseSink sink = self.sink
        if sink is not None:
            self.sink = None
            try:
                if exc is None:
                    sink.on_response(resp)
                else:
                    sink.on_error(exc)
            except Exception:
                _client_log.error("response sink failed for %s", self.ep.url, exc_info=True)
        elif self.fut is not None and not self.fut.done():
            if exc is None:
                self.fut.set_result(resp)
            else:
                self.fut.set_exception(exc)

    cdef bint settle(self) except -1:
        """Done, off its connection and its timer, before finish or fail delivers;
        False when the call was done already (it has delivered or been cancelled)."""
        if self.phase == CP_DONE:
            return False
        self.phase = CP_DONE
        self.conn = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        return True

    cdef finish(self, ClientResponse resp):
        if self.settle():
            self.deliver(resp, None)

    cdef fail(self, str cause, bint prefixed=True):
        if self.settle():
            self.deliver(None, _UpstreamError(
                self.ep.error_prefix + cause if prefixed else cause, url=self.ep.url))


cdef class HttpClient:
    """A pool of keep-alive connections per (host, port, tls), shared by every backend."""

    def __init__(self, *, max_connections_per_host=64, idle_timeout=90.0, ssl_context=None):
        if max_connections_per_host < 1:
            raise ValueError("max_connections_per_host must be at least 1")
        self.max_per_host = max_connections_per_host
        self.idle_timeout = idle_timeout or 0.0
        self.ssl_context = ssl_context
        self.pools = {}
        self.loop = None
        self.closed = False

    def request(self, Endpoint ep, object body, list headers=None, object timeout=None):
        """POST ``body`` to ``ep``; returns an awaitable future of a ClientResponse.

        ``timeout`` bounds the whole call in seconds (Go's http.Client.Timeout).
        Failures raise engine.errors.UpstreamError with Go net/http's error text.
        Cancelling the future before the call is sent drops it; once sent, the answer
        is still read (keeping the connection) and dropped. A call that closes its
        connection when cancelled is ``HttpBackend.request``'s.
        """
        return self.c_request(ep, body, headers, 0.0 if timeout is None else <double>timeout)

    cdef object c_request(self, Endpoint ep, object body, list headers, double timeout):
        """request() without argument parsing; returns the future."""
        cdef _Call call = _Call.__new__(_Call)
        loop = self.loop
        if loop is None:
            loop = self.loop = _get_running_loop()
        call.fut = loop.create_future()
        self.submit_call(call, ep, body, headers, timeout)
        return call.fut

    cdef _Call c_request_to(self, Endpoint ep, object body, list headers, double timeout,
                            ResponseSink sink):
        """request() whose outcome goes to ``sink`` (no future, no extra loop turn).
        Bad arguments raise here and the sink is never called; otherwise exactly one of
        its methods runs later, from a protocol callback or a timer, unless the
        returned call is cancelled first (``_Call.cancel``: then none runs)."""
        cdef _Call call = _Call.__new__(_Call)
        if self.loop is None:
            self.loop = _get_running_loop()
        call.sink = sink
        self.submit_call(call, ep, body, headers, timeout)
        return call

    cdef submit_call(self, _Call call, Endpoint ep, object body, list headers, double timeout):
        cdef _HostPool pool
        if self.closed:
            raise RuntimeError("HttpClient is closed")
        call.ep = ep
        call.body, call.head = _request_message(ep, body, headers)
        if ep.pool_owner is self:
            pool = <_HostPool>ep.pool
        else:
            pool = self.pools.get(ep.pool_key)
            if pool is None:
                pool = _HostPool(self, ep)
                self.pools[ep.pool_key] = pool
            ep.pool_owner = self
            ep.pool = pool
        if timeout > 0:
            # armed lazily: on a pooled connection by its timer, else by the call's own
            call.deadline = mono_now() + timeout
        pool.submit(call)

    async def close(self):
        """Close every pooled connection; calls still running fail."""
        cdef _HostPool pool
        self.closed = True
        for pool in list(self.pools.values()):
            pool.close()
        self.pools.clear()


cdef tuple _request_message(Endpoint ep, object body, list headers):
    """(body to send separately or None, the head with a small body appended).

    ``body`` is one bytes-like object, or a list of them (an encoded message whose
    tensor buffers are sent as they are, by writelines, never joined here)."""
    cdef Py_buffer view
    cdef Py_ssize_t blen = 0
    cdef bytes head
    if headers is not None:
        headers = _checked_headers(headers)
    if type(body) is list:
        for part in <list>body:
            blen += len(memoryview(part).cast("B"))
        if blen > SMALL_BODY:
            return body, _request_head(ep, headers, blen, NULL)
        body = b"".join(body)
    PyObject_GetBuffer(body, &view, PyBUF_SIMPLE)
    try:
        if view.len <= SMALL_BODY:
            return None, _request_head(ep, headers, view.len, <const char*>view.buf)
        head = _request_head(ep, headers, view.len, NULL)
    finally:
        PyBuffer_Release(&view)
    return body, head


cdef bytes _request_head(Endpoint ep, list headers, Py_ssize_t blen, const char *small_body):
    """The request head for a body of ``blen`` bytes, with that body appended when
    ``small_body`` is given (one write carries the whole message)."""
    cdef bint has_ct = False
    cdef char digits[24]
    cdef int nd = format_uint(digits, <unsigned long long>blen)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(ep.prefix) + headers_size(headers, &has_ct) + 18 + nd + 2
    if not has_ct:
        n += PyBytes_GET_SIZE(_CONTENT_TYPE_JSON)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n + (blen if small_body != NULL else 0))
    cdef char *p = PyBytes_AS_STRING(out)
    p = put_bytes(p, ep.prefix)
    p = put_headers(p, headers)
    if not has_ct:
        p = put_bytes(p, _CONTENT_TYPE_JSON)
    p = put(p, b"Content-Length: ", 16)
    p = put(p, digits, nd)
    p = put(p, b"\r\n\r\n", 4)
    if small_body != NULL:
        put(p, small_body, blen)
    return out


cdef list _checked_headers(list headers):
    """``headers`` as the head will carry them. Whoever calls, the client never writes
    a header line it was not given: a name that is not a token, or a value with a
    control byte (CR, LF, NUL, ...; HTAB and obs-text pass), raises ValueError, as Go's
    Transport refuses such a request. The router never gets here with one
    (HeaderPropagation.select drops and counts them), so this is a scan of a few
    bytes per header, paid only when there are headers."""
    cdef tuple pair
    cdef bytes name, value
    cdef bint framing = False
    for item in headers:
        pair = <tuple?>item
        name = <bytes?>pair[0]
        value = <bytes?>pair[1]
        if not in_table(_TCHAR_OK, name):
            raise ValueError(f"invalid header field name {name!r}")
        if not header_value_ok(value):
            # not the value: it may be a credential
            raise ValueError(f"invalid header field value for {name.decode('latin-1')!r}")
        # Go's Request.Write ignores these in Header: it writes its own
        if header_is(name, b"host", 4) or header_is(name, b"content-length", 14) or \
                header_is(name, b"transfer-encoding", 17) or header_is(name, b"trailer", 7):
            framing = True
    if not framing:
        return headers
    return [h for h in headers if not (
        header_is(h[0], b"host", 4) or header_is(h[0], b"content-length", 14) or
        header_is(h[0], b"transfer-encoding", 17) or header_is(h[0], b"trailer", 7))]


@cython.final
cdef class _HostPool:
    """Keep-alive connections to one (host, port, tls): LIFO idle stack, bounded,
    FIFO waiters."""

    def __cinit__(self, HttpClient client, Endpoint ep):
        self.client = client
        self.host = ep.host
        self.port = ep.port
        self.tls = ep.tls
        self.dial_address = ep.dial_address
        self.idle = []
        self.waiters = _deque()
        self.active = set()
        self.nopen = 0

    cdef submit(self, _Call call):
        cdef _ClientConnection conn
        while self.idle:
            conn = <_ClientConnection>self.idle.pop()
            if not conn.closed:
                conn.start(call, True)
                return
        if self.nopen < self.client.max_per_host:
            self.nopen += 1
            self.dial(call)
        else:
            call.arm_own_timer(self.client.loop)
            call.queued_in = self
            self.waiters.append(call)

    cdef _Call next_waiter(self):
        """The first queued call still wanted, taken off the queue; None if none."""
        cdef _Call call
        while self.waiters:
            call = <_Call>self.waiters.popleft()
            call.queued_in = None
            if not call.is_done():
                return call
            if self.dead_waiters > 0:
                self.dead_waiters -= 1
        return None

    cdef drop_waiter(self, _Call call):
        """A queued call was cancelled or timed out. It stays in the queue, skipped
        when it comes up, until dead calls are half of it; then the queue is rebuilt
        without them, so that many clients giving up at once cost linear time."""
        call.queued_in = None
        self.dead_waiters += 1
        if self.dead_waiters * 2 > len(self.waiters):
            self.waiters = _deque([c for c in self.waiters if not (<_Call>c).is_done()])
            self.dead_waiters = 0

    cdef dial(self, _Call call):
        """Open a connection for call; the pool slot is already counted."""
        cdef _ClientConnection conn = _ClientConnection(self)
        loop = self.client.loop
        call.arm_own_timer(loop)
        if self.tls:
            ctx = self.client.ssl_context
            if ctx is None:
                ctx = self.client.ssl_context = _ssl.create_default_context()
            coro = loop.create_connection(conn.factory, self.host, self.port,
                                          ssl=ctx, server_hostname=self.host)
        else:
            coro = loop.create_connection(conn.factory, self.host, self.port)
        conn.dialing = call
        loop.create_task(coro).add_done_callback(conn.on_dialled)

    cdef release(self, _ClientConnection conn):
        """conn finished a response and may be reused."""
        cdef _Call call
        if self.waiters:
            call = self.next_waiter()
            if call is not None:
                conn.start(call, True)
                return
        if self.client.closed:
            conn.abort()
            return
        conn.idle_since = mono_now()
        self.idle.append(conn)
        if self.timer is None and self.client.idle_timeout > 0:
            self.timer = self.client.loop.call_later(self.client.idle_timeout, self.sweep)

    cdef forget(self, _ClientConnection conn):
        """conn is closed: free its slot for a waiter."""
        cdef _Call call
        if conn.counted:
            conn.counted = False
            self.nopen -= 1
        if conn.in_idle():
            self.idle.remove(conn)
        while self.waiters and self.nopen < self.client.max_per_host:
            call = self.next_waiter()
            if call is not None:
                self.nopen += 1
                self.dial(call)

    def sweep(self):
        cdef _ClientConnection conn
        cdef double now = mono_now()
        cdef double limit = self.client.idle_timeout
        self.timer = None
        # LIFO reuse keeps the longest idle at the bottom of the stack
        while self.idle:
            conn = <_ClientConnection>self.idle[0]
            if now - conn.idle_since < limit:
                break
            self.idle.pop(0)
            conn.abort()
        if self.idle:
            conn = <_ClientConnection>self.idle[0]
            self.timer = self.client.loop.call_later(
                max(conn.idle_since + limit - now, 0.001), self.sweep)

    cdef close(self):
        cdef _ClientConnection conn
        cdef _Call call
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        while self.waiters:
            call = <_Call>self.waiters.popleft()
            call.queued_in = None
            call.fail("net/http: request canceled (client closed)")
        for conn in list(self.idle):
            conn.abort()
        self.idle.clear()
        for conn in list(self.active):
            conn.abort()


@cython.final
cdef class _ClientConnection:
    """One upstream connection; parses responses without per-header callbacks."""

    def __cinit__(self, _HostPool pool):
        if ENGINE_DEBUG:
            debug_live[DEBUG_CLIENT_CONNECTIONS] += 1
        self.pool = pool
        self.counted = True
        self.head = bytearray()
        self.state = RS_DONE

    def __dealloc__(self):
        if ENGINE_DEBUG:
            debug_live[DEBUG_CLIENT_CONNECTIONS] -= 1

    def factory(self):
        return self

    def on_dialled(self, task):
        cdef _Call call = self.dialing
        self.dialing = None
        if task.cancelled():
            exc = _asyncio.CancelledError()
        else:
            exc = task.exception()
        if exc is not None:
            self.closed = True
            self.pool.forget(self)
            call.fail(_dial_error_text(exc, self.pool))
            return
        if self.closed:
            # the peer closed before we could use the connection
            call.fail("EOF")
            return
        if self.pool.client.closed:
            self.abort()
            call.fail("net/http: request canceled (client closed)")
            return
        if call.is_done():
            self.pool.release(self)
        else:
            self.start(call, False)

    cdef bint in_idle(self):
        cdef object c
        for c in self.pool.idle:
            if c is self:
                return True
        return False

    # ---- asyncio protocol interface ----

    def connection_made(self, transport):
        self.transport = transport
        self.write = transport.write
        self.pool.active.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            except OSError:
                pass
        local = transport.get_extra_info("sockname")
        remote = transport.get_extra_info("peername")
        self.addresses = f"{_go_addr(local)}->{_go_addr(remote)}"

    # ---- call deadlines: one lazily re-armed timer per connection ----

    cdef arm_timer(self, double deadline):
        # calls with equal timeouts in a row have later deadlines than the armed
        # timer: it fires, finds the current deadline and re-arms (one handle per period)
        cdef double now
        if self.timer is not None:
            if self.timer_at <= deadline:
                return
            self.timer.cancel()
        now = mono_now()
        self.timer_at = deadline
        self.timer = self.pool.client.loop.call_later(max(deadline - now, 0.0), self.on_timer)

    def on_timer(self):
        cdef _Call call = self.call
        self.timer = None
        if call is None or call.deadline == 0 or self.closed:
            return
        if mono_now() >= call.deadline:
            call.on_timeout()
        else:
            self.arm_timer(call.deadline)

    def connection_lost(self, exc):
        cdef _Call call = self.call
        self.reader = None      # it points back here
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.closed = True
        self.pool.active.discard(self)
        self.transport = None
        self.write = None
        self.call = None
        if call is not None and call.phase != CP_DONE:
            if self.state == RS_UNTIL_EOF and exc is None:
                self.complete(call, False)
                self.pool.forget(self)
                return
            if self.reused and not self.got_byte and not call.retried:
                # a stale keep-alive connection: the peer closed it while idle
                call.retried = True
                call.conn = None
                self.counted = False   # the retry takes over this pool slot
                self.pool.forget(self)
                self.pool.dial(call)
                return
            self.pool.forget(self)
            self.fail_read(call, exc)
            return
        self.pool.forget(self)

    def eof_received(self):
        # an idle connection the peer closed must not be handed out before
        # connection_lost arrives (writes to a closing transport are dropped)
        if self.call is None:
            self.closed = True
        return None

    def pause_writing(self):
        pass

    def resume_writing(self):
        pass

    cdef abort(self):
        if self.transport is not None:
            self.transport.abort()

    # ---- one exchange ----

    cdef start(self, _Call call, bint reused):
        self.call = call
        self.reused = reused
        self.got_byte = False
        self.state = RS_HEAD
        self.response_close = False
        call.conn = self
        call.phase = CP_HEADERS
        if call.deadline > 0:
            if call.timer is not None:
                call.timer.cancel()
                call.timer = None
            self.arm_timer(call.deadline)
        if call.body is None:
            self.write(call.head)
        elif type(call.body) is list:
            self.transport.writelines([call.head, *call.body])
        else:
            self.transport.writelines([call.head, call.body])

    cdef fail_read(self, _Call call, exc):
        if exc is None:
            call.fail("unexpected EOF" if self.got_byte else "EOF", call.phase != CP_BODY)
        elif isinstance(exc, OSError) and exc.errno is not None:
            call.fail(f"read tcp {self.addresses}: read: {_os_error_text(exc)}", call.phase != CP_BODY)
        else:
            call.fail(str(exc) or type(exc).__name__, call.phase != CP_BODY)

    cdef malformed(self, str what):
        cdef _Call call = self.call
        self.call = None
        self.abort()
        if call is not None:
            call.fail(f"net/http: HTTP/1.x transport connection broken: {what}")

    def get_buffer(self, Py_ssize_t sizehint):
        # uvloop asks (asyncio's selector transport only asks BufferedProtocol
        # instances and calls data_received): a large body's rest goes straight into
        # it, anything else into the shared read buffer
        self.buffered = True
        if self.in_reader:
            return self.reader
        return read_buffer

    def buffer_updated(self, Py_ssize_t nbytes):
        if self.in_reader:
            self.reader.offset += nbytes
            self.body_read(nbytes)
            return
        data = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(read_buffer), nbytes)
        try:
            self.scan(data)
        except Exception as exc:
            self.malformed(f"{type(exc).__name__}: {exc}")

    def data_received(self, data):
        try:
            self.scan(data)
        except Exception as exc:
            # e.g. MemoryError for an absurd Content-Length: fail the call, never hang it
            self.malformed(f"{type(exc).__name__}: {exc}")

    cdef scan(self, data):
        cdef const char *p
        cdef Py_ssize_t n, pos = 0, take, old, i, size
        cdef const char *end
        cdef char c
        cdef _Call call = self.call
        if call is None:
            # bytes while idle or after a timeout: the connection is unusable
            self.abort()
            return
        self.got_byte = True
        if type(data) is not bytes:
            data = bytes(data)
        p = PyBytes_AS_STRING(data)
        n = PyBytes_GET_SIZE(data)
        while pos < n:
            if self.state == RS_HEAD:
                old = len(self.head)
                if old == 0:
                    end = <const char *>memmem(p + pos, n - pos, b"\r\n\r\n", 4)
                    if end != NULL:
                        if not self.parse_head(p + pos, end + 2 - (p + pos)):
                            return
                        pos = end + 4 - p
                    else:
                        self.head += data[pos:] if pos else data
                        pos = n
                else:
                    self.head += data[pos:] if pos else data
                    i = old - 3 if old >= 3 else 0
                    end = <const char *>memmem(PyByteArray_AS_STRING(self.head) + i,
                                              len(self.head) - i, b"\r\n\r\n", 4)
                    if end != NULL:
                        size = end - PyByteArray_AS_STRING(self.head)
                        if not self.parse_head(PyByteArray_AS_STRING(self.head), size + 2):
                            return
                        pos += size + 4 - old
                        del self.head[:]
                    else:
                        pos = n
                if len(self.head) > _MAX_RESPONSE_HEAD:
                    self.malformed("response head too large")
                    return
            elif self.state == RS_LENGTH:
                take = min(self.remaining, n - pos)
                if self.body is None and pos == 0 and take == n and self.remaining == n:
                    self.body = data    # the whole body is this read: no copy
                else:
                    if self.body is None:
                        self.body = PyBytes_FromStringAndSize(NULL, self.remaining)
                    memcpy(PyBytes_AS_STRING(self.body) + self.filled, p + pos, take)
                    self.filled += take
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = RS_DONE
                elif self.filled + self.remaining >= LARGE_BODY and not self.pool.tls and \
                        self.transport is not None:
                    # the read is used up: the socket fills the rest of the body directly
                    if self.reader is None:
                        self.reader = new_body_reader(self, False)
                    reader_window(self.reader, <bytes>self.body, self.filled,
                                  self.filled + self.remaining)
                    if self.buffered:
                        self.in_reader = True   # our get_buffer hands out the window
                    else:
                        self.transport.set_protocol(self.reader)
                    return
            elif self.state == RS_UNTIL_EOF:
                self.chunks.append(data[pos:] if pos else data)
                pos = n
            elif self.state == RS_CHUNK_DATA:
                take = min(self.remaining, n - pos)
                self.chunks.append(data if (pos == 0 and take == n) else data[pos:pos + take])
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = RS_CHUNK_END
            else:
                # chunk framing, byte by byte: sizes, extensions, CRLFs, trailers
                c = p[pos]
                pos += 1
                if self.state == RS_CHUNK_SIZE:
                    if c == b'\n':
                        if self.digits == 0:
                            self.malformed("invalid chunk size")
                            return
                        self.remaining = self.chunk_size
                        self.state = RS_CHUNK_DATA if self.chunk_size else RS_TRAILER
                        self.line_len = 0
                    elif c == b'\r':
                        pass
                    elif c == b';':
                        self.state = RS_CHUNK_EXT
                    else:
                        i = hex_digit(c)
                        if i < 0 or self.digits >= 15:
                            self.malformed("invalid chunk size")
                            return
                        self.chunk_size = self.chunk_size * 16 + i
                        self.digits += 1
                elif self.state == RS_CHUNK_EXT:
                    if c == b'\n':
                        self.remaining = self.chunk_size
                        self.state = RS_CHUNK_DATA if self.chunk_size else RS_TRAILER
                        self.line_len = 0
                elif self.state == RS_CHUNK_END:
                    if c == b'\n':
                        self.state = RS_CHUNK_SIZE
                        self.chunk_size = 0
                        self.digits = 0
                    elif c != b'\r':
                        self.malformed("missing CRLF after chunk")
                        return
                elif self.state == RS_TRAILER:
                    if c == b'\n':
                        if self.line_len == 0:
                            self.state = RS_DONE
                        self.line_len = 0
                    elif c != b'\r':
                        self.line_len += 1
            if self.state == RS_DONE:
                if pos < n:
                    # bytes past the end of the answer: never reuse this connection
                    self.response_close = True
                self.complete(call, True)
                return

    cdef body_read(self, Py_ssize_t n):
        """The body reader got n more bytes straight into self.body."""
        cdef _Call call = self.call
        self.filled += n
        self.remaining -= n
        if self.remaining > 0:
            return
        self.reader.body = None
        self.state = RS_DONE
        if self.in_reader:
            self.in_reader = False
        elif self.transport is not None:
            self.transport.set_protocol(self)
        if call is None:
            self.abort()
        else:
            self.complete(call, True)

    cdef bint parse_head(self, const char *s, Py_ssize_t length) except -1:
        """Parse a status line and headers (length covers the last header's CRLF).
        Returns False when the connection was failed."""
        cdef Py_ssize_t i = 0, line_end, colon, vs, ve, ns
        cdef int status, minor
        cdef list headers = []
        cdef bytes name, value
        cdef bint chunked = False, close = False, keep_alive = False
        cdef long long length_value = -1
        cdef const char *end
        cdef _Call call = self.call
        if length < 12 or memcmp(s, b"HTTP/1.", 7) != 0 or s[8] != b' ' or \
                not (b'0' <= s[7] <= b'1'):
            self.malformed(f"malformed HTTP response {_first_line(s, length)!r}")
            return False
        minor = s[7] - 48
        status = 0
        for i in range(9, 12):
            if not (b'0' <= s[i] <= b'9'):
                self.malformed(f"malformed HTTP status code {_first_line(s, length)!r}")
                return False
            status = status * 10 + (s[i] - 48)
        end = <const char *>memchr(s, b'\n', length)
        i = end - s + 1
        while i < length:
            end = <const char *>memchr(s + i, b'\n', length - i)
            line_end = end - s
            ve = line_end
            if ve > i and s[ve - 1] == b'\r':
                ve -= 1
            colon = i
            while colon < ve and s[colon] != b':':
                colon += 1
            if colon == ve or colon == i or s[i] == b' ' or s[i] == b'\t':
                self.malformed(f"malformed MIME header line: {s[i:ve]!r}")
                return False
            vs = colon + 1
            while vs < ve and (s[vs] == b' ' or s[vs] == b'\t'):
                vs += 1
            while ve > vs and (s[ve - 1] == b' ' or s[ve - 1] == b'\t'):
                ve -= 1
            ns = colon - i
            name = PyBytes_FromStringAndSize(s + i, ns)
            value = PyBytes_FromStringAndSize(s + vs, ve - vs)
            headers.append((name, value))
            if ns == 14 and strncasecmp(s + i, b"content-length", 14) == 0:
                length_value = _parse_length(s + vs, ve - vs)
                if length_value < 0:
                    self.malformed(f"invalid Content-Length {value!r}")
                    return False
            elif ns == 17 and strncasecmp(s + i, b"transfer-encoding", 17) == 0:
                chunked = ve - vs >= 7 and strncasecmp(s + ve - 7, b"chunked", 7) == 0
            elif ns == 10 and strncasecmp(s + i, b"connection", 10) == 0:
                if _has_token(value, b"close"):
                    close = True
                elif _has_token(value, b"keep-alive"):
                    keep_alive = True
            i = line_end + 1
        if 100 <= status < 200 and status != 101:
            return True     # interim answer: the real one follows
        self.status = status
        self.headers = headers
        self.response_close = close or (minor == 0 and not keep_alive)
        self.body = None
        self.filled = 0
        self.chunks = None
        call.phase = CP_BODY
        if status == 204 or status == 304 or status == 101:
            self.state = RS_DONE
            self.response_close = self.response_close or status == 101
        elif chunked:
            self.chunks = []
            self.chunk_size = 0
            self.digits = 0
            self.state = RS_CHUNK_SIZE
        elif length_value >= 0:
            self.remaining = length_value
            self.state = RS_LENGTH if length_value else RS_DONE
        else:
            self.chunks = []
            self.response_close = True
            self.state = RS_UNTIL_EOF
        return True

    cdef complete(self, _Call call, bint may_reuse):
        cdef ClientResponse resp = ClientResponse.__new__(ClientResponse)
        resp.status = self.status
        resp.headers = self.headers
        if self.chunks is not None:
            resp.body = b"".join(self.chunks)
        elif self.body is not None:
            resp.body = self.body
        else:
            resp.body = b""
        self.headers = None
        self.body = None
        self.chunks = None
        self.call = None
        self.state = RS_DONE
        # release first: a sink that issues its next call at once then reuses this
        # connection instead of dialling another
        if may_reuse:
            if self.response_close or self.closed:
                self.abort()
            else:
                self.pool.release(self)
        call.finish(resp)


cdef long long _parse_length(const char *s, Py_ssize_t n) noexcept:
    cdef long long v = 0
    cdef Py_ssize_t i
    if n == 0 or n > 18:
        return -1
    for i in range(n):
        if not (b'0' <= s[i] <= b'9'):
            return -1
        v = v * 10 + (s[i] - 48)
    return v


cdef bint _has_token(bytes value, bytes token):
    for part in value.split(b","):
        if part.strip().lower() == token:
            return True
    return False


cdef bytes _first_line(const char *s, Py_ssize_t length):
    cdef const char *end = <const char *>memchr(s, b'\n', length)
    cdef Py_ssize_t n = (end - s) if end != NULL else length
    if n > 0 and s[n - 1] == b'\r':
        n -= 1
    return s[:n]


cdef str _go_addr(addr):
    if not isinstance(addr, tuple):
        return str(addr)
    host = addr[0]
    return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"


cdef str _os_error_text(exc):
    # Go prints the errno's strerror in lower case ("connection refused")
    code = exc.errno
    text = _os.strerror(code) if code is not None else str(exc)
    return text[:1].lower() + text[1:]


cdef str _dial_error_text(exc, _HostPool pool):
    if isinstance(exc, _socket.gaierror):
        if exc.errno in (_socket.EAI_NONAME, getattr(_socket, "EAI_NODATA", -9999)):
            return f"dial tcp: lookup {pool.host}: no such host"
        return f"dial tcp: lookup {pool.host}: {exc.strerror}"
    if isinstance(exc, _ssl.SSLCertVerificationError):
        if exc.verify_code in (18, 19, 20, 21):
            return "tls: failed to verify certificate: x509: certificate signed by unknown authority"
        if exc.verify_code == 62:
            return f"tls: failed to verify certificate: x509: certificate is valid for other names, not {pool.host}"
        return f"tls: failed to verify certificate: x509: {exc.verify_message}"
    if isinstance(exc, _ssl.SSLError):
        return f"tls: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"dial tcp {pool.dial_address}: connect: {_os_error_text(exc)}"
    if isinstance(exc, OSError):
        # asyncio joins several address attempts into one message without errno
        text = str(exc).lower()
        for err in (_errno.ECONNREFUSED, _errno.EHOSTUNREACH, _errno.ENETUNREACH, _errno.ETIMEDOUT):
            t = _os.strerror(err).lower()
            if t in text:
                return f"dial tcp {pool.dial_address}: connect: {t}"
    return f"dial tcp {pool.dial_address}: {exc}"


def _scan_response(chunks, int repeat=1):
    """Feed ``chunks`` (one upstream answer) into a detached client connection
    ``repeat`` times; returns (ClientResponse, reusable). For tests feeding fragments
    and for bench/http_micro.py, which times this scanner against httptools."""
    cdef HttpClient client = HttpClient(idle_timeout=0)
    cdef Endpoint ep = Endpoint("http://scanner.invalid/")
    cdef _HostPool pool = _HostPool(client, ep)
    cdef _ClientConnection conn = _ClientConnection(pool)
    cdef _Call call
    cdef int i
    loop = _asyncio.new_event_loop()
    try:
        for i in range(repeat):
            call = _Call.__new__(_Call)
            call.ep = ep
            call.fut = loop.create_future()
            call.phase = CP_HEADERS
            conn.call = call
            conn.state = RS_HEAD
            conn.response_close = False
            conn.got_byte = False
            for chunk in chunks:
                if conn.call is None:
                    break
                conn.data_received(chunk)
            if conn.call is not None and conn.state == RS_UNTIL_EOF:
                conn.connection_lost(None)
            if not call.is_done():
                raise AssertionError("incomplete response")
            result = call.fut.result()
            del pool.idle[:]
    finally:
        loop.close()
    return result, not conn.response_close


def _request_bytes(Endpoint ep, object body, list headers=None):
    """The bytes the client writes for one request (head, then the body when it is
    sent separately), without a connection. For tests of what reaches a backend."""
    sent, head = _request_message(ep, body, headers)
    if sent is None:
        return head
    if type(sent) is list:
        return head + b"".join([bytes(memoryview(part).cast("B")) for part in sent])
    return head + bytes(sent)


@cython.final
cdef class _ForwardOne:
    """Bench glue written in Cython: every request's body is POSTed to one endpoint and
    answered with the upstream's status and body (500 with the error text on failure),
    through c_request_to (no client future). bench/http_micro.py uses it to measure the
    HTTP layer without Python glue; tests use it to exercise ResponseSink."""

    def __init__(self, HttpClient client, Endpoint ep):
        self.client = client
        self.ep = ep

    def __call__(self, HttpRequest req):
        cdef _Relay relay = _Relay.__new__(_Relay)
        if self.client.loop is None:
            self.client.loop = _get_running_loop()
        relay.out = self.client.loop.create_future()
        self.client.c_request_to(self.ep, req.body, None, 0.0, relay)
        return relay.out


@cython.final
cdef class _Relay(ResponseSink):
    cdef on_response(self, ClientResponse resp):
        self.out.set_result(make_response(resp.status, resp.body, _JSON_HEADERS))

    cdef on_error(self, object exc):
        self.out.set_result(_error_response(500, str(exc)))
