# Header propagation as KServe's router does it: every incoming header whose Go
# canonical name (textproto.CanonicalMIMEHeaderKey) matches one of the
# PROPAGATE_HEADERS regular expressions (unanchored) is forwarded to every step.
import re as _re

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
        try:
            patterns.append(_re.compile(re2_to_python(item), _re.ASCII))
        except (ValueError, _re.error) as e:
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
