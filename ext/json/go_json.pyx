# Go's encoding/json round trip, for the one body KServe's router re-encodes: a
# Sequence step with mapPredictionsToInstances unmarshals its request into
#     struct { Predictions, Instances []interface{} `json:"...,omitempty"` }
# and, when Predictions is not empty, marshals {"instances": Predictions} back
# (cmd/router/main.go, sequenceReqRes). The body Go sends is therefore what its
# decoder keeps and its encoder writes, and any Unmarshal error sends the body as it
# came. This file reproduces both sides in one pass over the raw bytes:
#   - decoding: Go's scanner grammar and nesting limit over the whole document; keys
#     matched to the two fields exactly or case-folded; a field that is neither an
#     array nor null is a type error; numbers become float64 (out of range: an error);
#     strings are unquoted with invalid UTF-8 and lone surrogates made U+FFFD;
#   - encoding: no whitespace, object keys sorted bytewise with the last duplicate
#     kept (a Go map), float64 written as Go writes it, strings escaped as Go's
#     HTML-safe encoder does (\b and \f short, since Go 1.22; <, >, &, U+2028, U+2029
#     as \u escapes).
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from cpython.ref cimport PyObject
from libc.string cimport memcpy, memcmp
from libc.math cimport fabs, isinf

cdef extern from "Python.h":
    double PyOS_string_to_double(const char *s, char **endptr, PyObject *overflow_exception) except? -1.0

cdef enum:
    # encoding/json's scanner refuses documents nested deeper than this
    GO_MAX_DEPTH = 10000
    FIELD_NONE = 0
    FIELD_PREDICTIONS = 1
    FIELD_INSTANCES = 2

cdef const char *_HEX = b"0123456789abcdef"


# ---- Go's rules, one at a time --------------------------------------------------------

cdef inline int hex4(const unsigned char *p) noexcept:
    # only called on escapes the scanner has checked
    return (hex_digit(p[0]) << 12) | (hex_digit(p[1]) << 8) | (hex_digit(p[2]) << 4) | hex_digit(p[3])


cdef Py_ssize_t utf8_size(const unsigned char *p, Py_ssize_t avail) noexcept:
    """The length of the well-formed UTF-8 sequence at p (Go's utf8.DecodeRune), or
    0 where Go sees an invalid byte (it decodes RuneError, width 1)."""
    cdef unsigned char c = p[0]
    cdef unsigned char lo = 0x80, hi = 0xBF
    cdef Py_ssize_t size
    if c < 0xC2 or c > 0xF4:
        return 0
    if c < 0xE0:
        size = 2
    elif c < 0xF0:
        size = 3
        if c == 0xE0:
            lo = 0xA0
        elif c == 0xED:
            hi = 0x9F       # surrogates are not UTF-8
    else:
        size = 4
        if c == 0xF0:
            lo = 0x90
        elif c == 0xF4:
            hi = 0x8F       # nothing above U+10FFFF
    if avail < size or not (lo <= p[1] <= hi):
        return 0
    if size > 2 and not (0x80 <= p[2] <= 0xBF):
        return 0
    if size > 3 and not (0x80 <= p[3] <= 0xBF):
        return 0
    return size


cdef int put_rune(ByteBuf *b, unsigned int r) except -1:
    cdef char enc[4]
    if r < 0x80:
        return buf_byte(b, <char>r)
    if r < 0x800:
        enc[0] = <char>(0xC0 | (r >> 6))
        enc[1] = <char>(0x80 | (r & 0x3F))
        return buf_put(b, enc, 2)
    if r < 0x10000:
        enc[0] = <char>(0xE0 | (r >> 12))
        enc[1] = <char>(0x80 | ((r >> 6) & 0x3F))
        enc[2] = <char>(0x80 | (r & 0x3F))
        return buf_put(b, enc, 3)
    enc[0] = <char>(0xF0 | (r >> 18))
    enc[1] = <char>(0x80 | ((r >> 12) & 0x3F))
    enc[2] = <char>(0x80 | ((r >> 6) & 0x3F))
    enc[3] = <char>(0x80 | (r & 0x3F))
    return buf_put(b, enc, 4)


cdef int field_of(const unsigned char *k, Py_ssize_t n) noexcept:
    """The sequenceReqRes field an object key selects: Go takes an exact match, else a
    case-folded one (bytes.EqualFold). Both names are ASCII letters, and the only
    non-ASCII rune folding onto one of their letters is U+017F (long s) onto s."""
    cdef unsigned char folded[11]
    cdef Py_ssize_t i = 0, m = 0
    cdef unsigned char c
    while i < n:
        if m == 11:
            return FIELD_NONE
        c = k[i]
        if c < 0x80:
            folded[m] = c + 32 if 65 <= c <= 90 else c
            i += 1
        elif c == 0xC5 and i + 1 < n and k[i + 1] == 0xBF:
            folded[m] = 115
            i += 2
        else:
            return FIELD_NONE
        m += 1
    if m == 11 and memcmp(folded, b"predictions", 11) == 0:
        return FIELD_PREDICTIONS
    if m == 9 and memcmp(folded, b"instances", 9) == 0:
        return FIELD_INSTANCES
    return FIELD_NONE


cdef inline int key_cmp(const char *keys, GoMember *x, GoMember *y) noexcept:
    """Go's strings.Compare of two decoded keys."""
    cdef Py_ssize_t n = x.key_len if x.key_len < y.key_len else y.key_len
    cdef int c = memcmp(keys + x.key_at, keys + y.key_at, n)
    if c:
        return c
    return (x.key_len > y.key_len) - (x.key_len < y.key_len)


cdef void sort_members(const char *keys, GoMember *ms, Py_ssize_t *order, Py_ssize_t *tmp,
                       Py_ssize_t m) noexcept:
    """Stable merge sort of member indices by key: equal keys keep document order, so
    the last of a run is the value a Go map keeps."""
    cdef Py_ssize_t width = 1, lo, mid, hi, i, j, k
    cdef Py_ssize_t *src = order
    cdef Py_ssize_t *dst = tmp
    cdef Py_ssize_t *swap
    while width < m:
        lo = 0
        while lo < m:
            mid = lo + width if lo + width < m else m
            hi = lo + 2 * width if lo + 2 * width < m else m
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                if key_cmp(keys, &ms[src[j]], &ms[src[i]]) < 0:
                    dst[k] = src[j]
                    j += 1
                else:
                    dst[k] = src[i]
                    i += 1
                k += 1
            while i < mid:
                dst[k] = src[i]
                i += 1
                k += 1
            while j < hi:
                dst[k] = src[j]
                j += 1
                k += 1
            lo = hi
        swap = src
        src = dst
        dst = swap
        width *= 2
    if src != order:
        memcpy(order, src, m * sizeof(Py_ssize_t))


@cython.final
cdef class GoJsonRoundTrip:
    """One body through KServe's json.Unmarshal(body, &sequenceReqRes) and, when its
    predictions are not empty, json.Marshal of {"instances": predictions}."""

    def __dealloc__(self):
        PyMem_Free(self.out.data)
        PyMem_Free(self.scratch.data)
        PyMem_Free(self.keys.data)
        PyMem_Free(self.members.data)
        PyMem_Free(self.frames.data)
        PyMem_Free(self.kinds.data)

    cdef object run(self, const unsigned char *src, Py_ssize_t n):
        """The bytes Go's router sends for ``src``, or None when it sends ``src``."""
        cdef Py_ssize_t end, pred_len = -1, start
        cdef bint plain
        cdef int field
        cdef bytes result
        self.src = src
        self.n = n
        self.pos = 0
        self.members.len = 0
        self.frames.len = 0
        self.keys.len = 0
        self.skip_ws()
        # a top-level array, string, number or bool is a type error; null decodes to
        # nothing; invalid JSON is a syntax error: all leave the body as it is
        if self.pos >= n or src[self.pos] != b'{':
            return None
        self.pos += 1
        self.skip_ws()
        if self.pos < n and src[self.pos] == b'}':
            self.pos += 1
        else:
            while True:
                if self.pos >= n or src[self.pos] != b'"':
                    return None
                end = self.scan_string(self.pos + 1, &plain)
                if end < 0:
                    return None
                if plain:
                    field = field_of(src + self.pos + 1, end - self.pos - 1)
                else:
                    self.unquote(self.pos + 1, end)
                    field = field_of(<const unsigned char*>self.scratch.data, self.scratch.len)
                self.pos = end + 1
                self.skip_ws()
                if self.pos >= n or src[self.pos] != b':':
                    return None
                self.pos += 1
                self.skip_ws()
                if self.pos >= n:
                    return None
                if field == FIELD_NONE:
                    # skipped by the decoder, but still checked by its scanner
                    if self.value(False, 1):
                        return None
                elif src[self.pos] == b'[':
                    # a later predictions key replaces an earlier one; instances are
                    # decoded (their numbers can fail) and then dropped by the mapping
                    start = 0 if field == FIELD_PREDICTIONS else self.out.len
                    self.out.len = start
                    if self.value(True, 1):
                        return None
                    if field == FIELD_PREDICTIONS:
                        pred_len = self.out.len
                    else:
                        self.out.len = start
                elif src[self.pos] == b'n':
                    if self.value(False, 1):
                        return None
                    if field == FIELD_PREDICTIONS:
                        pred_len = -1
                        self.out.len = 0
                else:
                    return None     # an object, string, number or bool into a slice
                self.skip_ws()
                if self.pos < n and src[self.pos] == b',':
                    self.pos += 1
                    self.skip_ws()
                    continue
                if self.pos < n and src[self.pos] == b'}':
                    self.pos += 1
                    break
                return None
        self.skip_ws()
        if self.pos != n:
            return None
        if pred_len <= 2:           # no predictions, null, or [] (Go: len 0)
            return None
        result = PyBytes_FromStringAndSize(NULL, pred_len + 14)
        memcpy(<char*>result, b'{"instances":', 13)
        memcpy(<char*>result + 13, self.out.data, pred_len)
        (<char*>result)[pred_len + 13] = b'}'
        return result

    cdef inline void skip_ws(self) noexcept:
        cdef Py_ssize_t i = self.pos
        cdef unsigned char c
        while i < self.n:
            c = self.src[i]
            if c != 32 and c != 10 and c != 13 and c != 9:
                break
            i += 1
        self.pos = i

    cdef Py_ssize_t scan_string(self, Py_ssize_t i, bint *plain) noexcept:
        """i: just past an opening quote. The index of the closing quote, or -1 where
        Go's scanner fails. *plain: no escapes and nothing Go's encoder rewrites."""
        cdef const unsigned char *s = self.src
        cdef unsigned char c
        cdef bint simple = True
        while i < self.n:
            c = s[i]
            if c == b'"':
                plain[0] = simple
                return i
            if c == b'\\':
                simple = False
                i += 1
                if i >= self.n:
                    return -1
                c = s[i]
                if c == b'u':
                    if i + 4 >= self.n or hex_digit(s[i + 1]) < 0 or hex_digit(s[i + 2]) < 0 \
                            or hex_digit(s[i + 3]) < 0 or hex_digit(s[i + 4]) < 0:
                        return -1
                    i += 5
                    continue
                if c == b'"' or c == b'\\' or c == b'/' or c == b'b' or c == b'f' \
                        or c == b'n' or c == b'r' or c == b't':
                    i += 1
                    continue
                return -1
            if c < 0x20:
                return -1
            if c >= 0x80 or c == b'<' or c == b'>' or c == b'&':
                simple = False
            i += 1
        return -1

    cdef int unquote(self, Py_ssize_t i, Py_ssize_t end) except -1:
        """Go's unquoteBytes of a scanned string's content src[i:end], into scratch."""
        cdef const unsigned char *s = self.src
        cdef ByteBuf *b = &self.scratch
        cdef unsigned char c
        cdef unsigned int r, r2
        cdef Py_ssize_t k
        b.len = 0
        buf_reserve(b, 3 * (end - i) + 4)
        while i < end:
            c = s[i]
            if c == b'\\':
                c = s[i + 1]
                if c == b'u':
                    r = <unsigned int>hex4(s + i + 2)
                    i += 6
                    if 0xD800 <= r < 0xE000:
                        # a high surrogate takes a low one from the next escape;
                        # anything else is U+FFFD and the next escape stands alone
                        if r < 0xDC00 and i + 6 <= end and s[i] == b'\\' and s[i + 1] == b'u':
                            r2 = <unsigned int>hex4(s + i + 2)
                            if 0xDC00 <= r2 < 0xE000:
                                r = 0x10000 + ((r - 0xD800) << 10) + (r2 - 0xDC00)
                                i += 6
                            else:
                                r = 0xFFFD
                        else:
                            r = 0xFFFD
                    put_rune(b, r)
                    continue
                if c == b'b':
                    c = 8
                elif c == b'f':
                    c = 12
                elif c == b'n':
                    c = 10
                elif c == b'r':
                    c = 13
                elif c == b't':
                    c = 9
                buf_byte(b, <char>c)
                i += 2
            elif c < 0x80:
                buf_byte(b, <char>c)
                i += 1
            else:
                k = utf8_size(s + i, end - i)
                if k == 0:
                    buf_put(b, b"\xef\xbf\xbd", 3)
                    i += 1
                else:
                    buf_put(b, <const char*>s + i, k)
                    i += k
        return 0

    cdef int encode_scratch(self) except -1:
        """Go's appendString(escapeHTML=true) of the decoded string in scratch, which
        is well-formed UTF-8 (unquote made it so)."""
        cdef const unsigned char *s = <const unsigned char*>self.scratch.data
        cdef Py_ssize_t i = 0, n = self.scratch.len
        cdef ByteBuf *b = &self.out
        cdef unsigned char c
        buf_reserve(b, 6 * n + 2)
        buf_byte(b, b'"')
        while i < n:
            c = s[i]
            if c >= 0x80:
                if c == 0xE2 and i + 2 < n and s[i + 1] == 0x80 and (s[i + 2] == 0xA8 or s[i + 2] == 0xA9):
                    if s[i + 2] == 0xA8:
                        buf_put(b, b"\\u2028", 6)
                    else:
                        buf_put(b, b"\\u2029", 6)
                    i += 3
                    continue
                buf_byte(b, <char>c)
            elif c >= 0x20 and c != b'"' and c != b'\\' and c != b'<' and c != b'>' and c != b'&':
                buf_byte(b, <char>c)
            elif c == b'"' or c == b'\\':
                buf_byte(b, b'\\')
                buf_byte(b, <char>c)
            elif c == 8:
                buf_put(b, b"\\b", 2)
            elif c == 12:
                buf_put(b, b"\\f", 2)
            elif c == 10:
                buf_put(b, b"\\n", 2)
            elif c == 13:
                buf_put(b, b"\\r", 2)
            elif c == 9:
                buf_put(b, b"\\t", 2)
            else:
                buf_put(b, b"\\u00", 4)
                buf_byte(b, _HEX[c >> 4])
                buf_byte(b, _HEX[c & 0xF])
            i += 1
        return buf_byte(b, b'"')

    cdef int emit_string(self, Py_ssize_t i, Py_ssize_t end, bint plain) except -1:
        if plain:
            buf_byte(&self.out, b'"')
            buf_put(&self.out, <const char*>self.src + i, end - i)
            return buf_byte(&self.out, b'"')
        self.unquote(i, end)
        return self.encode_scratch()

    cdef Py_ssize_t scan_number(self, Py_ssize_t i) noexcept:
        """The end of the JSON number at i, or -1 where Go's scanner fails."""
        cdef const unsigned char *s = self.src
        cdef Py_ssize_t n = self.n
        if s[i] == b'-':
            i += 1
        if i >= n:
            return -1
        if s[i] == b'0':
            i += 1
        elif b'1' <= s[i] <= b'9':
            while i < n and b'0' <= s[i] <= b'9':
                i += 1
        else:
            return -1
        if i < n and s[i] == b'.':
            i += 1
            if i >= n or not (b'0' <= s[i] <= b'9'):
                return -1
            while i < n and b'0' <= s[i] <= b'9':
                i += 1
        if i < n and (s[i] == b'e' or s[i] == b'E'):
            i += 1
            if i < n and (s[i] == b'+' or s[i] == b'-'):
                i += 1
            if i >= n or not (b'0' <= s[i] <= b'9'):
                return -1
            while i < n and b'0' <= s[i] <= b'9':
                i += 1
        return i

    cdef int emit_number(self, Py_ssize_t start, Py_ssize_t end) except -1:
        """src[start:end] through float64 as Go writes it back (json/go_float.pyx); 1 when
        it is out of float64's range."""
        return put_go_number(&self.out, self.src + start, end - start)

    cdef int literal(self, const char *word, Py_ssize_t size, bint emit) except -1:
        if self.pos + size > self.n or memcmp(self.src + self.pos, word, size) != 0:
            return 1
        if emit:
            buf_put(&self.out, word, size)
        self.pos += size
        return 0

    cdef int member_key(self, bint emit) except -1:
        """An object's key and its colon; in emit mode the key is written, and kept
        decoded (for the sort at the object's end) as the open object's pending key."""
        cdef Py_ssize_t end
        cdef bint plain
        cdef GoObject *frame
        if self.pos >= self.n or self.src[self.pos] != b'"':
            return 1
        end = self.scan_string(self.pos + 1, &plain)
        if end < 0:
            return 1
        if emit:
            frame = (<GoObject*>self.frames.data) + (self.frames.len // sizeof(GoObject) - 1)
            frame.key_start = self.out.len
            frame.key_at = self.keys.len
            if plain:
                buf_put(&self.keys, <const char*>self.src + self.pos + 1, end - self.pos - 1)
                self.emit_string(self.pos + 1, end, True)
            else:
                self.unquote(self.pos + 1, end)
                buf_put(&self.keys, self.scratch.data, self.scratch.len)
                self.encode_scratch()
            frame.key_len = self.keys.len - frame.key_at
            buf_byte(&self.out, b':')
        self.pos = end + 1
        self.skip_ws()
        if self.pos >= self.n or self.src[self.pos] != b':':
            return 1
        self.pos += 1
        return 0

    cdef int open_object(self) except -1:
        cdef GoObject frame
        frame.body_at = self.out.len
        frame.first = self.members.len // sizeof(GoMember)
        frame.keys_at = self.keys.len
        frame.key_at = frame.key_len = frame.key_start = 0
        return buf_put(&self.frames, <const char*>&frame, sizeof(GoObject))

    cdef int end_member(self) except -1:
        cdef GoObject *frame = (<GoObject*>self.frames.data) + (self.frames.len // sizeof(GoObject) - 1)
        cdef GoMember m
        m.key_at = frame.key_at
        m.key_len = frame.key_len
        m.start = frame.key_start
        m.end = self.out.len
        return buf_put(&self.members, <const char*>&m, sizeof(GoMember))

    cdef int close_object(self) except -1:
        """Go marshals a map with its keys sorted bytewise, and a key seen twice keeps
        its last value. Members already in that order stay where they were written."""
        cdef GoObject frame = (<GoObject*>self.frames.data)[self.frames.len // sizeof(GoObject) - 1]
        cdef GoMember *ms = (<GoMember*>self.members.data) + frame.first
        cdef Py_ssize_t m = self.members.len // sizeof(GoMember) - frame.first
        cdef Py_ssize_t i, j, w
        cdef Py_ssize_t *order
        cdef GoMember *a
        cdef char *moved
        cdef Py_ssize_t moved_len
        for i in range(1, m):
            if key_cmp(self.keys.data, &ms[i - 1], &ms[i]) >= 0:
                break
        else:
            i = 0
        if i:
            order = <Py_ssize_t*>PyMem_Malloc(2 * m * sizeof(Py_ssize_t))
            if order == NULL:
                raise MemoryError()
            try:
                for j in range(m):
                    order[j] = j
                sort_members(self.keys.data, ms, order, order + m, m)
                # the sorted members, the last of each run of equal keys, in scratch
                self.scratch.len = 0
                w = 0
                for j in range(m):
                    if j + 1 < m and key_cmp(self.keys.data, &ms[order[j]], &ms[order[j + 1]]) == 0:
                        continue
                    a = &ms[order[j]]
                    if w:
                        buf_byte(&self.scratch, b',')
                    buf_put(&self.scratch, self.out.data + a.start, a.end - a.start)
                    w += 1
            finally:
                PyMem_Free(order)
            self.out.len = frame.body_at
            buf_put(&self.out, self.scratch.data, self.scratch.len)
        self.members.len = frame.first * sizeof(GoMember)
        self.keys.len = frame.keys_at
        self.frames.len -= sizeof(GoObject)
        return buf_byte(&self.out, b'}')

    cdef int value(self, bint emit, int depth) except -1:
        """Scan (emit False) or re-encode (emit True) the value at pos as Go decodes it
        into interface{}; ``depth`` containers are open around it. 0: done; 1: Go's
        Unmarshal fails (syntax, nesting, a number out of float64's range)."""
        cdef const unsigned char *s = self.src
        cdef Py_ssize_t n = self.n, end
        cdef int top = 0
        cdef unsigned char c
        cdef bint plain
        while True:
            # ---- a value starts here
            self.skip_ws()
            if self.pos >= n:
                return 1
            c = s[self.pos]
            if c == b'{' or c == b'[':
                if depth + top >= GO_MAX_DEPTH:
                    return 1
                if top == self.kinds.cap:
                    self.kinds.len = top
                    buf_reserve(&self.kinds, 1)
                self.kinds.data[top] = <char>c
                top += 1
                self.pos += 1
                if emit:
                    buf_byte(&self.out, <char>c)
                self.skip_ws()
                if self.pos >= n:
                    return 1
                if c == b'{':
                    if emit:
                        self.open_object()
                    if s[self.pos] != b'}':
                        if self.member_key(emit):
                            return 1
                        continue
                    self.pos += 1
                    top -= 1
                    if emit:
                        self.close_object()
                else:
                    if s[self.pos] != b']':
                        continue
                    self.pos += 1
                    top -= 1
                    if emit:
                        buf_byte(&self.out, b']')
            elif c == b'"':
                end = self.scan_string(self.pos + 1, &plain)
                if end < 0:
                    return 1
                if emit:
                    self.emit_string(self.pos + 1, end, plain)
                self.pos = end + 1
            elif c == b't':
                if self.literal(b"true", 4, emit):
                    return 1
            elif c == b'f':
                if self.literal(b"false", 5, emit):
                    return 1
            elif c == b'n':
                if self.literal(b"null", 4, emit):
                    return 1
            elif c == b'-' or b'0' <= c <= b'9':
                end = self.scan_number(self.pos)
                if end < 0:
                    return 1
                if emit and self.emit_number(self.pos, end):
                    return 1
                self.pos = end
            else:
                return 1
            # ---- a value ended: close the containers it completes
            while True:
                if top == 0:
                    return 0
                self.skip_ws()
                if self.pos >= n:
                    return 1
                c = s[self.pos]
                if self.kinds.data[top - 1] == b'[':
                    if c == b',':
                        self.pos += 1
                        if emit:
                            buf_byte(&self.out, b',')
                        break
                    if c != b']':
                        return 1
                    self.pos += 1
                    top -= 1
                    if emit:
                        buf_byte(&self.out, b']')
                    continue
                if emit:
                    self.end_member()
                if c == b',':
                    self.pos += 1
                    if emit:
                        buf_byte(&self.out, b',')
                    self.skip_ws()
                    if self.member_key(emit):
                        return 1
                    break
                if c != b'}':
                    return 1
                self.pos += 1
                top -= 1
                if emit:
                    self.close_object()


cdef object go_map_predictions(object body):
    """KServe's mapPredictionsToInstances: the body Go's router sends for ``body``
    (the same object whenever Go sends it unchanged)."""
    cdef Py_buffer view
    cdef GoJsonRoundTrip rt
    cdef object out
    try:
        PyObject_GetBuffer(body, &view, PyBUF_SIMPLE)
    except TypeError:
        return body     # not bytes-like (an OIP message): no JSON object with predictions
    try:
        rt = GoJsonRoundTrip.__new__(GoJsonRoundTrip)
        out = rt.run(<const unsigned char*>view.buf, view.len)
    finally:
        PyBuffer_Release(&view)
    return body if out is None else out


def map_predictions_to_instances(body):
    """What KServe's router sends to a step with ``mapPredictionsToInstances: true``
    for the request ``body``: ``{"instances": <predictions>}`` re-encoded exactly as
    Go's encoding/json does, or ``body`` itself when Go leaves it as it is."""
    return go_map_predictions(body)


def go_quote(str text):
    """``text`` as Go's json.Marshal writes a string (HTML-safe escapes, U+2028 and
    U+2029 escaped, ``\\b`` and ``\\f`` short, as Go 1.22 and later)."""
    cdef GoJsonRoundTrip rt = GoJsonRoundTrip.__new__(GoJsonRoundTrip)
    cdef bytes raw = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace").encode()
    rt.scratch.len = 0
    buf_put(&rt.scratch, <const char*>raw, len(raw))
    rt.out.len = 0
    rt.encode_scratch()
    return PyBytes_FromStringAndSize(rt.out.data, rt.out.len)
