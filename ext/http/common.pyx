# Shared pieces of the HTTP server and client: Date header, status lines,
# header rendering into one preallocated bytes object.
from libc.string cimport memcpy, memchr, memcmp
from libc.stdint cimport uint64_t
from cpython.bytearray cimport PyByteArray_AS_STRING
cimport cython
from libc.time cimport time_t, time as c_time
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.buffer cimport (PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_FORMAT,
                             PyBUF_ND, PyBUF_STRIDES)

import asyncio.protocols as _asyncio_protocols
import email.utils as _email_utils
import http as _http

# Every error text sent to a client (server, executor, in-process models) is cut to
# engine.errors.MESSAGE_LIMIT bytes by this.
from engine.errors import bound_message as _bound_message

cdef extern from "<strings.h>" nogil:
    int strncasecmp(const char *s1, const char *s2, size_t n)

cdef extern from "<string.h>" nogil:
    void *memmem(const void *haystack, size_t haystacklen, const void *needle, size_t needlelen)

# Bodies up to this size are copied behind the head so that one write carries the
# whole message; larger ones go out as a second buffer, never concatenated.
cdef Py_ssize_t SMALL_BODY = 16384


cdef time_t _date_second = 0
cdef bytes _date_line = b""


cdef bytes date_line():
    """``Date: <IMF-fixdate>\\r\\n``, rebuilt at most once per second."""
    global _date_second, _date_line
    cdef time_t now = c_time(NULL)
    if now != _date_second:
        _date_second = now
        _date_line = b"Date: " + _email_utils.formatdate(<double>now, usegmt=True).encode("ascii") + b"\r\n"
    return _date_line


# Go's net/http StatusText for the codes it knows; others fall back to Python's phrase.
cdef dict _GO_REASONS = {
    100: "Continue", 101: "Switching Protocols", 200: "OK", 201: "Created",
    202: "Accepted", 204: "No Content", 206: "Partial Content", 301: "Moved Permanently",
    302: "Found", 304: "Not Modified", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
    409: "Conflict", 411: "Length Required", 413: "Request Entity Too Large",
    414: "Request URI Too Long", 415: "Unsupported Media Type", 417: "Expectation Failed",
    422: "Unprocessable Entity", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}


cdef list _build_status_lines():
    cdef list lines = []
    cdef int code
    for code in range(1000):
        reason = _GO_REASONS.get(code)
        if reason is None:
            try:
                reason = _http.HTTPStatus(code).phrase
            except ValueError:
                reason = f"status code {code}"
        lines.append(f"HTTP/1.1 {code:03d} {reason}\r\n".encode("latin-1"))
    return lines


cdef list _STATUS_LINES = _build_status_lines()


cdef inline bytes status_line(int status):
    if 0 <= status < 1000:
        return <bytes>_STATUS_LINES[status]
    raise ValueError(f"invalid HTTP status {status}")


cdef inline Py_ssize_t headers_size(list headers, bint *has_content_type) except -1:
    """Bytes that ``name: value\\r\\n`` lines take; type-checks every pair."""
    cdef Py_ssize_t n = 0
    cdef bytes name, value
    cdef tuple pair
    if headers is None:
        return 0
    for item in headers:
        pair = <tuple?>item
        name = <bytes?>pair[0]
        value = <bytes?>pair[1]
        n += PyBytes_GET_SIZE(name) + PyBytes_GET_SIZE(value) + 4
        if has_content_type != NULL and PyBytes_GET_SIZE(name) == 12 and \
                strncasecmp(PyBytes_AS_STRING(name), b"content-type", 12) == 0:
            has_content_type[0] = True
    return n


cdef inline char *put(char *p, const char *s, Py_ssize_t n) noexcept nogil:
    memcpy(p, s, n)
    return p + n


cdef inline char *put_bytes(char *p, bytes b) noexcept:
    return put(p, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))


cdef inline char *put_headers(char *p, list headers) noexcept:
    cdef tuple pair
    if headers is None:
        return p
    for item in headers:
        pair = <tuple>item
        p = put_bytes(p, <bytes>pair[0])
        p = put(p, b": ", 2)
        p = put_bytes(p, <bytes>pair[1])
        p = put(p, b"\r\n", 2)
    return p


cdef inline int format_uint(char *out, unsigned long long v) noexcept nogil:
    """Decimal digits of v into out (at least 20 bytes); returns the count."""
    cdef char tmp[24]
    cdef int n = 0, i
    while True:
        tmp[n] = <char>(48 + v % 10)
        n += 1
        v //= 10
        if v == 0:
            break
    for i in range(n):
        out[i] = tmp[n - 1 - i]
    return n


cdef inline bint header_is(bytes name, const char *lower, Py_ssize_t n) noexcept:
    return PyBytes_GET_SIZE(name) == n and strncasecmp(PyBytes_AS_STRING(name), lower, n) == 0


# Content-Length bodies from this size on are read into one preallocated bytes object
# of exactly that size, the socket reading straight into it (_BodyReader); smaller ones
# keep the per-read path, where one more copy costs less than switching protocols.
cdef Py_ssize_t LARGE_BODY = 65536


# What uvloop reads into when a protocol's get_buffer has no body to fill: shared by
# every connection, as uvloop's own read buffer is, since each read is consumed (copied
# into bytes) before the next one starts. 64 KiB as libuv suggests: a read carrying a
# head then brings at most that much of a large body before the body reader takes over.
cdef bytearray read_buffer = bytearray(65536)


cdef class _BodyReader:
    """The transport's protocol while a large Content-Length body is being read: an
    asyncio buffered protocol whose buffer is the unread rest of the body's bytes object,
    so the kernel copies into it directly (no bytes per read, no join). The bytes object
    is fresh and not yet visible to anyone else, so filling it in place is safe; once
    full it is handed on and never written again. Every other callback goes to the
    owner (server protocol or client connection), which switches the transport back."""

    def get_buffer(self, Py_ssize_t sizehint):
        return self

    def buffer_updated(self, Py_ssize_t nbytes):
        self.offset += nbytes
        if self.for_server:
            (<_HttpServerProtocol>self.owner).body_read(nbytes)
        else:
            (<_ClientConnection>self.owner).body_read(nbytes)

    def eof_received(self):
        return self.owner.eof_received()

    def connection_lost(self, exc):
        self.body = None
        self.owner.connection_lost(exc)

    def pause_writing(self):
        self.owner.pause_writing()

    def resume_writing(self):
        self.owner.resume_writing()

    def __len__(self):
        return self.end - self.offset

    def __getbuffer__(self, Py_buffer *view, int flags):
        if self.body is None or self.offset >= self.end:
            raise BufferError("no body is being read")
        view.buf = PyBytes_AS_STRING(self.body) + self.offset
        view.len = self.end - self.offset
        view.readonly = 0
        view.itemsize = 1
        view.format = NULL
        if flags & PyBUF_FORMAT:
            view.format = b"B"
        view.ndim = 1
        view.shape = &view.len if (flags & PyBUF_ND) else NULL
        view.strides = &view.itemsize if (flags & PyBUF_STRIDES) == PyBUF_STRIDES else NULL
        view.suboffsets = NULL
        view.internal = NULL
        view.obj = self

    def __releasebuffer__(self, Py_buffer *view):
        pass


# asyncio's selector transport checks isinstance(protocol, BufferedProtocol); uvloop
# only looks for get_buffer. The owners have no get_buffer: they stay plain protocols.
class _BufferedBodyReader(_BodyReader, _asyncio_protocols.BufferedProtocol):
    __slots__ = ()


cdef _BodyReader new_body_reader(object owner, bint for_server):
    cdef _BodyReader r = <_BodyReader>_BufferedBodyReader()
    r.owner = owner
    r.for_server = for_server
    return r


cdef inline void reader_window(_BodyReader r, bytes body, Py_ssize_t offset, Py_ssize_t end):
    r.body = body
    r.offset = offset
    r.end = end


# ---- field syntax (RFC 9110): names are tokens, values have no control byte ----------

cdef bytes _TOKEN = (b"!#$%&'*+-.^_`|~0123456789"
                     b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

# byte -> 1 when allowed: RFC 9110 tchar (token characters)
cdef unsigned char _TCHAR_OK[256]


cdef void _fill_table(unsigned char *table, bytes allowed):
    cdef int i
    for i in range(256):
        table[i] = 0
    for i in allowed:
        table[i] = 1


_fill_table(_TCHAR_OK, _TOKEN)


cdef inline bint in_table(const unsigned char *table, bytes s) noexcept:
    """s is not empty and every byte of it is allowed by ``table``."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(s)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(s)
    if n == 0:
        return False
    for i in range(n):
        if not table[p[i]]:
            return False
    return True


cdef inline bint header_value_ok(bytes value) noexcept:
    """Go's httpguts.ValidHeaderFieldValue: no control byte but HTAB (obs-text passes,
    as Go's client sends it). A CR or LF here would end the header line early."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(value)
    cdef Py_ssize_t i = 0, n = PyBytes_GET_SIZE(value)
    cdef uint64_t w
    cdef unsigned char c
    # eight bytes per step while none is below 0x20 or 0x7F (a token, a JWT): exact
    # "any byte" tests from the bit-twiddling classics; the first word holding such a
    # byte, HTAB included, goes to the byte loop, which decides
    while i + 8 <= n:
        memcpy(&w, p + i, 8)
        if ((w - 0x2020202020202020ULL) & ~w & 0x8080808080808080ULL) or \
                (((w ^ 0x7F7F7F7F7F7F7F7FULL) - 0x0101010101010101ULL) & ~(w ^ 0x7F7F7F7F7F7F7F7FULL)
                 & 0x8080808080808080ULL):
            break
        i += 8
    while i < n:
        c = p[i]
        if (c < 0x20 and c != 0x09) or c == 0x7F:
            return False
        i += 1
    return True
