# Header propagation as KServe's router does it: every incoming header whose Go
# canonical name (textproto.CanonicalMIMEHeaderKey) matches one of the
# PROPAGATE_HEADERS regular expressions (unanchored) is forwarded to every step.
#
# select() is also where a forwarded header is checked, once per request and only for
# the headers that match: a name that is not an RFC 9110 token or a value with a
# control byte (CR, LF, NUL, ... but HTAB) is dropped and counted, never written. Go's
# Transport fails the whole call instead; dropping keeps the request served, and every
# front end (HTTP, gRPC, HTTP v2, embedded Plan.infer) builds its step headers here.
import binascii as _binascii
import logging as _logging
import re as _re

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

# Go's Request.Write sets these itself; hop-by-hop ones belong to our connection pool.
cdef frozenset _NOT_FORWARDED = frozenset((
    b"Host", b"Content-Length", b"Transfer-Encoding", b"Trailer", b"Connection",
    b"Keep-Alive", b"Upgrade", b"Te", b"Proxy-Connection",
))


@cython.wraparound(True)
def re2_to_python(str pattern):
    """A Go (RE2) pattern as Python ``re`` text that matches the same header names,
    or ValueError naming the RE2 rule it breaks.

    Python accepts syntax that RE2 refuses (look-around, back-references, atomic
    groups, conditionals, possessive quantifiers, ``\\Z``) and spells RE2's ``\\z``
    as ``\\Z``; the rest is compiled with ``re.ASCII`` because RE2's ``\\d \\w \\s
    \\b`` are ASCII-only. Character classes are skipped over, so ``[*+]`` is no
    quantifier.
    """
    cdef list out = []
    cdef Py_ssize_t i = 0, n = len(pattern)
    cdef bint in_class = False
    cdef str c, nxt
    while i < n:
        c = pattern[i]
        nxt = pattern[i + 1] if i + 1 < n else ""
        if c == "\\":
            if nxt == "":
                raise ValueError("trailing backslash at end of expression")
            if not in_class:
                if nxt in "123456789":
                    raise ValueError(f"invalid escape sequence: \\{nxt} (RE2 has no back-references)")
                if nxt == "Z":
                    raise ValueError("invalid escape sequence: \\Z")
                if nxt == "z":
                    out.append("\\Z")
                    i += 2
                    continue
            out.append(c + nxt)
            i += 2
            continue
        if in_class:
            if c == "]" and not (out and out[-1] in ("[", "[^")):
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            if nxt == "^":
                out.append("[^")
                i += 2
                if i < n and pattern[i] == "]":  # a leading ] is a literal
                    out.append("]")
                    i += 1
                continue
            out.append("[")
            i += 1
            if i < n and pattern[i] == "]":
                out.append("]")
                i += 1
            continue
        if c == "(" and nxt == "?":
            rest = pattern[i + 2:i + 5]
            if rest[:1] in ("=", "!") or rest[:2] in ("<=", "<!"):
                raise ValueError("invalid or unsupported Perl syntax: look-around")
            if rest[:1] == ">":
                raise ValueError("invalid or unsupported Perl syntax: atomic group")
            if rest[:1] == "(":
                raise ValueError("invalid or unsupported Perl syntax: conditional")
            if rest[:2] == "P=":
                raise ValueError("invalid named capture: back-reference")
            if rest[:1] == "<":  # Go's (?<name>...) is Python's (?P<name>...)
                out.append("(?P")
                i += 2
                continue
        if c == "+" and out and out[-1] in ("*", "+", "?", "}") and \
                not (len(out) > 1 and out[-2] == "\\"):
            raise ValueError(f"invalid nested repetition operator: {out[-1]}+")
        out.append(c)
        i += 1
    if in_class:
        raise ValueError(f"missing closing ]: {pattern[pattern.rfind('['):]}")
    return "".join(out)
cdef bytes _GRPC_KEY = b"-_.0123456789abcdefghijklmnopqrstuvwxyz"
cdef int _CACHE_LIMIT = 4096

# byte -> 1 when allowed: gRPC's lower-case metadata key characters (HTTP's tchar
# table and the field checks are http/common.pyx's)
cdef unsigned char _GRPC_KEY_OK[256]
_fill_table(_GRPC_KEY_OK, _GRPC_KEY)


cdef inline bint printable_ascii(bytes value) noexcept:
    """gRPC's ASCII-Value: every byte in 0x20-0x7E."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(value)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(value)
    for i in range(n):
        if p[i] < 0x20 or p[i] > 0x7E:
            return False
    return True


# ---- headers not forwarded: C counters, one warning per (reason, name) --------------

cdef enum DropReason:
    DROP_INVALID_NAME = 0       # not a token (HTTP) or not a metadata key (gRPC)
    DROP_INVALID_VALUE = 1      # a control byte: would split or end the header line
    DROP_NON_ASCII_GRPC = 2     # a gRPC ASCII value outside 0x20-0x7E
    DROP_BAD_BASE64_GRPC = 3    # a -bin value that is not base64, to a gRPC backend
    DROP_REASONS = 4

cdef tuple _DROP_LABELS = ("invalid_name", "invalid_value", "non_ascii_grpc", "invalid_base64_grpc")
cdef unsigned long long _dropped[4]     # C globals start at zero
# bounded: a client inventing names must not grow it, nor the log
cdef set _drop_warned = set()
cdef int _DROP_WARN_LIMIT = 256
cdef object _headers_log = _logging.getLogger("engine.headers")
# a matched name that is not a token: cached as a verdict like the others
cdef object _BAD_NAME = object()


cdef int header_dropped(int reason, object name) except -1:
    _dropped[reason] += 1
    if len(_drop_warned) < _DROP_WARN_LIMIT:
        key = (reason, name)
        if key not in _drop_warned:
            _drop_warned.add(key)
            # never the value: it may be a credential (Go's Transport omits it too)
            _headers_log.warning(
                "propagated header dropped (%s): %.80r; further drops of it are only counted",
                _DROP_LABELS[reason], name, extra={"reason": _DROP_LABELS[reason]})
    return 0


def headers_dropped():
    """{reason: count} of propagated headers dropped in this process since start:
    ``invalid_name``, ``invalid_value``, ``non_ascii_grpc``, ``invalid_base64_grpc``
    (``ige_headers_dropped_total`` on /metrics)."""
    cdef int i
    return {_DROP_LABELS[i]: _dropped[i] for i in range(<int>DROP_REASONS)}


cdef str headers_dropped_metrics():
    cdef int i
    cdef list lines = [
        "# HELP ige_headers_dropped_total Propagated headers not forwarded: invalid name or value.\n",
        "# TYPE ige_headers_dropped_total counter\n"]
    for i in range(<int>DROP_REASONS):
        lines.append(f'ige_headers_dropped_total{{reason="{_DROP_LABELS[i]}"}} {_dropped[i]}\n')
    return "".join(lines)


def canonical_header_name(name):
    """Go's textproto.CanonicalMIMEHeaderKey for a bytes or str header name."""
    cdef bytes raw = name.encode("latin-1") if isinstance(name, str) else bytes(name)
    if not in_table(_TCHAR_OK, raw):
        return raw
    cdef bytearray out = bytearray(raw)
    cdef bint upper = True
    cdef Py_ssize_t i
    for i in range(len(out)):
        c = out[i]
        if upper and 97 <= c <= 122:
            out[i] = c - 32
        elif not upper and 65 <= c <= 90:
            out[i] = c + 32
        upper = c == 45  # '-'
    return bytes(out)


def compile_header_patterns(str spec):
    """PROPAGATE_HEADERS -> (patterns, problems). Split on commas exactly as KServe
    does (no trimming: an empty item is a pattern that matches every header);
    a pattern that does not compile is skipped and reported."""
    patterns, problems = [], []
    for item in spec.split(","):
        try:
            patterns.append(_re.compile(re2_to_python(item), _re.ASCII))
        except (ValueError, _re.error) as e:
            problems.append(f"failed to compile pattern {item!r}: {e}")
    return patterns, problems


@cython.final
cdef class HeaderPropagation:
    """Selects the headers of a request to forward; caches the verdict per raw name."""
    # verdicts: raw name bytes -> canonical bytes, None when not forwarded, or
    # _BAD_NAME when matched but not a token

    def __cinit__(self, list patterns):
        self.patterns = patterns
        self.verdicts = {}

    @property
    def enabled(self):
        return bool(self.patterns)

    cdef object verdict(self, object raw_name):
        cdef bytes canonical = canonical_header_name(raw_name)
        cdef object result = None
        if canonical not in _NOT_FORWARDED:
            text = canonical.decode("latin-1")
            for p in self.patterns:
                if p.search(text) is not None:
                    result = canonical if in_table(_TCHAR_OK, canonical) else _BAD_NAME
                    break
        if len(self.verdicts) >= _CACHE_LIMIT:
            self.verdicts.clear()
        self.verdicts[raw_name] = result
        return result

    cpdef list select(self, list headers):
        """[(raw name, value)] as received -> [(canonical name, value)] to forward.
        A matched header whose name is not a token, or whose value holds a control
        byte other than HTAB, is left out and counted (``headers_dropped``)."""
        cdef list out = []
        if not self.patterns:
            return out
        cdef dict verdicts = self.verdicts
        for name, value in headers:
            canonical = verdicts.get(name, verdicts)
            if canonical is verdicts:
                canonical = self.verdict(name)
            if canonical is None:
                continue
            if canonical is _BAD_NAME:
                header_dropped(DROP_INVALID_NAME, name)
                continue
            if type(value) is not bytes:
                value = bytes(value)
            if not header_value_ok(<bytes>value):
                header_dropped(DROP_INVALID_VALUE, canonical)
                continue
            out.append((canonical, _go_trimmed(<bytes>value)))
        return out


cdef inline bytes _go_trimmed(bytes value):
    """Go's textproto trims spaces and tabs around a header value (llhttp only the
    leading ones, and gRPC metadata or embedded callers none)."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(value), start = 0
    cdef const char *p = PyBytes_AS_STRING(value)
    if n == 0 or (p[n - 1] != 32 and p[n - 1] != 9 and p[0] != 32 and p[0] != 9):
        return value
    while n > 0 and (p[n - 1] == 32 or p[n - 1] == 9):
        n -= 1
    while start < n and (p[start] == 32 or p[start] == 9):
        start += 1
    return p[start:n]


# ---- gRPC metadata ----------------------------------------------------------------

# HTTP/2 or gRPC framing, never metadata: skipped without counting, as Go's client
# skips the framing headers it writes itself.
cdef frozenset _GRPC_RESERVED = frozenset((
    b"content-type", b"te", b"user-agent", b"host", b"connection", b"content-length",
    b"transfer-encoding", b"keep-alive"))


cdef object _metadata_bytes(bytes value):
    """A -bin header's value (base64, as gRPC's HTTP/2 mapping carries it; padded or
    not, as gRPC accepts both) -> the raw bytes, or None when it is not base64."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(value)
    if n % 4 == 1:
        return None
    if n % 4:
        value = value + b"=" * (4 - n % 4)
    try:
        return _binascii.a2b_base64(value, strict_mode=True)
    except _binascii.Error:
        return None


def grpc_metadata(list headers):
    """Propagated (name, value) bytes pairs -> gRPC metadata for a gRPC backend:
    lower-case keys; ``-bin`` values base64-decoded to bytes (grpc encodes them
    again on the wire); other values as str, which gRPC allows only in printable
    ASCII. A pair gRPC would refuse is left out and counted, so the call is made
    without it instead of failing."""
    cdef list out = []
    cdef bytes key, raw
    for name, value in headers:
        key = bytes(name).lower()
        if key in _GRPC_RESERVED or key.startswith(b"grpc-"):
            continue
        if not in_table(_GRPC_KEY_OK, key):
            header_dropped(DROP_INVALID_NAME, key)
            continue
        raw = value if type(value) is bytes else bytes(value)
        if key.endswith(b"-bin"):
            decoded = _metadata_bytes(raw)
            if decoded is None:
                header_dropped(DROP_BAD_BASE64_GRPC, key)
                continue
            out.append((key.decode("ascii"), decoded))
        elif printable_ascii(raw):
            out.append((key.decode("ascii"), raw.decode("ascii")))
        else:
            header_dropped(DROP_NON_ASCII_GRPC, key)
    return out
