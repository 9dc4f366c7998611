# HTTP/1.x server protocol on httptools (llhttp): keep-alive, pipelining answered in
# order, Content-Length and chunked bodies, limits, Go-style timeouts, drain.
import asyncio as _asyncio
import collections as _collections
import logging as _logging
import socket as _socket

import orjson as _orjson
from httptools import HttpRequestParser as _HttpRequestParser
from httptools import HttpParserError as _HttpParserError
from httptools import HttpParserUpgrade as _HttpParserUpgrade

cdef object _server_log = _logging.getLogger("engine.http.server")
cdef object _ensure_future = _asyncio.ensure_future
cdef type _Future = _asyncio.Future
cdef type _Task = _asyncio.Task
cdef object _get_running_loop = _asyncio.get_running_loop
cdef object _deque = _collections.deque

cdef bytes _CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
cdef bytes _BODY_500 = b'{"error":"Internal Server Error"}'
cdef list _JSON_HEADERS = [(b"Content-Type", b"application/json")]
# Pipelined requests parsed ahead of their answers: past this many, stop reading.
cdef Py_ssize_t _PIPELINE_HIGH = 32
cdef Py_ssize_t _PIPELINE_LOW = 8
cdef double _LINGER_SECONDS = 1.0
# A read with at least this much after a head end is split there (see data_received).
cdef Py_ssize_t _SPLIT_MIN = 16384


class _LimitExceeded(Exception):
    """Raised from a parser callback to stop llhttp; the status is on the protocol."""


@cython.final
@cython.no_gc      # holds only bytes, lists of bytes pairs and a tuple: no cycles
@cython.freelist(32)
cdef class HttpRequest:
    """One parsed request, handed to the server's handler. The server builds these
    without calling __init__; the constructor is for tests and embedded callers."""

    def __init__(self, bytes method=b"POST", bytes path=b"/", list headers=None,
                 object body=b"", bint keep_alive=True, object transport_info=None):
        self.method = method
        self.path = path
        self.headers = headers if headers is not None else []
        self.body = body
        self.keep_alive = keep_alive
        self.transport_info = transport_info

    def __repr__(self):
        return f"<HttpRequest {self.method!r} {self.path!r}>"


@cython.freelist(32)
@cython.final
cdef class HttpResponse:
    """The handler's answer. ``headers`` are written as given (no Content-Length,
    Date or Connection: the server writes those)."""

    def __init__(self, int status, object body=b"", list headers=None):
        if status < 100 or status > 999:
            raise ValueError(f"invalid HTTP status {status}")
        self.status = status
        self.body = body
        self.headers = headers

    def __repr__(self):
        return f"<HttpResponse {self.status}>"


cdef HttpResponse make_response(int status, object body, list headers):
    """C-level constructor for the executor (no argument parsing)."""
    cdef HttpResponse r = HttpResponse.__new__(HttpResponse)
    r.status = status
    r.body = body
    r.headers = headers
    return r


cdef HttpResponse _error_response(int status, str reason):
    return make_response(status, _orjson.dumps({"error": _bound_message(reason)}), _JSON_HEADERS)


@cython.freelist(32)
@cython.final
cdef class _PendingAnswer:
    """An answer not yet written: its handler is still running, or answers ahead of it
    in the pipeline are."""
    pass


cdef class HttpServer:
    """Serves HTTP/1.x with ``handler(request) -> HttpResponse | awaitable``.

    Use ``loop.create_server(server.protocol_factory, ...)``; ``await drain(grace)``
    stops keep-alive and waits until every connection is closed.
    """

    def __init__(self, handler, *, max_body_size=64 * 1024 * 1024, max_header_size=64 * 1024,
                 max_headers=100, read_timeout=60.0, write_timeout=60.0, idle_timeout=180.0):
        if not callable(handler):
            raise TypeError("handler must be callable")
        self.handler = handler
        self.max_body_size = max_body_size
        self.max_header_size = max_header_size
        self.max_headers = max_headers
        self.read_timeout = read_timeout or 0.0
        self.write_timeout = write_timeout or 0.0
        self.idle_timeout = idle_timeout or 0.0
        if self.idle_timeout == 0.0:
            # Go: IdleTimeout 0 means ReadTimeout also bounds the keep-alive wait
            self.idle_timeout = self.read_timeout
        positive = [t for t in (self.read_timeout, self.write_timeout, self.idle_timeout) if t > 0]
        self.timer_period = min(positive) if positive else 0.0
        self.connections = set()
        self.draining = False
        self.drained = None
        self.active_requests = 0

    @property
    def open_connections(self):
        """Connections currently open."""
        return len(self.connections)

    def protocol_factory(self):
        """A new protocol instance for one accepted connection."""
        return _HttpServerProtocol(self)

    async def drain(self, grace=None):
        """Stop keep-alive: idle connections close now, busy ones after their in-flight
        answers are written. Returns once all are closed; after ``grace`` seconds the
        rest are aborted."""
        cdef _HttpServerProtocol proto
        self.draining = True
        for proto in list(self.connections):
            proto.start_drain()
        if not self.connections:
            return
        loop = _get_running_loop()
        if self.drained is None or self.drained.done():
            self.drained = loop.create_future()
        try:
            await _asyncio.wait_for(_asyncio.shield(self.drained), grace)
        except _asyncio.TimeoutError:
            for proto in list(self.connections):
                proto.abort()
            if self.connections:
                await _asyncio.shield(self.drained)

    cdef void connection_gone(self, _HttpServerProtocol proto):
        self.connections.discard(proto)
        if not self.connections and self.drained is not None and not self.drained.done():
            self.drained.set_result(None)


@cython.final
cdef class _HttpServerProtocol:
    """One server connection (an asyncio protocol by duck typing)."""

    def __cinit__(self, HttpServer server):
        self.server = server
        self.parser = _HttpRequestParser(self)
        self.pending = _deque()
        self.transport = None

    # ---- asyncio protocol interface ----

    def connection_made(self, transport):
        self.loop = _get_running_loop()
        self.transport = transport
        self.write = transport.write
        self.can_switch = transport.get_extra_info("sslcontext") is None
        self.server.connections.add(self)
        peer = transport.get_extra_info("peername")
        self.peer = tuple(peer[:2]) if isinstance(peer, tuple) else None
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (_socket.AF_INET, _socket.AF_INET6):
            try:
                sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            except OSError:
                pass
        if self.server.draining:
            self.closing = True
            transport.close()
            return
        if self.server.read_timeout > 0:
            self.read_deadline = mono_now() + self.server.read_timeout
            self.arm_timer()

    def connection_lost(self, exc):
        cdef _PendingAnswer slot
        self.closed = True
        self.closing = True
        self.reader = None      # it points back here
        self.body_buf = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        while self.pending:
            slot = self.pending.popleft()
            if slot.counted:
                self.server.active_requests -= 1
            if slot.fut is not None and not slot.fut.done():
                slot.fut.remove_done_callback(self.on_handler_done)
                slot.fut.cancel()
        self.server.connection_gone(self)
        self.transport = None
        self.write = None

    def eof_received(self):
        # As Go's server: a peer that stops sending is gone; its handlers are
        # cancelled (connection_lost) rather than left running for a half-closed socket.
        return None

    def pause_writing(self):
        self.writing_paused = True
        self.update_reading()
        if self.server.write_timeout > 0:
            self.write_deadline = mono_now() + self.server.write_timeout
            self.arm_timer()

    def resume_writing(self):
        self.writing_paused = False
        self.write_deadline = 0.0
        self.update_reading()

    def data_received(self, data):
        cdef const char *p
        cdef const char *hit
        cdef Py_ssize_t n, pos = 0, end
        if self.closing:
            return
        if type(data) is not bytes:
            data = bytes(data)
        p = PyBytes_AS_STRING(data)
        n = PyBytes_GET_SIZE(data)
        while pos < n:
            if self.taking_body:
                pos += self.take_body(p + pos, n - pos)
            else:
                end = n
                if n - pos >= _SPLIT_MIN and not (self.in_message and self.headers_done):
                    # Much data after a head may be a large body: give llhttp only the
                    # head so that the body can be taken without it. A head end missed
                    # here (split across reads) only costs that the body's first part
                    # goes through on_body.
                    hit = <const char *>memmem(p + pos, n - pos, b"\r\n\r\n", 4)
                    if hit != NULL and n - (hit + 4 - p) >= _SPLIT_MIN:
                        end = hit + 4 - p
                if not self.feed(data, pos, end):
                    return
                pos = end
                if self.body_buf is not None and self.in_message:
                    # llhttp has consumed exactly up to here: the rest is the body's
                    self.taking_body = True
            if self.closing:
                return
        if self.taking_body and self.can_switch and self.transport is not None:
            if self.reader is None:
                self.reader = new_body_reader(self, True)
            reader_window(self.reader, self.body_buf, self.body_size, PyBytes_GET_SIZE(self.body_buf))
            self.transport.set_protocol(self.reader)

    cdef bint feed(self, object data, Py_ssize_t start, Py_ssize_t end) except -1:
        """Feed data[start:end] to llhttp; False when the connection was failed."""
        cdef bint was_in_head = self.in_message and not self.headers_done
        cdef Py_ssize_t n = end - start, done_before = self.messages_done
        try:
            if start == 0 and end == PyBytes_GET_SIZE(data):
                self.parser.feed_data(data)
            else:
                self.parser.feed_data(memoryview(data)[start:end])
        except _HttpParserUpgrade:
            # the request before the upgrade is answered; nothing after it is HTTP/1
            self.closing = True
            self.flush()
            return False
        except _HttpParserError as exc:
            if self.error_status:
                self.fail(self.error_status, self.error_reason)
            else:
                self.fail(400, _parser_reason(exc))
            return False
        if self.in_message and not self.headers_done:
            # a header llhttp is still accumulating is invisible to the callbacks:
            # bound it by the bytes fed while the head was incomplete
            if was_in_head:
                self.head_raw += n
            elif self.messages_done == done_before:
                self.head_raw = n       # the whole read is this head (bar leading CRLFs)
            else:
                self.head_raw = 0       # unknown share: the next read bounds it
            if self.head_raw > self.server.max_header_size or \
                    self.head_bytes > self.server.max_header_size:
                self.fail(431, "Request Header Fields Too Large")
                return False
        return True

    cdef Py_ssize_t take_body(self, const char *p, Py_ssize_t n) except -1:
        """Copy up to n bytes of a large body past the parser; returns the count."""
        cdef Py_ssize_t take = PyBytes_GET_SIZE(self.body_buf) - self.body_size
        if take > n:
            take = n
        memcpy(PyBytes_AS_STRING(self.body_buf) + self.body_size, p, take)
        self.body_size += take
        if self.body_size == PyBytes_GET_SIZE(self.body_buf):
            self.finish_body()
        return take

    cdef body_read(self, Py_ssize_t n):
        """The body reader got n more bytes straight into body_buf."""
        self.body_size += n
        if self.body_size == PyBytes_GET_SIZE(self.body_buf):
            self.reader.body = None
            if self.transport is not None:
                self.transport.set_protocol(self)
            self.finish_body()

    cdef finish_body(self):
        # llhttp still expects the body it never saw: a new parser takes the next message
        self.taking_body = False
        self.on_message_complete()
        self.parser = _HttpRequestParser(self)

    # ---- httptools callbacks ----

    def on_message_begin(self):
        self.in_message = True
        self.headers_done = False
        self.url = None
        self.headers = []
        self.chunks = None
        self.body_buf = None
        self.chunked = False
        self.body_size = 0
        self.head_bytes = 0
        self.head_raw = 0
        self.nheaders = 0
        self.expect_continue = False
        self.connection_header = False
        self.content_length = -1
        if self.server.read_timeout > 0:
            self.read_deadline = mono_now() + self.server.read_timeout
            self.arm_timer()

    def on_url(self, bytes url):
        self.head_bytes += len(url)
        self.url = url if self.url is None else self.url + url
        if self.head_bytes > self.server.max_header_size:
            self.stop(431, "Request Header Fields Too Large")

    def on_header(self, bytes name, bytes value):
        self.nheaders += 1
        self.head_bytes += len(name) + len(value) + 4
        if self.nheaders > self.server.max_headers or self.head_bytes > self.server.max_header_size:
            self.stop(431, "Request Header Fields Too Large")
        if header_is(name, b"content-length", 14):
            # llhttp has validated the digits
            self.content_length = int(value)
        elif header_is(name, b"connection", 10):
            self.connection_header = True
        elif header_is(name, b"transfer-encoding", 17):
            self.chunked = True
        elif header_is(name, b"expect", 6):
            self.expect_continue = header_is(value.strip(), b"100-continue", 12)
        self.headers.append((name, value))

    def on_headers_complete(self):
        self.headers_done = True
        # Go's WriteTimeout runs from the end of the request head: an answer not
        # written by then is never written (the connection is closed instead)
        self.answer_deadline = mono_now() + self.server.write_timeout \
            if self.server.write_timeout > 0 else 0.0
        if self.content_length > self.server.max_body_size:
            self.stop(413, "Request Entity Too Large")
        if self.content_length >= LARGE_BODY and not self.chunked:
            self.body_buf = PyBytes_FromStringAndSize(NULL, self.content_length)
        if self.expect_continue and self.content_length != 0 and \
                self.parser.get_http_version() == "1.1":
            if self.pending:
                self.continue_owed = True
            else:
                self.write(_CONTINUE)

    def on_body(self, bytes body):
        if self.body_buf is not None:
            # the part of a large body that came in one read with its head; llhttp
            # never passes Content-Length, the check only guards the memcpy
            if self.body_size + PyBytes_GET_SIZE(body) > PyBytes_GET_SIZE(self.body_buf):
                self.stop(400, "body longer than Content-Length")
            memcpy(PyBytes_AS_STRING(self.body_buf) + self.body_size,
                   PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body))
            self.body_size += PyBytes_GET_SIZE(body)
            return
        self.body_size += len(body)
        if self.body_size > self.server.max_body_size:
            self.stop(413, "Request Entity Too Large")
        if self.chunks is None:
            self.chunks = [body]
        else:
            self.chunks.append(body)

    def on_message_complete(self):
        cdef HttpRequest req = HttpRequest.__new__(HttpRequest)
        self.messages_done += 1
        self.in_message = False
        self.continue_owed = False
        self.read_deadline = 0.0
        req.method = self.parser.get_method()
        req.path = self.url if self.url is not None else b""
        req.headers = self.headers
        if self.body_buf is not None:
            req.body = self.body_buf
            self.body_buf = None
        elif self.chunks is None:
            req.body = b""
        elif len(self.chunks) == 1:
            req.body = self.chunks[0]
        else:
            req.body = b"".join(self.chunks)
        req.keep_alive = self.parser.should_keep_alive()
        # HTTP/1.0 stays open only with "Connection: keep-alive", which the answer
        # must then repeat; the version string is only worth building in that case
        req.http10 = req.keep_alive and self.connection_header and \
            self.parser.get_http_version() == "1.0"
        req.transport_info = self.peer
        self.headers = None
        self.chunks = None
        self.dispatch(req)

    # ---- request dispatch and answers ----

    cdef dispatch(self, HttpRequest req):
        cdef HttpServer server = self.server
        cdef _PendingAnswer slot
        # HEAD runs the graph as KServe's router does; only the answer's body is left out
        cdef bint head = req.method == b"HEAD"
        if self.closing:
            return
        if not req.keep_alive:
            # nothing after a request that closes the connection is read
            self.closing = True
        server.active_requests += 1
        try:
            result = server.handler(req)
        except Exception:
            _server_log.error("handler failed on %r %r", req.method, req.path, exc_info=True)
            result = make_response(500, _BODY_500, _JSON_HEADERS)
        if type(result) is HttpResponse and not self.pending:
            server.active_requests -= 1
            self.send(<HttpResponse>result, req.keep_alive, req.http10, head)
            return
        slot = _PendingAnswer.__new__(_PendingAnswer)
        slot.keep_alive = req.keep_alive
        slot.http10 = req.http10
        slot.head = head
        slot.counted = True
        slot.deadline = self.answer_deadline
        slot.request = req
        if type(result) is HttpResponse:
            slot.response = <HttpResponse>result
        elif type(result) is _Future or type(result) is _Task:
            # the common awaitable: skip ensure_future's Python-level checks
            slot.fut = result
            result.add_done_callback(self.on_handler_done)
        else:
            try:
                fut = start_flow(result, self.loop)
            except TypeError:
                _server_log.error("handler returned %r for %r %r, not an HttpResponse or awaitable",
                                  type(result), req.method, req.path)
                slot.response = make_response(500, _BODY_500, _JSON_HEADERS)
            else:
                slot.fut = fut
                if type(fut) is Flow:
                    if not (<Flow>fut).set_direct_callback(self.on_handler_done):
                        # it finished while starting (a Switch miss, a local model)
                        slot.response = _result_of(slot)
                        slot.fut = None
                else:
                    fut.add_done_callback(self.on_handler_done)
        self.pending.append(slot)
        if slot.response is not None and len(self.pending) == 1:
            self.flush()
        else:
            self.update_reading()

    def on_handler_done(self, fut):
        if self.closed:
            return
        self.flush()

    cdef flush(self):
        """Write every answer at the head of the pipeline that is ready, in order."""
        cdef _PendingAnswer slot
        while self.pending and not self.closed:
            slot = <_PendingAnswer>self.pending[0]
            if slot.response is None:
                if not slot.fut.done():
                    break
                slot.response = _result_of(slot)
                slot.fut = None
            if slot.deadline > 0 and mono_now() > slot.deadline:
                _server_log.debug("answer later than the write timeout, closing connection from %r", self.peer)
                self.closing = True
                self.abort()
                return
            self.pending.popleft()
            if slot.counted:
                self.server.active_requests -= 1
            self.send(slot.response, slot.keep_alive, slot.http10, slot.head)
        if not self.closed:
            if self.continue_owed and not self.pending:
                self.continue_owed = False
                self.write(_CONTINUE)
            self.update_reading()

    cdef send(self, HttpResponse resp, bint keep_alive, bint http10, bint head):
        cdef bint close = (not keep_alive) or (self.closing and not self.pending) or \
            (self.server.draining and not self.pending and not self.in_message)
        cdef object msg
        if self.closed:
            return
        try:
            msg = render_response(resp, close, http10 and keep_alive, head)
        except Exception:
            _server_log.error("cannot write response %r", resp, exc_info=True)
            msg = render_response(make_response(500, _BODY_500, _JSON_HEADERS), close,
                                  http10 and keep_alive, head)
        if type(msg) is bytes:
            self.write(msg)
        else:
            self.transport.writelines(msg)
        if close:
            self.closing = True
            if self.lingering and self.transport.can_write_eof():
                # Closing with unread input would send a reset that can destroy the
                # answer in flight: half-close, discard input for a moment, then close.
                self.transport.write_eof()
                self.read_deadline = mono_now() + _LINGER_SECONDS
                self.arm_timer()
                self.update_reading()
            else:
                self.transport.close()
        elif not self.pending and not self.in_message and self.server.idle_timeout > 0:
            self.read_deadline = mono_now() + self.server.idle_timeout
            self.arm_timer()

    cdef fail(self, int status, str reason):
        """Answer a protocol error after the answers ahead of it, then close."""
        cdef _PendingAnswer slot
        if self.closing:
            return
        self.closing = True
        self.lingering = True
        self.in_message = False
        self.continue_owed = False
        slot = _PendingAnswer.__new__(_PendingAnswer)
        slot.response = _error_response(status, reason)
        slot.keep_alive = False
        self.pending.append(slot)
        self.flush()

    cdef stop(self, int status, str reason):
        self.error_status = status
        self.error_reason = reason
        raise _LimitExceeded(reason)

    cdef update_reading(self):
        # A closing connection with answers still to come keeps reading (and drops
        # what it reads): EOF or a reset is how the server learns that the client
        # of a `Connection: close` request has gone, and cancels its handler.
        cdef bint want_pause = (self.writing_paused or len(self.pending) >= _PIPELINE_HIGH or
                                (self.closing and not self.lingering and not self.pending))
        if self.transport is None:
            return
        if want_pause and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        elif self.reading_paused and not want_pause and len(self.pending) <= _PIPELINE_LOW:
            self.reading_paused = False
            self.transport.resume_reading()

    cdef start_drain(self):
        if self.closing or self.closed:
            return
        if not self.pending and not self.in_message:
            self.closing = True
            self.transport.close()

    cdef abort(self):
        if self.transport is not None:
            self.transport.abort()

    # ---- timeouts: one lazily re-armed timer per connection ----

    cdef arm_timer(self):
        cdef double deadline = self.read_deadline
        if self.write_deadline > 0 and (deadline == 0 or self.write_deadline < deadline):
            deadline = self.write_deadline
        if deadline == 0 or self.closed:
            return
        if self.timer is not None:
            if self.timer_at <= deadline:
                return
            self.timer.cancel()
        # Never sleep past one timeout period: a later, shorter deadline (read after idle)
        # then finds the timer already early enough and needs no new handle.
        cdef double now = mono_now()
        if self.server.timer_period > 0 and deadline > now + self.server.timer_period:
            deadline = now + self.server.timer_period
        self.timer_at = deadline
        self.timer = self.loop.call_later(deadline - now, self.on_timer)

    def on_timer(self):
        cdef double now = mono_now()
        self.timer = None
        if self.closed:
            return
        if self.write_deadline > 0 and now >= self.write_deadline:
            _server_log.debug("write timeout, closing connection from %r", self.peer)
            self.abort()
            return
        if self.read_deadline > 0 and now >= self.read_deadline:
            # read and idle timeouts close without an answer, as Go's server does
            self.closing = True
            self.abort()
            return
        self.arm_timer()


cdef HttpResponse _result_of(_PendingAnswer slot):
    fut = slot.fut
    req = slot.request
    if type(fut) is Flow and (<Flow>fut).state == FLOW_DONE and \
            type((<Flow>fut).value) is HttpResponse:
        # the router's usual answer, read without three Python-level method calls
        return <HttpResponse>(<Flow>fut).value
    if fut.cancelled():
        _server_log.error("handler for %r %r was cancelled", req.method, req.path)
        return make_response(500, _BODY_500, _JSON_HEADERS)
    exc = fut.exception()
    if exc is not None:
        _server_log.error("handler failed on %r %r", req.method, req.path, exc_info=exc)
        return make_response(500, _BODY_500, _JSON_HEADERS)
    result = fut.result()
    if type(result) is not HttpResponse:
        _server_log.error("handler returned %r for %r %r, not an HttpResponse",
                          type(result), req.method, req.path)
        return make_response(500, _BODY_500, _JSON_HEADERS)
    return <HttpResponse>result


cdef str _parser_reason(exc):
    text = str(exc)
    return text if text else type(exc).__name__


# Go's server buffers this much of an answer before it sends the head; an answer to
# HEAD carries Content-Length only when the whole body fitted and was not empty
# (net/http's chunkWriter.writeHeader).
cdef Py_ssize_t _GO_HEAD_LENGTH_LIMIT = 2048


cdef object render_response(HttpResponse resp, bint close, bint keep_alive_header, bint head):
    """The response as one bytes object, or [head, body] for a large body. For a HEAD
    request, the head alone."""
    cdef Py_buffer view
    cdef bytes sline = status_line(resp.status)
    cdef bytes date = date_line()
    cdef Py_ssize_t blen, n
    cdef bint small, no_length = resp.status == 204 or resp.status == 304 or resp.status < 200
    cdef char digits[24]
    cdef int nd = 0
    cdef char *p
    cdef bytes out
    PyObject_GetBuffer(resp.body, &view, PyBUF_SIMPLE)
    try:
        blen = view.len
        if head:
            no_length = no_length or blen == 0 or blen > _GO_HEAD_LENGTH_LIMIT
        n = PyBytes_GET_SIZE(sline) + headers_size(resp.headers, NULL) + PyBytes_GET_SIZE(date) + 2
        if not no_length:
            nd = format_uint(digits, <unsigned long long>blen)
            n += 18 + nd
        if close:
            n += 19
        elif keep_alive_header:
            n += 24
        small = blen <= SMALL_BODY or head
        out = PyBytes_FromStringAndSize(NULL, n + (blen if small and not head else 0))
        p = PyBytes_AS_STRING(out)
        p = put_bytes(p, sline)
        p = put_headers(p, resp.headers)
        if not no_length:
            p = put(p, b"Content-Length: ", 16)
            p = put(p, digits, nd)
            p = put(p, b"\r\n", 2)
        p = put_bytes(p, date)
        if close:
            p = put(p, b"Connection: close\r\n", 19)
        elif keep_alive_header:
            p = put(p, b"Connection: keep-alive\r\n", 24)
        p = put(p, b"\r\n", 2)
        if small:
            if not head:
                put(p, <char *>view.buf, blen)
            return out
    finally:
        PyBuffer_Release(&view)
    return [out, resp.body]
