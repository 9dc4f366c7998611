# Header propagation as KServe's router does it: every incoming header whose Go
# canonical name (textproto.CanonicalMIMEHeaderKey) matches one of the
# PROPAGATE_HEADERS regular expressions (unanchored) is forwarded to every step.
import re as _re

# Go's Request.Write sets these itself; hop-by-hop ones belong to our connection pool.
cdef frozenset _NOT_FORWARDED = frozenset((
    b"Host", b"Content-Length", b"Transfer-Encoding", b"Trailer", b"Connection",
    b"Keep-Alive", b"Upgrade", b"Te", b"Proxy-Connection",
))
# RE2 (Go) has no look-around or back-references; Python would accept them.
cdef object _NOT_RE2 = _re.compile(r"\(\?<?[=!]|\\[1-9]|\(\?P=")
cdef bytes _TOKEN = (b"!#$%&'*+-.^_`|~0123456789"
                     b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
cdef int _CACHE_LIMIT = 4096


def canonical_header_name(name):
    """Go's textproto.CanonicalMIMEHeaderKey for a bytes or str header name."""
    cdef bytes raw = name.encode("latin-1") if isinstance(name, str) else bytes(name)
    for c in raw:
        if c not in _TOKEN:
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
        if _NOT_RE2.search(item):
            problems.append(f"failed to compile pattern {item!r}: not RE2 syntax (look-around or back-reference)")
            continue
        try:
            patterns.append(_re.compile(item))
        except _re.error as e:
            problems.append(f"failed to compile pattern {item!r}: {e}")
    return patterns, problems


@cython.final
cdef class HeaderPropagation:
    """Selects the headers of a request to forward; caches the verdict per raw name."""
    # verdicts: raw name bytes -> canonical bytes, or None when not forwarded

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
                    result = canonical
                    break
        if len(self.verdicts) >= _CACHE_LIMIT:
            self.verdicts.clear()
        self.verdicts[raw_name] = result
        return result

    cpdef list select(self, list headers):
        """[(raw name, value)] as received -> [(canonical name, value)] to forward."""
        cdef list out = []
        if not self.patterns:
            return out
        cdef dict verdicts = self.verdicts
        for name, value in headers:
            canonical = verdicts.get(name, verdicts)
            if canonical is verdicts:
                canonical = self.verdict(name)
            if canonical is not None:
                out.append((canonical, value))
        return out
