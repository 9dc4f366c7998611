# HTTP/2 server connections on libnghttp2 and gRPC message framing on their streams.
#
# nghttp2 does the protocol (framing, HPACK, stream states, flow control, SETTINGS,
# PING, GOAWAY and their error codes); this file feeds it each read from the uvloop
# transport (nghttp2_session_mem_recv), takes the requests' headers and gRPC
# messages from its callbacks, and writes what nghttp2_session_send produces back to
# the transport in one write per event. It knows nothing of graphs: an H2Handler
# (front/grpc.pyx) decides what each stream means and answers it.
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.buffer cimport PyBUF_SIMPLE, PyObject_GetBuffer, PyBuffer_Release
from cpython.mem cimport PyMem_Free
from libc.string cimport memcmp, memcpy
import asyncio as _asyncio
import logging as _logging
import socket as _socket

cdef object _h2_log = _logging.getLogger("engine.h2")
cdef object _get_running_loop_h2 = _asyncio.get_running_loop

# Flow control: the window a client may send into before we take its data; a stream's
# window is enough for a tensor of some MiB in flight, the connection's for several.
cdef int32_t H2_STREAM_WINDOW = 1 << 20
cdef int32_t H2_CONNECTION_WINDOW = 16 << 20
cdef uint32_t H2_MAX_STREAMS = 1000
cdef uint32_t H2_MAX_HEADER_LIST = 1 << 20
# At most this much is produced for the transport per write; more waits for the next
# round, or for resume_writing when the transport's buffer is full.
cdef Py_ssize_t H2_PUMP_BUDGET = 1 << 20
# Answer pieces at least this long are handed to the transport as views, not copied.
cdef Py_ssize_t H2_ZERO_COPY_MIN = 4096
# The largest DATA frame we send (the peer's SETTINGS_MAX_FRAME_SIZE bounds it too).
cdef Py_ssize_t H2_MAX_DATA_FRAME = 1 << 18
cdef bytes _DRAIN_PING = b"ige-drn\x00"
cdef bytes _STATUS_OK = b"0"

# gRPC status codes used by the transport itself
cdef int GRPC_OK = 0
cdef int GRPC_CANCELLED = 1
cdef int GRPC_UNKNOWN = 2
cdef int GRPC_INVALID_ARGUMENT = 3
cdef int GRPC_DEADLINE_EXCEEDED = 4
cdef int GRPC_NOT_FOUND = 5
cdef int GRPC_FAILED_PRECONDITION = 9
cdef int GRPC_RESOURCE_EXHAUSTED = 8
cdef int GRPC_UNIMPLEMENTED = 12
cdef int GRPC_INTERNAL = 13
cdef int GRPC_UNAVAILABLE = 14

# request headers that are the transport's, never metadata (grpc's own list)
cdef frozenset _RESERVED_HEADERS = frozenset([
    b"content-type", b"te", b"host", b"grpc-timeout", b"grpc-encoding",
    b"grpc-accept-encoding", b"grpc-status", b"grpc-message", b"grpc-previous-rpc-attempts",
    b"grpc-retry-pushback-ms", b"grpc-internal-encoding-request",
    b"grpc-internal-stream-encoding-request", b"accept-encoding", b"content-length"])


cdef inline bint _is(const uint8_t *p, size_t n, const char *lit, size_t m) noexcept:
    return n == m and memcmp(p, lit, m) == 0


cdef double parse_grpc_timeout(const uint8_t *p, size_t n) noexcept:
    """grpc-timeout (at most 8 digits and a unit H M S m u n) in seconds; -1 when it
    is not one."""
    cdef double v = 0.0
    cdef size_t i
    cdef uint8_t c
    if n < 2 or n > 9:
        return -1.0
    for i in range(n - 1):
        if p[i] < 48 or p[i] > 57:
            return -1.0
        v = v * 10.0 + (p[i] - 48)
    c = p[n - 1]
    if c == 72:         # H
        return v * 3600.0
    if c == 77:         # M
        return v * 60.0
    if c == 83:         # S
        return v
    if c == 109:        # m
        return v / 1e3
    if c == 117:        # u
        return v / 1e6
    if c == 110:        # n
        return v / 1e9
    return -1.0


cdef bytes percent_encode(bytes text):
    """grpc-message's encoding: bytes outside printable ASCII, and '%', as %XX."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(text)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(text), extra = 0
    cdef bytes out
    cdef char *q
    cdef const char *hexdigits = "0123456789ABCDEF"
    for i in range(n):
        if p[i] < 0x20 or p[i] > 0x7E or p[i] == 0x25:
            extra += 2
    if extra == 0:
        return text
    out = PyBytes_FromStringAndSize(NULL, n + extra)
    q = PyBytes_AS_STRING(out)
    for i in range(n):
        if p[i] < 0x20 or p[i] > 0x7E or p[i] == 0x25:
            q[0] = 37
            q[1] = hexdigits[p[i] >> 4]
            q[2] = hexdigits[p[i] & 15]
            q += 3
        else:
            q[0] = p[i]
            q += 1
    return out


cdef inline void _nv(nghttp2_nv *nv, const char *name, size_t namelen, const char *value,
                     size_t valuelen, uint8_t flags) noexcept:
    nv.name = <uint8_t *>name
    nv.namelen = namelen
    nv.value = <uint8_t *>value
    nv.valuelen = valuelen
    nv.flags = flags


# ---- streams -------------------------------------------------------------------------

@cython.final
cdef class H2Stream:
    """One request stream: its headers, its gRPC message, and the answer queued for it."""

    def __cinit__(self):
        self.timeout = 0.0
        self.rpc = -1

    cdef int take(self, const unsigned char *p, Py_ssize_t n) except -1:
        """Take n bytes of the request's DATA: the 5-byte gRPC prefix, then the message,
        copied once (into a buffer of the prefix's length when it spans frames)."""
        cdef Py_ssize_t k, limit
        cdef unsigned long length
        self.bytes_in += n
        while n > 0 and not self.discard:
            if self.msg_buf is None and self.prefix_len < 5:
                k = 5 - self.prefix_len
                if k > n:
                    k = n
                memcpy(self.prefix + self.prefix_len, p, k)
                self.prefix_len += k
                p += k
                n -= k
                if self.prefix_len < 5:
                    return 0
                length = (<unsigned long>self.prefix[1] << 24) | (<unsigned long>self.prefix[2] << 16) | \
                    (<unsigned long>self.prefix[3] << 8) | self.prefix[4]
                if self.prefix[0] & 1:
                    self.fail(GRPC_INTERNAL, "Compression bit set but no encoding configured")
                    return 0
                limit = self.conn.handler.max_message_size
                if <Py_ssize_t>length > limit:
                    self.fail(GRPC_RESOURCE_EXHAUSTED,
                              f"SERVER: Received message larger than max ({length} vs. {limit})")
                    return 0
                if self.nmessages:
                    self.fail(GRPC_INTERNAL, "more than one request message for a unary call")
                    return 0
                self.msg_len = length
                self.msg_filled = 0
                if <Py_ssize_t>length <= n:
                    # the usual small message: one copy straight out of the frame
                    self.message = PyBytes_FromStringAndSize(<const char *>p, length)
                    p += length
                    n -= length
                    self.prefix_len = 0
                    self.nmessages += 1
                    continue
                self.msg_buf = PyBytes_FromStringAndSize(NULL, length)
            k = self.msg_len - self.msg_filled
            if k > n:
                k = n
            memcpy(PyBytes_AS_STRING(self.msg_buf) + self.msg_filled, p, k)
            self.msg_filled += k
            p += k
            n -= k
            if self.msg_filled == self.msg_len:
                self.message = self.msg_buf
                self.msg_buf = None
                self.prefix_len = 0
                self.nmessages += 1
        return 0

    cdef int respond(self) except -1:
        """Send the answer's HEADERS (200, application/grpc); messages and trailers
        follow through the data source."""
        cdef nghttp2_nv nva[2]
        cdef nghttp2_data_provider prd
        cdef int rv
        if self.answered or self.closed:
            return 0
        self.answered = True
        _nv(&nva[0], ":status", 7, "200", 3, NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE)
        _nv(&nva[1], "content-type", 12, "application/grpc", 16,
            NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE)
        prd.source.ptr = <void *>self
        prd.read_callback = _read_answer
        rv = nghttp2_submit_response(self.conn.session, self.id, nva, 2, &prd)
        if rv != 0:
            _h2_log.debug("cannot respond on stream %d: %s", self.id, nghttp2_strerror(rv).decode())
        return 0

    cdef Py_ssize_t queue_message(self, object chunks, bint send=True) except -1:
        """Queue one gRPC message, given as its buffers (written as they are: the
        large ones are never copied); its length on the wire (prefix included).
        ``send`` False: written with what comes next (finish), in the same write."""
        cdef Py_ssize_t total = 0, n
        cdef Py_buffer view
        cdef unsigned char prefix[5]
        if self.closed or self.out_done:
            return 0
        if self.out is None:
            self.out = []
        pieces = []
        for c in chunks:
            if type(c) is bytes:
                n = PyBytes_GET_SIZE(<bytes>c)
                if n:
                    pieces.append(c)
            else:
                PyObject_GetBuffer(c, &view, PyBUF_SIMPLE)
                try:
                    n = view.len
                    if 0 < n < H2_ZERO_COPY_MIN:
                        # a small tensor: a copy costs less than a view of it
                        pieces.append(PyBytes_FromStringAndSize(<char *>view.buf, n))
                    elif n:
                        mv = memoryview(c)
                        if mv.ndim != 1 or mv.format != "B":
                            mv = mv.cast("B")
                        pieces.append(mv)
                finally:
                    PyBuffer_Release(&view)
            total += n
        if total > 0xFFFFFFFF:
            raise OverflowError("a gRPC message is at most 4 GiB")
        prefix[0] = 0
        prefix[1] = (total >> 24) & 0xFF
        prefix[2] = (total >> 16) & 0xFF
        prefix[3] = (total >> 8) & 0xFF
        prefix[4] = total & 0xFF
        self.out.append(PyBytes_FromStringAndSize(<char *>prefix, 5))
        self.out.extend(pieces)
        self.out_len += total + 5
        self.respond()
        if send:
            self.wake()
        elif self.deferred:
            self.deferred = False
            nghttp2_session_resume_data(self.conn.session, self.id)
        return total + 5

    cdef int finish(self, int code, str message) except -1:
        """End the answer with trailers: ``code`` and ``message``. Before any message,
        a trailers-only answer (one HEADERS frame that ends the stream)."""
        cdef nghttp2_nv nva[4]
        cdef bytes status, text
        cdef int rv
        if self.closed or self.out_done:
            return 0
        self.out_done = True
        if not self.ended:
            self.discard = True
        self.status_code = code
        text = percent_encode(_bound_message(message or "").encode("utf-8", "replace")) if message else b""
        self.status_message = text
        if self.answered:
            self.wake()
            return 0
        self.answered = True
        status = str(code).encode()
        _nv(&nva[0], ":status", 7, "200", 3, NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE)
        _nv(&nva[1], "content-type", 12, "application/grpc", 16,
            NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE)
        _nv(&nva[2], "grpc-status", 11, PyBytes_AS_STRING(status), PyBytes_GET_SIZE(status),
            NGHTTP2_NV_FLAG_NO_COPY_NAME)
        _nv(&nva[3], "grpc-message", 12, PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text),
            NGHTTP2_NV_FLAG_NO_COPY_NAME)
        rv = nghttp2_submit_response(self.conn.session, self.id, nva, 4 if text else 3, NULL)
        if rv != 0:
            _h2_log.debug("cannot respond on stream %d: %s", self.id, nghttp2_strerror(rv).decode())
        self.conn.pump()
        return 0

    cdef int reset(self, uint32_t error_code) except -1:
        """RST_STREAM: the request is not one this server takes."""
        if self.closed or self.out_done:
            return 0
        self.out_done = True
        self.answered = True
        self.discard = True
        nghttp2_submit_rst_stream(self.conn.session, NGHTTP2_FLAG_NONE, self.id, error_code)
        self.conn.pump()
        return 0

    cdef int http_error(self, int status, bytes text) except -1:
        """A plain HTTP answer (not gRPC), its body ``text``: for requests that are
        not gRPC at all."""
        cdef nghttp2_nv nva[2]
        cdef nghttp2_data_provider prd
        cdef bytes code = str(status).encode()
        if self.closed or self.out_done:
            return 0
        self.answered = True
        self.out_done = True
        if not self.ended:
            self.discard = True
        self.out = [text]
        self.out_len = PyBytes_GET_SIZE(text)
        self.status_code = -1
        _nv(&nva[0], ":status", 7, PyBytes_AS_STRING(code), PyBytes_GET_SIZE(code), NGHTTP2_NV_FLAG_NO_COPY_NAME)
        _nv(&nva[1], "content-type", 12, "text/plain; charset=utf-8", 25,
            NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE)
        prd.source.ptr = <void *>self
        prd.read_callback = _read_answer
        nghttp2_submit_response(self.conn.session, self.id, nva, 2, &prd)
        self.conn.pump()
        return 0

    cdef int fail(self, int code, str message) except -1:
        """Answer a failure found while the request is still arriving; what more it
        sends is dropped."""
        self.discard = True
        self.msg_buf = None
        self.finish(code, message)
        return 0

    cdef void wake(self):
        if self.deferred and not self.closed:
            self.deferred = False
            nghttp2_session_resume_data(self.conn.session, self.id)
        self.conn.pump()

    def send_message(self, chunks):
        """Queue one message (its buffers) on the answer."""
        self.queue_message(chunks)

    def end(self, int code, str message=""):
        """End the answer with grpc-status ``code``."""
        self.finish(code, message)

    @property
    def is_closed(self):
        return self.closed


cdef ssize_t _read_answer(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                          uint32_t *data_flags, nghttp2_data_source *source, void *user_data) noexcept with gil:
    cdef H2Stream s = <H2Stream>source.ptr
    cdef size_t n
    cdef nghttp2_nv nva[2]
    cdef bytes status
    try:
        n = s.out_len
        if n > length:
            n = length
        if n:
            data_flags[0] |= NGHTTP2_DATA_FLAG_NO_COPY
        if n == <size_t>s.out_len and s.out_done and s.status_code < 0:
            data_flags[0] |= NGHTTP2_DATA_FLAG_EOF       # a plain HTTP answer: no trailers
        elif n == <size_t>s.out_len and s.out_done:
            data_flags[0] |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM
            status = _STATUS_OK if s.status_code == 0 else str(s.status_code).encode()
            _nv(&nva[0], "grpc-status", 11, PyBytes_AS_STRING(status), PyBytes_GET_SIZE(status),
                NGHTTP2_NV_FLAG_NO_COPY_NAME)
            _nv(&nva[1], "grpc-message", 12, PyBytes_AS_STRING(s.status_message),
                PyBytes_GET_SIZE(s.status_message), NGHTTP2_NV_FLAG_NO_COPY_NAME)
            nghttp2_submit_trailer(session, stream_id, nva, 2 if s.status_message else 1)
        elif n == 0:
            s.deferred = True
            return NGHTTP2_ERR_DEFERRED
        return n
    except BaseException as e:
        (<H2Connection>user_data).error = e
        return NGHTTP2_ERR_CALLBACK_FAILURE


cdef int _send_data(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd, size_t length,
                    nghttp2_data_source *source, void *user_data) noexcept with gil:
    """A DATA frame of the answer: its 9-byte head, then its share of the queued
    buffers, small pieces copied into the write buffer, large ones as views."""
    cdef H2Connection conn = <H2Connection>user_data
    cdef H2Stream s = <H2Stream>source.ptr
    cdef Py_ssize_t left = length, k, clen
    cdef Py_buffer view
    try:
        if conn.writing_paused or conn.budget <= 0:
            return NGHTTP2_ERR_WOULDBLOCK
        # no padding: no select_padding callback is set
        buf_put(&conn.outbuf, framehd, 9)
        while left > 0:
            c = s.out[0]
            if type(c) is bytes:
                clen = PyBytes_GET_SIZE(<bytes>c)
            else:
                clen = len(c)
            k = clen - s.out_off
            if k > left:
                k = left
            if k >= H2_ZERO_COPY_MIN:
                if conn.outbuf.len:
                    conn.wlist.append(PyBytes_FromStringAndSize(conn.outbuf.data, conn.outbuf.len))
                    conn.outbuf.len = 0
                if s.out_off == 0 and k == clen:
                    conn.wlist.append(c)
                else:
                    conn.wlist.append(memoryview(c)[s.out_off:s.out_off + k])
            elif type(c) is bytes:
                buf_put(&conn.outbuf, PyBytes_AS_STRING(<bytes>c) + s.out_off, k)
            else:
                PyObject_GetBuffer(c, &view, PyBUF_SIMPLE)
                try:
                    buf_put(&conn.outbuf, <char *>view.buf + s.out_off, k)
                finally:
                    PyBuffer_Release(&view)
            left -= k
            s.out_off += k
            s.out_len -= k
            if s.out_off == clen:
                del s.out[0]
                s.out_off = 0
        conn.budget -= length + 9
        return 0
    except BaseException as e:
        conn.error = e
        return NGHTTP2_ERR_CALLBACK_FAILURE


# ---- the application's side ----------------------------------------------------------

cdef class H2Handler:
    """What a server's streams mean (the gRPC front end, front/grpc.pyx); each
    method is called from inside nghttp2's callbacks: submit answers there, never
    write."""

    cdef int on_request(self, H2Stream s) except -1:
        """The request's headers are complete."""
        s.finish(GRPC_UNIMPLEMENTED, "Method not found!")
        return 0

    cdef int on_end(self, H2Stream s) except -1:
        """The client ended its side: the request message (if any) is complete."""
        return 0

    cdef int on_close(self, H2Stream s, uint32_t error_code) except -1:
        """The stream is gone (answered, reset by the client, or its connection lost)."""
        return 0

    def on_drain(self):
        """The server begins draining (no new streams)."""


cdef class H2Server:
    """HTTP/2 (cleartext, or TLS with ALPN h2) serving ``handler``'s streams. Use
    ``loop.create_server(server.protocol_factory, ...)``; ``await drain(grace)``
    sends GOAWAY, lets the streams in flight finish and closes every connection."""

    def __init__(self, H2Handler handler, *, double handshake_timeout=120.0):
        self.handler = handler
        self.handshake_timeout = handshake_timeout
        self.connections = set()
        self.draining = False
        self.drained = None

    @property
    def open_connections(self):
        return len(self.connections)

    def transports(self):
        """The transports of the open connections (tests look at their buffers)."""
        return [(<H2Connection>c).transport for c in self.connections]

    def protocol_factory(self):
        return H2Connection(self)

    async def drain(self, grace=None):
        """No new streams (GOAWAY); in-flight streams finish, for at most ``grace``
        seconds, then the rest are aborted. Returns once every connection is closed."""
        cdef H2Connection conn
        self.draining = True
        self.handler.on_drain()
        for conn in list(self.connections):
            conn.start_drain()
        if not self.connections:
            return
        loop = _get_running_loop_h2()
        if self.drained is None or self.drained.done():
            self.drained = loop.create_future()
        try:
            await _asyncio.wait_for(_asyncio.shield(self.drained), grace)
        except _asyncio.TimeoutError:
            for conn in list(self.connections):
                conn.abort()
            if self.connections:
                await _asyncio.shield(self.drained)

    cdef void connection_gone(self, H2Connection conn):
        self.connections.discard(conn)
        if not self.connections and self.drained is not None and not self.drained.done():
            self.drained.set_result(None)


cdef nghttp2_session_callbacks *_h2_callbacks = NULL
cdef nghttp2_option *_h2_option = NULL


cdef int _h2_setup() except -1:
    global _h2_callbacks, _h2_option
    if _h2_callbacks != NULL:
        return 0
    if nghttp2_session_callbacks_new(&_h2_callbacks) != 0:
        raise MemoryError()
    nghttp2_session_callbacks_set_send_callback(_h2_callbacks, _on_send)
    nghttp2_session_callbacks_set_send_data_callback(_h2_callbacks, _send_data)
    nghttp2_session_callbacks_set_on_frame_recv_callback(_h2_callbacks, _on_frame_recv)
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(_h2_callbacks, _on_data_chunk)
    nghttp2_session_callbacks_set_on_stream_close_callback(_h2_callbacks, _on_stream_close)
    nghttp2_session_callbacks_set_on_begin_headers_callback(_h2_callbacks, _on_begin_headers)
    nghttp2_session_callbacks_set_on_header_callback(_h2_callbacks, _on_header)
    nghttp2_session_callbacks_set_data_source_read_length_callback(_h2_callbacks, _read_length)
    nghttp2_session_callbacks_set_on_frame_send_callback(_h2_callbacks, _on_frame_send)
    nghttp2_session_callbacks_set_on_invalid_header_callback(_h2_callbacks, _on_invalid_header)
    if nghttp2_option_new(&_h2_option) != 0:
        raise MemoryError()
    # the window opens as the application takes the data (H2Stream.take), not as
    # nghttp2 parses it
    nghttp2_option_set_no_auto_window_update(_h2_option, 1)
    return 0


@cython.final
cdef class H2Connection:
    """One server connection (an asyncio protocol by duck typing)."""

    def __cinit__(self, H2Server server):
        cdef nghttp2_settings_entry iv[3]
        _h2_setup()
        self.server = server
        self.handler = server.handler
        self.streams = {}
        self.wlist = []
        if nghttp2_session_server_new2(&self.session, _h2_callbacks, <void *>self, _h2_option) != 0:
            raise MemoryError()
        iv[0].settings_id = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS
        iv[0].value = H2_MAX_STREAMS
        iv[1].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE
        iv[1].value = H2_STREAM_WINDOW
        iv[2].settings_id = NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE
        iv[2].value = H2_MAX_HEADER_LIST
        nghttp2_submit_settings(self.session, NGHTTP2_FLAG_NONE, iv, 3)
        nghttp2_session_set_local_window_size(self.session, NGHTTP2_FLAG_NONE, 0, H2_CONNECTION_WINDOW)

    def __dealloc__(self):
        if self.session != NULL:
            nghttp2_session_del(self.session)
            self.session = NULL
        PyMem_Free(self.outbuf.data)

    # ---- asyncio protocol interface ----

    def connection_made(self, transport):
        self.loop = _get_running_loop_h2()
        self.transport = transport
        self.server.connections.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (_socket.AF_INET, _socket.AF_INET6):
            try:
                sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            except OSError:
                pass
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() != "h2":
            _h2_log.debug("TLS client did not negotiate h2, closing")
            self.abort()
            return
        if self.server.draining:
            self.start_drain()
        if self.server.handshake_timeout > 0:
            # a peer that never says anything does not keep a connection (grpc: its
            # server handshake timeout)
            self.timer = self.loop.call_later(self.server.handshake_timeout, self.on_handshake_timeout)
        self.pump()

    def on_handshake_timeout(self):
        self.timer = None
        if not self.heard and not self.closed:
            _h2_log.debug("no HTTP/2 preface in time, closing")
            self.abort()

    def connection_lost(self, exc):
        cdef H2Stream s
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for s in list(self.streams.values()):
            s.closed = True
            try:
                self.handler.on_close(s, NGHTTP2_CANCEL)
            except Exception:
                _h2_log.error("stream close failed", exc_info=True)
        self.streams.clear()
        self.wlist = None
        self.server.connection_gone(self)
        self.transport = None

    def eof_received(self):
        return None

    def pause_writing(self):
        self.writing_paused = True
        if self.transport is not None:
            # nothing more is read (nor answered) until the peer reads what it has
            self.transport.pause_reading()

    def resume_writing(self):
        self.writing_paused = False
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()
            self.pump()

    def data_received(self, data):
        cdef ssize_t rv
        cdef const uint8_t *p
        cdef Py_buffer view
        if self.closed:
            return
        if not self.heard:
            self.heard = True
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
        self.busy = True
        if type(data) is bytes:
            rv = nghttp2_session_mem_recv(self.session, <const uint8_t *>PyBytes_AS_STRING(data),
                                          PyBytes_GET_SIZE(data))
        else:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
            try:
                rv = nghttp2_session_mem_recv(self.session, <const uint8_t *>view.buf, view.len)
            finally:
                PyBuffer_Release(&view)
        self.busy = False
        if rv < 0:
            if self.error is not None:
                _h2_log.error("HTTP/2 connection failed", exc_info=self.error)
                self.error = None
            else:
                _h2_log.debug("HTTP/2 connection failed: %s", nghttp2_strerror(<int>rv).decode())
            # a bad preface, a flood: nothing more is said to this peer but GOAWAY
            nghttp2_session_terminate_session(self.session, NGHTTP2_PROTOCOL_ERROR)
        self.pump()

    # ---- writing ----

    cdef int pump(self) except -1:
        """Write what nghttp2 has to send, then close the connection when the session
        is over (GOAWAY both ways, a fatal error) and nothing is left to write."""
        cdef int rv
        if self.busy or self.closed:
            return 0
        while True:
            self.busy = True
            self.budget = H2_PUMP_BUDGET
            rv = nghttp2_session_send(self.session)
            self.busy = False
            self.flush_out()
            if rv != 0:
                if self.error is not None:
                    _h2_log.error("HTTP/2 send failed", exc_info=self.error)
                    self.error = None
                self.abort()
                return 0
            if self.closed or self.writing_paused or self.budget > 0:
                break
        if not self.closed and not nghttp2_session_want_read(self.session) and \
                not nghttp2_session_want_write(self.session):
            self.closed = True
            if self.transport is not None:
                self.transport.close()
        return 0

    cdef int flush_out(self) except -1:
        if self.transport is None:
            self.outbuf.len = 0
            return 0
        if self.outbuf.len:
            chunk = PyBytes_FromStringAndSize(self.outbuf.data, self.outbuf.len)
            self.outbuf.len = 0
            if not self.wlist:
                self.transport.write(chunk)
                return 0
            self.wlist.append(chunk)
        if self.wlist:
            chunks = self.wlist
            self.wlist = []
            self.transport.writelines(chunks)
        return 0

    # ---- drain ----

    cdef int start_drain(self) except -1:
        """GOAWAY in two steps, as HTTP/2 advises: a notice (no new streams, please),
        then, once a PING shows the peer has seen it, the last stream id taken."""
        if self.closed or self.drain_ping_sent:
            return 0
        self.drain_ping_sent = True
        nghttp2_submit_shutdown_notice(self.session)
        nghttp2_submit_ping(self.session, NGHTTP2_FLAG_NONE, <const uint8_t *>PyBytes_AS_STRING(_DRAIN_PING))
        self.pump()
        return 0

    cdef int final_goaway(self) except -1:
        if self.goaway_sent or self.closed:
            return 0
        self.goaway_sent = True
        nghttp2_submit_goaway(self.session, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(self.session),
                              NGHTTP2_NO_ERROR, NULL, 0)
        return 0

    cdef int abort(self) except -1:
        if self.transport is not None:
            self.transport.abort()
        return 0


# ---- nghttp2 callbacks ----------------------------------------------------------------

cdef ssize_t _on_send(nghttp2_session *session, const uint8_t *data, size_t length, int flags,
                      void *user_data) noexcept with gil:
    cdef H2Connection conn = <H2Connection>user_data
    if conn.writing_paused or conn.budget <= 0:
        return NGHTTP2_ERR_WOULDBLOCK
    try:
        buf_put(&conn.outbuf, data, length)
    except BaseException as e:
        conn.error = e
        return NGHTTP2_ERR_CALLBACK_FAILURE
    conn.budget -= length
    return length


cdef ssize_t _read_length(nghttp2_session *session, uint8_t frame_type, int32_t stream_id,
                          int32_t session_remote_window_size, int32_t stream_remote_window_size,
                          uint32_t remote_max_frame_size, void *user_data) noexcept nogil:
    # frames as large as the peer allows: fewer heads and writes for a large tensor
    cdef ssize_t n = remote_max_frame_size
    if n > H2_MAX_DATA_FRAME:
        n = H2_MAX_DATA_FRAME
    if n > session_remote_window_size:
        n = session_remote_window_size
    if n > stream_remote_window_size:
        n = stream_remote_window_size
    return n if n > 0 else 1


cdef int _on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame,
                           void *user_data) noexcept with gil:
    cdef H2Connection conn = <H2Connection>user_data
    cdef H2Stream s
    if frame.hd.type != NGHTTP2_HEADERS or frame.headers.cat != NGHTTP2_HCAT_REQUEST:
        return 0
    try:
        s = H2Stream.__new__(H2Stream)
        s.id = frame.hd.stream_id
        s.conn = conn
        s.metadata = []
        conn.streams[s.id] = s
        nghttp2_session_set_stream_user_data(session, s.id, <void *>s)
    except BaseException as e:
        conn.error = e
        return NGHTTP2_ERR_CALLBACK_FAILURE
    return 0


cdef int _on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                    size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                    void *user_data) noexcept with gil:
    cdef H2Connection conn = <H2Connection>user_data
    cdef H2Stream s
    cdef void *p
    cdef double t
    if frame.hd.type != NGHTTP2_HEADERS or frame.headers.cat != NGHTTP2_HCAT_REQUEST:
        return 0        # request trailers: nothing of gRPC's
    p = nghttp2_session_get_stream_user_data(session, frame.hd.stream_id)
    if p == NULL:
        return 0
    s = <H2Stream>p
    try:
        s.head_bytes += namelen + valuelen + 32
        if s.head_bytes > H2_MAX_HEADER_LIST:
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE     # RST_STREAM
        if namelen and name[0] == 58:      # ':'
            if _is(name, namelen, ":path", 5):
                s.path = PyBytes_FromStringAndSize(<const char *>value, valuelen)
            elif _is(name, namelen, ":method", 7):
                s.post = _is(value, valuelen, "POST", 4)
            return 0
        if _is(name, namelen, "content-type", 12):
            s.grpc_type = valuelen >= 16 and memcmp(value, b"application/grpc", 16) == 0 and \
                (valuelen == 16 or value[16] == 43 or value[16] == 59)    # + ;
            return 0
        if _is(name, namelen, "grpc-timeout", 12):
            t = parse_grpc_timeout(value, valuelen)
            if t < 0:
                s.bad_timeout = True
            else:
                s.timeout = t if t > 0 else 1e-9
            return 0
        if _is(name, namelen, "grpc-encoding", 13):
            s.compressed = not _is(value, valuelen, "identity", 8)
            return 0
        key = PyBytes_FromStringAndSize(<const char *>name, namelen)
        if key in _RESERVED_HEADERS:
            return 0
        s.metadata.append((key, PyBytes_FromStringAndSize(<const char *>value, valuelen)))
    except BaseException as e:
        conn.error = e
        return NGHTTP2_ERR_CALLBACK_FAILURE
    return 0


cdef int _on_invalid_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                            size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                            void *user_data) noexcept with gil:
    # A field RFC 9113 calls malformed (CR, LF or NUL in its value, say). grpc core
    # takes such metadata, so the stream goes on and the field is metadata like any
    # other: header propagation drops it, and counts it, before it reaches a backend.
    if namelen == 0 or name[0] == 58:
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE
    return _on_header(session, frame, name, namelen, value, valuelen, flags, user_data)


cdef int _on_frame_send(nghttp2_session *session, const nghttp2_frame *frame,
                        void *user_data) noexcept with gil:
    cdef void *p
    if frame.hd.flags & NGHTTP2_FLAG_END_STREAM and \
            (frame.hd.type == NGHTTP2_HEADERS or frame.hd.type == NGHTTP2_DATA):
        p = nghttp2_session_get_stream_user_data(session, frame.hd.stream_id)
        if p != NULL and not (<H2Stream>p).ended:
            # answered while the client is still sending: it may stop now (RST_STREAM
            # NO_ERROR after the answer, RFC 9113 section 8.1); sent only once the
            # answer is, or nghttp2 would drop the answer for a closing stream
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame.hd.stream_id, NGHTTP2_NO_ERROR)
    return 0


cdef int _on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data,
                        size_t len, void *user_data) noexcept with gil:
    cdef H2Connection conn = <H2Connection>user_data
    cdef void *p = nghttp2_session_get_stream_user_data(session, stream_id)
    cdef H2Stream s
    try:
        if p == NULL or (<H2Stream>p).discard:
            nghttp2_session_consume(session, stream_id, len)
            return 0
        s = <H2Stream>p
        s.take(data, len)
        # taken: a message's buffer holds it (bounded by the message limit), so the
        # window opens again
        nghttp2_session_consume(session, stream_id, len)
    except BaseException as e:
        conn.error = e
        return NGHTTP2_ERR_CALLBACK_FAILURE
    return 0


cdef int _on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                        void *user_data) noexcept with gil:
    cdef H2Connection conn = <H2Connection>user_data
    cdef void *p
    cdef H2Stream s
    cdef uint8_t t = frame.hd.type
    try:
        if t == NGHTTP2_PING:
            if frame.hd.flags & NGHTTP2_FLAG_ACK and conn.drain_ping_sent and \
                    memcmp(frame.ping.opaque_data, PyBytes_AS_STRING(_DRAIN_PING), 8) == 0:
                conn.final_goaway()
            return 0
        if t != NGHTTP2_HEADERS and t != NGHTTP2_DATA:
            return 0
        p = nghttp2_session_get_stream_user_data(session, frame.hd.stream_id)
        if p == NULL:
            return 0
        s = <H2Stream>p
        if t == NGHTTP2_HEADERS and frame.headers.cat == NGHTTP2_HCAT_REQUEST:
            s.received = mono_now()
            s.ended = frame.hd.flags & NGHTTP2_FLAG_END_STREAM
            conn.handler.on_request(s)
            if s.ended and not s.out_done:
                conn.handler.on_end(s)
        elif frame.hd.flags & NGHTTP2_FLAG_END_STREAM and not s.ended:
            s.ended = True
            if not s.discard and not s.out_done:
                conn.handler.on_end(s)
    except BaseException as e:
        conn.error = e
        return NGHTTP2_ERR_CALLBACK_FAILURE
    return 0


cdef int _on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                          void *user_data) noexcept with gil:
    cdef H2Connection conn = <H2Connection>user_data
    cdef void *p = nghttp2_session_get_stream_user_data(session, stream_id)
    cdef H2Stream s
    if p == NULL:
        return 0
    s = <H2Stream>p
    try:
        s.closed = True
        conn.handler.on_close(s, error_code)
    except BaseException as e:
        conn.error = e
        return NGHTTP2_ERR_CALLBACK_FAILURE
    finally:
        conn.streams.pop(stream_id, None)
    return 0
