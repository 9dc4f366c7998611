# Included by _gjson.pyx: byte-level scanning primitives with gjson's exact quirks
# (how strings, numbers, literals and nested values are delimited), the Parse
# function, string unescaping and the wildcard matcher (the validator is gjson/valid.pyx).
#
# Every function works on a (pointer, length) pair and never reads outside it.

cdef enum:
    T_NULL = 0
    T_FALSE = 1
    T_NUMBER = 2
    T_STRING = 3
    T_TRUE = 4
    T_JSON = 5

cdef extern from *:
    """
    /* Hot scanning loops in C.  SSE2 (every x86-64) classifies 16 bytes per step;
       other targets use the same lookup tables byte by byte. */
    #if defined(__SSE2__) && defined(__GNUC__)
    #include <emmintrin.h>
    #endif
    static const unsigned char gj_struct_tab[256] = {
        ['"'] = 1, ['('] = 1, [')'] = 1, ['['] = 1, [']'] = 1, ['{'] = 1, ['}'] = 1};
    static const unsigned char gj_str_tab[256] = {
        [0] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        ['"'] = 1, [0x5C] = 1};
    #define gj_is_struct(c) (gj_struct_tab[(unsigned char)(c)])
    #if defined(__GNUC__)
    #define gj_ctz(x) __builtin_ctz(x)
    #else
    static inline int gj_ctz(unsigned x) { int k = 0; while (!(x & 1u)) { x >>= 1; k++; } return k; }
    #endif
    /* Bit k set when p[k] is one of " ( ) [ ] { } (k < len <= 16). */
    static inline unsigned gj_struct_mask(const unsigned char* p, Py_ssize_t len) {
    #if defined(__SSE2__) && defined(__GNUC__)
        if (len == 16) {
            const __m128i q = _mm_set1_epi8('"'), lp = _mm_set1_epi8('(');
            const __m128i rp = _mm_set1_epi8(')'), lb = _mm_set1_epi8('{');
            const __m128i rb = _mm_set1_epi8('}'), bit = _mm_set1_epi8(0x20);
            __m128i x = _mm_loadu_si128((const __m128i*)p);
            __m128i y = _mm_or_si128(x, bit);
            __m128i m = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(x, q), _mm_cmpeq_epi8(x, lp)),
                _mm_or_si128(_mm_cmpeq_epi8(x, rp),
                             _mm_or_si128(_mm_cmpeq_epi8(y, lb), _mm_cmpeq_epi8(y, rb))));
            return (unsigned)_mm_movemask_epi8(m);
        }
    #endif
        unsigned mask = 0;
        Py_ssize_t k;
        for (k = 0; k < len; k++) if (gj_is_struct(p[k])) mask |= 1u << k;
        return mask;
    }
    /* gjson's parseSquash from the opener at p[i]: the index past the matching closer
       (*closed = 1); n when the value never closes; n + 1 when it ends inside a
       string.  Strings and brackets are found 16 bytes at a time from a bit mask;
       a quote is escaped when an odd run of backslashes precedes it (counted back to
       the string's start, as gjson does). */
    static Py_ssize_t gj_squash(const unsigned char* p, Py_ssize_t n, Py_ssize_t i,
                                int* closed) {
        Py_ssize_t depth = 1, s2 = 0, base = i + 1, len, k, j, run;
        int in_str = 0;
        unsigned mask;
        *closed = 0;
        while (base < n) {
            /* 32 bytes per step while they last: the bodies between brackets
               (number arrays, long strings) cost one test per 32 bytes (64 was
               no faster on 16 KB Switch requests) */
            if (n - base >= 32) {
                len = 32;
                mask = gj_struct_mask(p + base, 16) | (gj_struct_mask(p + base + 16, 16) << 16);
            } else {
                len = n - base < 16 ? n - base : 16;
                mask = gj_struct_mask(p + base, len);
            }
            while (mask) {
                k = base + gj_ctz(mask);
                mask &= mask - 1;
                if (in_str) {
                    if (p[k] != '"') continue;
                    if (p[k - 1] == 0x5C) {
                        run = 0;
                        for (j = k - 2; j > s2 - 1 && p[j] == 0x5C; j--) run++;
                        if (run % 2 == 0) continue;
                    }
                    in_str = 0;
                    continue;
                }
                switch (p[k]) {
                case '"':
                    in_str = 1;
                    s2 = k + 1;
                    break;
                case '{': case '[': case '(':
                    depth++;
                    break;
                default:
                    if (--depth == 0) {
                        *closed = 1;
                        return k + 1;
                    }
                }
            }
            base += len;
        }
        return in_str ? n + 1 : n;
    }
    /* Index of byte b in p[i:n], or -1.  JSON strings are mostly short, so a
       plain loop over the first 16 bytes beats a call to memchr. */
    static inline Py_ssize_t gj_find_byte(const unsigned char* p, Py_ssize_t i,
                                          Py_ssize_t n, unsigned char b) {
        Py_ssize_t lim = i + 16 < n ? i + 16 : n;
        const void* q;
        for (; i < lim; i++) if (p[i] == b) return i;
        if (i >= n) return -1;
        q = memchr(p + i, b, (size_t)(n - i));
        return q ? (Py_ssize_t)((const unsigned char*)q - p) : -1;
    }
    """
    Py_ssize_t gj_squash(cstr p, Py_ssize_t n, Py_ssize_t i, int* closed) nogil
    Py_ssize_t gj_find_byte(cstr p, Py_ssize_t i, Py_ssize_t n, unsigned char b) nogil


cdef inline void res_clear(Res* r) noexcept nogil:
    memset(r, 0, sizeof(Res))


cdef inline bint res_exists(const Res* r) noexcept nogil:
    return r.type != T_NULL or r.rawlen != 0


cdef inline bint span_eq(cstr a, Py_ssize_t an, const char* b) noexcept nogil:
    cdef Py_ssize_t bn = strlen(b)
    return an == bn and (an == 0 or memcmp(a, b, an) == 0)


cdef inline bint same_bytes(cstr a, cstr b, Py_ssize_t n) noexcept nogil:
    # keys and query values are short: a loop beats a call to memcmp
    cdef Py_ssize_t k
    if n > 16:
        return memcmp(a, b, n) == 0
    for k in range(n):
        if a[k] != b[k]:
            return False
    return True


cdef inline int bytes_cmp(cstr a, Py_ssize_t an, cstr b, Py_ssize_t bn) noexcept nogil:
    """Go string ordering: bytewise, then by length."""
    cdef Py_ssize_t m = an if an < bn else bn
    cdef int r = 0
    if m > 0:
        r = memcmp(a, b, m)
    if r != 0:
        return r
    return (an > bn) - (an < bn)


cdef void arena_release(Arena* arena) noexcept:
    if arena.items != NULL:
        Py_DECREF(<object>arena.items)
        arena.items = NULL


cdef inline Py_ssize_t arena_mark(Arena* arena) noexcept:
    return 0 if arena.items == NULL else len(<list>arena.items)


cdef inline int arena_reset(Arena* arena, Py_ssize_t mark) except -1:
    """Drop what was kept after mark: a scan frees each element's scratch (unescaped
    strings and keys) before the next, so memory never grows with the document."""
    if arena.items != NULL and len(<list>arena.items) > mark:
        del (<list>arena.items)[mark:]
    return 0


cdef cstr arena_keep(Arena* arena, bytes b) except NULL:
    cdef list items
    if arena.items == NULL:
        items = []
        Py_INCREF(items)
        arena.items = <void*>items
    (<list>arena.items).append(b)
    return <cstr>PyBytes_AS_STRING(b)


cdef inline Py_ssize_t _esc_quote_scan(cstr j, Py_ssize_t n, Py_ssize_t i,
                                       Py_ssize_t lo) noexcept nogil:
    """From a quote at i in escape mode, find the closing quote; -1 if none.

    A quote is escaped when an odd number of backslashes precede it; gjson counts
    them back to index lo (exclusive), which callers pass as gjson does.
    """
    cdef Py_ssize_t k, cnt
    while True:
        if j[i - 1] == 92:
            cnt = 0
            k = i - 2
            while k > lo:
                if j[k] != 92:
                    break
                cnt += 1
                k -= 1
            if cnt % 2 == 0:
                i = gj_find_byte(j, i + 1, n, 34)
                if i < 0:
                    return -1
                continue
        return i


cdef inline Py_ssize_t parse_string(cstr j, Py_ssize_t n, Py_ssize_t i,
                                    bint* esc, bint* ok) noexcept nogil:
    """i is just past the opening quote; returns the index past the closing quote."""
    cdef Py_ssize_t qi = gj_find_byte(j, i, n, 34)
    esc[0] = False
    if qi < 0:
        ok[0] = False
        return n
    if gj_find_byte(j, i, qi, 92) < 0:
        ok[0] = True
        return qi + 1
    qi = _esc_quote_scan(j, n, qi, 0)
    if qi < 0:
        ok[0] = False
        return n
    esc[0] = True
    ok[0] = True
    return qi + 1


cdef inline Py_ssize_t parse_squash(cstr j, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
    cdef bint closed
    return squash_ex(j, n, i, &closed)


cdef inline Py_ssize_t squash_ex(cstr j, Py_ssize_t n, Py_ssize_t i,
                                 bint* closed) noexcept nogil:
    """Skip the nested value opening at i ('[', '{' or '('); returns its end.

    Like gjson, an unterminated string inside returns n + 1 (the raw value still
    ends at n: callers clamp with sq_end), which stops the enclosing scan.
    """
    cdef int c = 0
    cdef Py_ssize_t e = gj_squash(j, n, i, &c)
    closed[0] = c != 0
    return e


cdef inline Py_ssize_t sq_end(Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    return n if i > n else i


cdef inline Py_ssize_t parse_number(cstr j, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
    cdef unsigned char c
    i += 1
    while i < n:
        c = j[i]
        if c <= 32 or c == 44 or c == 93 or c == 125:
            return i
        i += 1
    return n


cdef inline Py_ssize_t parse_literal(cstr j, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
    i += 1
    while i < n:
        if j[i] < 97 or j[i] > 122:
            return i
        i += 1
    return n


cdef double go_parse_float(cstr s, Py_ssize_t n) noexcept nogil:
    """strconv.ParseFloat(s, 64), keeping only the value (0 on a syntax error)."""
    cdef char stackbuf[128]
    cdef char* buf = stackbuf
    cdef char* end
    cdef double v
    cdef Py_ssize_t k, m
    cdef bint hex = False, hasp = False, under = False
    if n <= 0 or s[0] <= 32:
        return 0.0
    for k in range(n):
        if s[k] == 40 or s[k] <= 32:   # ( NUL space: strtod would read "nan(...)"
            return 0.0
        if s[k] == 95:
            under = True
        elif s[k] == 120 or s[k] == 88:
            hex = True
        elif s[k] == 112 or s[k] == 80:
            hasp = True
    if hex and not hasp:
        return 0.0
    if (s[0] == 43 or s[0] == 45) and n > 1 and (s[1] == 110 or s[1] == 78):
        return 0.0              # Go signs infinities only; strtod also signs NaN
    if under and not _underscores_ok(s, n):
        return 0.0
    if n >= <Py_ssize_t>sizeof(stackbuf):
        buf = <char*>malloc(n + 1)
        if buf == NULL:
            return 0.0
    if under:
        # Go accepts digit separators, strtod does not: drop them once they are valid
        m = 0
        for k in range(n):
            if s[k] != 95:
                buf[m] = s[k]
                m += 1
    else:
        memcpy(buf, s, n)
        m = n
    buf[m] = 0
    v = strtod(buf, &end)
    if end != buf + m:
        v = 0.0
    if buf != stackbuf:
        free(buf)
    return v


cdef bint _underscores_ok(cstr s, Py_ssize_t n) noexcept nogil:
    # strconv's rule: '_' only between digits, or between a base prefix and a digit
    cdef Py_ssize_t i = 0
    cdef int saw = 94          # '^' start, '0' digit or prefix, '_' underscore, '!' other
    cdef bint hex = False
    cdef unsigned char c
    if n >= 1 and (s[0] == 43 or s[0] == 45):
        i = 1
    if n - i >= 2 and s[i] == 48 and (s[i + 1] | 32) in (98, 111, 120):
        hex = (s[i + 1] | 32) == 120
        saw = 48
        i += 2
    while i < n:
        c = s[i]
        if 48 <= c <= 57 or hex and 97 <= (c | 32) <= 102:
            saw = 48
        elif c == 95:
            if saw != 48:
                return False
            saw = 95
        elif saw == 95:
            return False
        else:
            saw = 33
        i += 1
    return saw != 95


cdef int _runeit(cstr s) noexcept nogil:
    # strconv.ParseUint(s[:4], 16): any bad digit makes the whole value 0
    cdef int r = 0, k, h
    for k in range(4):
        h = hex_digit(s[k])
        if h < 0:
            return 0
        r = r * 16 + h
    return r


cdef Py_ssize_t encode_rune(unsigned char* out, int r) noexcept nogil:
    """utf8.EncodeRune: invalid code points become U+FFFD."""
    if r < 0 or r > 0x10FFFF or (0xD800 <= r <= 0xDFFF):
        r = 0xFFFD
    if r < 0x80:
        out[0] = r
        return 1
    if r < 0x800:
        out[0] = 0xC0 | (r >> 6)
        out[1] = 0x80 | (r & 0x3F)
        return 2
    if r < 0x10000:
        out[0] = 0xE0 | (r >> 12)
        out[1] = 0x80 | ((r >> 6) & 0x3F)
        out[2] = 0x80 | (r & 0x3F)
        return 3
    out[0] = 0xF0 | (r >> 18)
    out[1] = 0x80 | ((r >> 12) & 0x3F)
    out[2] = 0x80 | ((r >> 6) & 0x3F)
    out[3] = 0x80 | (r & 0x3F)
    return 4


cdef Py_ssize_t unescape_into(cstr s, Py_ssize_t n, unsigned char* out) noexcept nogil:
    """gjson's unescape; out needs n bytes (the result is never longer)."""
    cdef Py_ssize_t i = 0, m = 0
    cdef int r, r2
    cdef unsigned char c
    while i < n:
        c = s[i]
        if c < 32:
            return m
        if c != 92:
            out[m] = c
            m += 1
            i += 1
            continue
        i += 1
        if i >= n:
            return m
        c = s[i]
        if c == 92 or c == 47 or c == 34:
            out[m] = c
        elif c == 98:
            out[m] = 8
        elif c == 102:
            out[m] = 12
        elif c == 110:
            out[m] = 10
        elif c == 114:
            out[m] = 13
        elif c == 116:
            out[m] = 9
        elif c == 117:
            if i + 5 > n:
                return m
            r = _runeit(s + i + 1)
            i += 5
            if 0xD800 <= r < 0xE000:
                if n - i >= 6 and s[i] == 92 and s[i + 1] == 117:
                    r2 = _runeit(s + i + 2)
                    if r < 0xDC00 and 0xDC00 <= r2 < 0xE000:
                        r = 0x10000 + ((r - 0xD800) << 10) + (r2 - 0xDC00)
                    else:
                        r = 0xFFFD
                    i += 6
            m += encode_rune(out + m, r)
            continue
        else:
            return m
        m += 1
        i += 1
    return m


cdef bytes unescape_bytes(cstr s, Py_ssize_t n):
    cdef bytes b = PyBytes_FromStringAndSize(NULL, n)
    cdef Py_ssize_t m = unescape_into(s, n, <unsigned char*>PyBytes_AS_STRING(b))
    return b[:m] if m != n else b


cdef cstr keep_unescaped(cstr p, Py_ssize_t n, Py_ssize_t* outn, Arena* arena) except NULL:
    cdef bytes u = unescape_bytes(p, n)
    outn[0] = len(u)
    return arena_keep(arena, u)


cdef int set_string(Res* r, cstr raw, Py_ssize_t rawlen, bint esc, Arena* arena) except -1:
    """Fill r as a String from its raw quoted form (gjson strips the quotes)."""
    r.type = T_STRING
    r.raw = raw
    r.rawlen = rawlen
    if esc:
        r.s = keep_unescaped(raw + 1, rawlen - 2, &r.slen, arena)
    else:
        r.s = raw + 1
        r.slen = rawlen - 2
    return 0


# ---------------------------------------------------------------- Parse

cdef Py_ssize_t _tonum_end(cstr j, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(1, n):
        if j[i] <= 45:
            if j[i] <= 32 or j[i] == 44:
                return i
        elif j[i] == 93 or j[i] == 125:
            return i
    return n


cdef Py_ssize_t _tolit_end(cstr j, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(1, n):
        if j[i] < 97 or j[i] > 122:
            return i
    return n


cdef int _tostr(cstr j, Py_ssize_t n, Res* r, Arena* arena) except -1:
    # gjson's tostr: the lead byte is a quote; an unterminated string keeps it all
    cdef Py_ssize_t i = 1, k, cnt
    cdef bytes u
    r.type = T_STRING
    while i < n:
        if j[i] > 92:
            i += 1
            continue
        if j[i] == 34:
            r.raw, r.rawlen, r.s, r.slen = j, i + 1, j + 1, i - 1
            return 0
        if j[i] == 92:
            i += 1
            while i < n:
                if j[i] > 92:
                    i += 1
                    continue
                if j[i] == 34:
                    if j[i - 1] == 92:
                        cnt = 0
                        k = i - 2
                        while k > 0:
                            if j[k] != 92:
                                break
                            cnt += 1
                            k -= 1
                        if cnt % 2 == 0:
                            i += 1
                            continue
                    r.raw, r.rawlen = j, i + 1
                    u = unescape_bytes(j + 1, i - 1)
                    r.s = arena_keep(arena, u)
                    r.slen = len(u)
                    return 0
                i += 1
            r.raw = j
            r.rawlen = i + 1 if i + 1 < n else i
            u = unescape_bytes(j + 1, i - 1)
            r.s = arena_keep(arena, u)
            r.slen = len(u)
            return 0
        i += 1
    r.raw, r.rawlen, r.s, r.slen = j, n, j + 1, n - 1
    return 0


cdef int parse_value(cstr j, Py_ssize_t n, Res* r, Arena* arena) except -1:
    """gjson.Parse: the first value of j (objects and arrays take the rest of j)."""
    cdef Py_ssize_t i = 0, e
    cdef unsigned char c
    res_clear(r)
    while i < n:
        c = j[i]
        if c == 123 or c == 91:
            r.type = T_JSON
            r.raw = j + i
            r.rawlen = n - i
            return 0
        if c <= 32:
            i += 1
            continue
        if c == 43 or c == 45 or 48 <= c <= 57 or c == 105 or c == 73 or c == 78 or \
                (c == 110 and i + 1 < n and j[i + 1] != 117):
            e = _tonum_end(j + i, n - i)
            r.type = T_NUMBER
            r.raw = j + i
            r.rawlen = e
            r.num = go_parse_float(j + i, e)
        elif c == 110 or c == 116 or c == 102:
            r.type = T_NULL if c == 110 else (T_TRUE if c == 116 else T_FALSE)
            r.raw = j + i
            r.rawlen = _tolit_end(j + i, n - i)
        elif c == 34:
            _tostr(j + i, n - i, r, arena)
        else:
            res_clear(r)
        return 0
    return 0


# ---------------------------------------------------------------- wildcard match

cdef int decode_rune(cstr s, Py_ssize_t n, Py_ssize_t* size) noexcept nogil:
    """utf8.DecodeRune: (RuneError, 1) for invalid input, (RuneError, 0) when empty."""
    cdef unsigned char c0, c1, c2, c3
    if n <= 0:
        size[0] = 0
        return 0xFFFD
    c0 = s[0]
    size[0] = 1
    if c0 < 0x80:
        return c0
    if c0 < 0xC2 or c0 > 0xF4:
        return 0xFFFD
    if n < 2:
        return 0xFFFD
    c1 = s[1]
    if c0 < 0xE0:
        if c1 & 0xC0 != 0x80:
            return 0xFFFD
        size[0] = 2
        return ((c0 & 0x1F) << 6) | (c1 & 0x3F)
    if c0 == 0xE0 and c1 < 0xA0 or c0 == 0xED and c1 > 0x9F or \
            c0 == 0xF0 and c1 < 0x90 or c0 == 0xF4 and c1 > 0x8F or c1 & 0xC0 != 0x80:
        return 0xFFFD
    if n < 3:
        return 0xFFFD
    c2 = s[2]
    if c2 & 0xC0 != 0x80:
        return 0xFFFD
    if c0 < 0xF0:
        size[0] = 3
        return ((c0 & 0x0F) << 12) | ((c1 & 0x3F) << 6) | (c2 & 0x3F)
    if n < 4:
        return 0xFFFD
    c3 = s[3]
    if c3 & 0xC0 != 0x80:
        return 0xFFFD
    size[0] = 4
    return ((c0 & 0x07) << 18) | ((c1 & 0x3F) << 12) | ((c2 & 0x3F) << 6) | (c3 & 0x3F)


cdef int decode_last_rune(cstr s, Py_ssize_t n, Py_ssize_t* size) noexcept nogil:
    cdef Py_ssize_t start, lim, sz
    cdef int r
    if n <= 0:
        size[0] = 0
        return 0xFFFD
    start = n - 1
    if s[start] < 0x80:
        size[0] = 1
        return s[start]
    lim = n - 4
    if lim < 0:
        lim = 0
    start -= 1
    while start >= lim:
        if s[start] & 0xC0 != 0x80:
            break
        start -= 1
    if start < 0:
        start = 0
    r = decode_rune(s + start, n - start, &sz)
    if start + sz != n:
        size[0] = 1
        return 0xFFFD
    size[0] = sz
    return r


cdef enum:
    M_NOMATCH = 0
    M_MATCH = 1
    M_STOP = 2


cdef int _match(cstr s, Py_ssize_t sn, cstr p, Py_ssize_t pn, Py_ssize_t slen,
                Py_ssize_t* counter) noexcept nogil:
    cdef bint wild
    cdef int pc, sc, r
    cdef Py_ssize_t ps, ss, k
    cdef bint esc, trim_ok
    if counter[0] > slen * 10000:
        return M_STOP
    counter[0] += 1
    while pn > 0:
        wild = False
        pc = p[0]
        ps = 1
        if pc > 0x7F:
            pc = decode_rune(p, pn, &ps)
        sc = 0
        ss = 0
        if sn > 0:
            sc = s[0]
            ss = 1
            if sc > 0x7F:
                sc = decode_rune(s, sn, &ss)
        if pc == 63:    # ?
            if ss == 0:
                return M_NOMATCH
        elif pc == 42:  # *
            while pn > 1 and p[1] == 42:
                p += 1
                pn -= 1
            if pn == 1:
                return M_MATCH
            # matchTrimSuffix: peel literal runes off both tails
            trim_ok = True
            while sn > 0 and pn > 1:
                pc = decode_last_rune(p, pn, &ps)
                esc = False
                k = 0
                while True:
                    if p[pn - ps - k - 1] != 92:
                        if k & 1:
                            esc = True
                            ps += 1
                        break
                    k += 1
                if pc == 42 and not esc:
                    trim_ok = True
                    break
                sc = decode_last_rune(s, sn, &ss)
                if not ((pc == 63 and not esc) or pc == sc):
                    trim_ok = False
                    break
                sn -= ss
                pn -= ps
            if not trim_ok:
                return M_NOMATCH
            if pn == 1:
                return M_MATCH
            r = _match(s, sn, p + 1, pn - 1, slen, counter)
            if r != M_NOMATCH:
                return r
            if sn == 0:
                return M_NOMATCH
            wild = True
            sc = s[0]
            ss = 1
            if sc > 0x7F:
                sc = decode_rune(s, sn, &ss)
        else:
            if ss == 0:
                return M_NOMATCH
            if pc == 92:
                p += ps
                pn -= ps
                pc = decode_rune(p, pn, &ps)
                if ps == 0:
                    return M_NOMATCH
            if sc != pc:
                return M_NOMATCH
        s += ss
        sn -= ss
        if not wild:
            p += ps
            pn -= ps
    return M_MATCH if sn == 0 else M_NOMATCH


cdef bint match_limit(cstr s, Py_ssize_t sn, cstr p, Py_ssize_t pn) noexcept nogil:
    """match.MatchLimit(s, p, 10000): '*' and '?' wildcards, bounded work."""
    cdef Py_ssize_t counter = 0
    if pn == 1 and p[0] == 42:
        return True
    return _match(s, sn, p, pn, sn, &counter) == M_MATCH

