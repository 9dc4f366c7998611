# Included by _gjson.pyx: the parts of the language that build new JSON (modifiers,
# '!' literals, '[a,b]' and '{a,b}' multipaths).  They allocate by nature, so they
# are written with Python bytes; the scanning underneath is still the C code.

from decimal import Decimal as _Decimal

# Modifiers that rebuild every level of a document recurse in C; past this nesting
# depth they raise RecursionError instead of risking the C stack (path lookups and
# valid() are iterative and have no such limit).
cdef Py_ssize_t MAX_NESTING = 2000


cdef int _enter(Py_ssize_t depth) except -1:
    if depth > MAX_NESTING:
        raise RecursionError(f"gjson: document nested deeper than {MAX_NESTING} levels")
    return 0

cdef bytes _EMPTY = b""


cdef bytes _span_bytes(cstr p, Py_ssize_t n):
    if n <= 0:
        return _EMPTY
    return PyBytes_FromStringAndSize(<const char*>p, n)


cdef bytes go_format_float(double v):
    """strconv.FormatFloat(v, 'f', -1, 64)."""
    cdef str s
    if v != v:
        return b"NaN"
    if v == float("inf"):
        return b"+Inf"
    if v == float("-inf"):
        return b"-Inf"
    s = format(_Decimal(repr(v)), "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    if s == "-0" or s == "0":
        s = "-0" if repr(v).startswith("-") else "0"
    return s.encode()


cdef bytes go_string_of(const Res* r):
    """Result.String() as bytes."""
    cdef Py_ssize_t k
    if r.type == T_FALSE:
        return b"false"
    if r.type == T_TRUE:
        return b"true"
    if r.type == T_STRING:
        return _span_bytes(r.s, r.slen)
    if r.type == T_JSON:
        return _span_bytes(r.raw, r.rawlen)
    if r.type == T_NUMBER:
        if r.rawlen == 0:
            return go_format_float(r.num)
        k = 1 if r.raw[0] == 45 else 0
        while k < r.rawlen:
            if r.raw[k] < 48 or r.raw[k] > 57:
                return go_format_float(r.num)
            k += 1
        return _span_bytes(r.raw, r.rawlen)
    return _EMPTY


# A result held in Python objects (the modifiers' _V, the public Result): gjson's
# Result.String() and Result.Bool() on its fields, written once for both.

cdef bytes held_string(int type, bytes raw, bytes s, double num):
    cdef Res r
    res_clear(&r)
    r.type = type
    r.raw = <cstr>PyBytes_AS_STRING(raw)
    r.rawlen = len(raw)
    r.s = <cstr>PyBytes_AS_STRING(s)
    r.slen = len(s)
    r.num = num
    return go_string_of(&r)


cdef bint held_bool(int type, bytes s, double num) noexcept:
    if type == T_TRUE:
        return True
    if type == T_STRING:
        return _go_bool_word(<cstr>PyBytes_AS_STRING(s), len(s)) == 1
    if type == T_NUMBER:
        return num != 0
    return False


cdef class _V:
    """A parsed value held in Python (modifiers only): gjson's Result fields."""
    cdef public int type
    cdef public bytes raw
    cdef public bytes s
    cdef public double num

    cdef bint exists(self):
        return self.type != T_NULL or len(self.raw) != 0

    cdef bytes string(self):
        return held_string(self.type, self.raw, self.s, self.num)

    cdef bint boolean(self):
        return held_bool(self.type, self.s, self.num)

    cdef bint is_array(self):
        return self.type == T_JSON and len(self.raw) > 0 and self.raw[0] == 91

    cdef bint is_object(self):
        return self.type == T_JSON and len(self.raw) > 0 and self.raw[0] == 123


cdef _V _v_of(const Res* r):
    cdef _V v = _V.__new__(_V)
    v.type = r.type
    v.raw = _span_bytes(r.raw, r.rawlen)
    v.s = _span_bytes(r.s, r.slen) if r.type == T_STRING else _EMPTY
    v.num = r.num
    return v


cdef _V _parse_v(bytes json):
    cdef Arena arena
    cdef Res r
    arena.items = NULL
    try:
        parse_value(<cstr>PyBytes_AS_STRING(json), len(json), &r, &arena)
        return _v_of(&r)
    finally:
        arena_release(&arena)


cdef _V _get_v(bytes json, bytes path):
    cdef Arena arena
    cdef Res r
    arena.items = NULL
    try:
        eval_path(<cstr>PyBytes_AS_STRING(json), len(json), <cstr>PyBytes_AS_STRING(path),
            len(path), &r, &arena)
        return _v_of(&r)
    finally:
        arena_release(&arena)


cdef _V _get_v_at(cstr j, Py_ssize_t n, bytes path):
    cdef Arena arena
    cdef Res r
    arena.items = NULL
    try:
        eval_path(j, n, <cstr>PyBytes_AS_STRING(path), len(path), &r, &arena)
        return _v_of(&r)
    finally:
        arena_release(&arena)


cdef list _foreach(_V t):
    """Result.ForEach as a list of (key, value); key is None for array items."""
    cdef list out = []
    cdef bytes json
    cdef cstr j
    cdef Py_ssize_t n, i = 0, s, e
    cdef bint obj = False, esc, ok
    cdef Arena arena
    cdef Res kr, vr
    cdef _V key = None
    if not t.exists():
        return out
    if t.type != T_JSON:
        out.append((None, t))
        return out
    json = t.raw
    j = <cstr>PyBytes_AS_STRING(json)
    n = len(json)
    while i < n:
        if j[i] == 123:
            i += 1
            obj = True
            break
        if j[i] == 91:
            i += 1
            break
        if j[i] > 32:
            return out
        i += 1
    arena.items = NULL
    try:
        while i < n:
            if obj:
                if j[i] != 34:
                    i += 1
                    continue
                s = i
                i = parse_string(j, n, i + 1, &esc, &ok)
                if not ok:
                    return out
                res_clear(&kr)
                set_string(&kr, j + s, i - s, esc, &arena)
                key = _v_of(&kr)
            while i < n and (j[i] <= 32 or j[i] == 44 or j[i] == 58):
                i += 1
            if not parse_any(j, n, i, &vr, &e, &arena):
                return out
            i = e
            out.append((key, _v_of(&vr)))
            # gjson's loop increments past the byte that ended the value
            i += 1
    finally:
        arena_release(&arena)
    return out


cdef bytes append_json_string(bytes s):
    """gjson.AppendJSONString: a JSON string literal as gjson writes it."""
    cdef bytearray dst = bytearray(b'"')
    cdef Py_ssize_t i = 0, n = len(s), sz
    cdef int r, c
    cdef cstr p = <cstr>PyBytes_AS_STRING(s)
    while i < n:
        c = p[i]
        if c < 32:
            if c == 10:
                dst += b"\\n"
            elif c == 13:
                dst += b"\\r"
            elif c == 9:
                dst += b"\\t"
            elif c == 8:
                dst += b"\\b"
            elif c == 12:
                dst += b"\\f"
            else:
                dst += b"\\u%04x" % c
        elif c == 62 or c == 60 or c == 38:
            dst += b"\\u%04x" % c
        elif c == 92:
            dst += b"\\\\"
        elif c == 34:
            dst += b'\\"'
        elif c > 127:
            r = decode_rune(p + i, n - i, &sz)
            if r == 0xFFFD and sz == 1:
                dst += b"\\ufffd"
            elif r == 0x2028 or r == 0x2029:
                dst += b"\\u202" + (b"%x" % (r & 0xF))
            else:
                dst += p[i:i + sz]
            i += sz
            continue
        else:
            dst.append(c)
        i += 1
    dst.append(34)
    return bytes(dst)


cdef bytes _trim(bytes s):
    cdef Py_ssize_t a = 0, b = len(s)
    while a < b and s[a] <= 32:
        a += 1
    while b > a and s[b - 1] <= 32:
        b -= 1
    return s[a:b]


cdef bytes _unwrap(bytes json):
    json = _trim(json)
    if len(json) >= 2 and (json[0] == 91 or json[0] == 123):
        json = json[1:len(json) - 1]
    return json


cdef bytes _ugly(bytes src):
    cdef bytearray dst = bytearray()
    cdef Py_ssize_t i = 0, n = len(src), k
    cdef cstr p = <cstr>PyBytes_AS_STRING(src)
    while i < n:
        if p[i] > 32:
            dst.append(p[i])
            if p[i] == 34:
                i += 1
                while i < n:
                    dst.append(p[i])
                    if p[i] == 34:
                        k = i - 1
                        while p[k] == 92:
                            k -= 1
                        if (k - i) % 2 != 0:
                            break
                    i += 1
        i += 1
    return bytes(dst)


# tidwall/pretty's layout: arrays that fit in the width stay on one line.

cdef class _Pretty:
    cdef bytes json
    cdef bytearray buf
    cdef Py_ssize_t width
    cdef bytes prefix
    cdef bytes indent
    cdef Py_ssize_t depth

    cdef void tabs(self, Py_ssize_t t):
        if self.prefix:
            self.buf += self.prefix
        self.buf += self.indent * t

    cdef tuple any(self, Py_ssize_t i, bint pretty, bint sortkeys, Py_ssize_t tabs,
                   Py_ssize_t nl, Py_ssize_t mx, bytes indent):
        cdef bytes json = self.json
        cdef Py_ssize_t n = len(json)
        cdef int c
        while i < n:
            c = json[i]
            if c <= 32:
                i += 1
                continue
            if c == 34:
                return self.string(i, nl)
            if 48 <= c <= 57 or c == 45 or _nan_or_inf(json, i, c):
                return self.number(i, nl)
            if c == 123 or c == 91:
                return self.obj(i, c, 125 if c == 123 else 93, pretty, sortkeys, tabs, nl,
                                mx, indent)
            if c == 116:
                self.buf += b"true"
                return i + 4, nl, True
            if c == 102:
                self.buf += b"false"
                return i + 5, nl, True
            if c == 110:
                self.buf += b"null"
                return i + 4, nl, True
            i += 1
        return i, nl, True

    cdef tuple string(self, Py_ssize_t i, Py_ssize_t nl):
        cdef bytes json = self.json
        cdef Py_ssize_t s = i, n = len(json), k, sc
        i += 1
        while i < n:
            if json[i] == 34:
                sc = 0
                k = i - 1
                while k > s:
                    if json[k] == 92:
                        sc += 1
                    else:
                        break
                    k -= 1
                if sc % 2 == 1:
                    i += 1
                    continue
                i += 1
                break
            i += 1
        self.buf += json[s:i]
        return i, nl, True

    cdef tuple number(self, Py_ssize_t i, Py_ssize_t nl):
        cdef bytes json = self.json
        cdef Py_ssize_t s = i, n = len(json)
        i += 1
        while i < n:
            if json[i] <= 32 or json[i] in (44, 58, 93, 125):
                break
            i += 1
        self.buf += json[s:i]
        return i, nl, True

    cdef void newline(self):
        if self.buf and self.buf[len(self.buf) - 1] == 32:
            self.buf[len(self.buf) - 1] = 10
        else:
            self.buf.append(10)

    cdef tuple obj(self, Py_ssize_t i, int open_, int close, bint pretty, bint sortkeys,
                   Py_ssize_t tabs, Py_ssize_t nl, Py_ssize_t mx, bytes indent):
        self.depth += 1
        try:
            _enter(self.depth)
            return self._obj(i, open_, close, pretty, sortkeys, tabs, nl, mx, indent)
        finally:
            self.depth -= 1

    cdef tuple _obj(self, Py_ssize_t i, int open_, int close, bint pretty, bint sortkeys,
                    Py_ssize_t tabs, Py_ssize_t nl, Py_ssize_t mx, bytes indent):
        cdef bytes json = self.json
        cdef Py_ssize_t n = len(json), s1, s2, cnt = 0, m, kstart = 0, kend = 0
        cdef Py_ssize_t vstart = 0, vend
        cdef bint ok
        cdef list pairs = None
        cdef tuple t
        if self.width > 0:
            if pretty and open_ == 91 and mx == -1:
                m = self.width - (len(self.buf) - nl)
                if m > 3:
                    s1, s2 = len(self.buf), i
                    t = self.obj(i, 91, 93, False, sortkeys, 0, 0, m, b"")
                    i, _, ok = t
                    if ok and len(self.buf) - s1 <= m:
                        return i, nl, True
                    del self.buf[s1:]
                    i = s2
            elif mx != -1 and open_ == 123:
                return i, nl, False
        self.buf.append(open_)
        i += 1
        if open_ == 123 and sortkeys:
            pairs = []
        while i < n:
            if json[i] <= 32:
                i += 1
                continue
            if json[i] == close:
                if pretty:
                    if open_ == 123 and sortkeys:
                        self.sort_pairs(pairs)
                    if cnt > 0:
                        nl = len(self.buf)
                        self.newline()
                    if self.buf[len(self.buf) - 1] != open_:
                        self.tabs(tabs)
                self.buf.append(close)
                return i + 1, nl, open_ != 123
            if open_ == 91 or json[i] == 34:
                if cnt > 0:
                    self.buf.append(44)
                    if self.width != -1 and open_ == 91:
                        self.buf.append(32)
                if pretty:
                    nl = len(self.buf)
                    self.newline()
                    if open_ == 123 and sortkeys:
                        kstart = i
                        vstart = len(self.buf)
                    self.tabs(tabs + 1)
                if open_ == 123:
                    i, nl, _ = self.string(i, nl)
                    if sortkeys:
                        kend = i
                    self.buf.append(58)
                    if pretty:
                        self.buf.append(32)
                i, nl, ok = self.any(i, pretty, sortkeys, tabs + 1, nl, mx, indent)
                if mx != -1 and not ok:
                    return i, nl, False
                if pretty and open_ == 123 and sortkeys:
                    vend = len(self.buf)
                    if kstart > kend or vstart > vend:
                        sortkeys = False
                    else:
                        pairs.append((kstart, kend, vstart, vend))
                cnt += 1
                continue
            i += 1
        return i, nl, open_ != 123

    cdef void sort_pairs(self, list pairs):
        cdef bytes json = self.json, key, value
        cdef list items = []
        cdef bytearray nbuf
        cdef Py_ssize_t vstart, k
        cdef int vtype
        if not pairs:
            return
        vstart = pairs[0][2]
        for p in pairs:
            key = json[p[0]:p[1]]
            value = _go_trim_space(bytes(self.buf[p[2]:p[3]]))
            if len(value) >= len(key) + 1:
                value = _go_trim_space(value[len(key) + 1:])
            vtype = _pretty_type(value)
            items.append((_pretty_str(key), vtype,
                          _pretty_str(value) if vtype == _J_STRING else
                          go_parse_float(<cstr>PyBytes_AS_STRING(value), len(value))
                          if vtype == _J_NUMBER else value, p))
        _go_stable_sort(items)
        if all(items[k][3] is pairs[k] for k in range(len(items))):
            return
        nbuf = bytearray()
        for k, item in enumerate(items):
            p = item[3]
            nbuf += self.buf[p[2]:p[3]]
            if k < len(items) - 1:
                nbuf += b",\n"
        del self.buf[vstart:]
        self.buf += nbuf


cdef inline bint _nan_or_inf(bytes json, Py_ssize_t i, int c):
    # tidwall/pretty 1.2 copies NaN, Inf, +Inf and nan as numbers ("nu" starts null)
    return (c == 105 or c == 73 or c == 43 or c == 78 or
            c == 110 and i + 1 < len(json) and json[i + 1] != 117)


# tidwall/pretty 1.2 orders an object's pairs by key, equal keys by value: null <
# false < number < string < true < JSON, strings compared unescaped, numbers as
# floats, the rest as bytes.  NaN makes that order partial, and then the outcome
# depends on the algorithm, so Go's sort.Stable (insertion sort of blocks of 20,
# then SymMerge) is followed comparison for comparison.

cdef enum:
    _J_NULL
    _J_FALSE
    _J_NUMBER
    _J_STRING
    _J_TRUE
    _J_JSON


cdef int _pretty_type(bytes v):
    if not v:
        return _J_NULL
    c = v[0]
    if c == 34:
        return _J_STRING
    if c == 102:
        return _J_FALSE
    if c == 116:
        return _J_TRUE
    if c == 110:
        return _J_NULL
    if c == 91 or c == 123:
        return _J_JSON
    return _J_NUMBER


cdef bytes _pretty_str(bytes s):
    # the string up to its first quote; with an escape, what encoding/json decodes
    cdef Py_ssize_t i
    for i in range(1, len(s)):
        if s[i] == 92:
            return _go_json_unquote(s)
        if s[i] == 34:
            return s[1:i]
    return _EMPTY


cdef bytes _go_json_unquote(bytes s):
    """json.Unmarshal of s into a Go string; empty unless s is one JSON string."""
    cdef Py_ssize_t i = 1, n = len(s), sz
    cdef cstr p = <cstr>PyBytes_AS_STRING(s)
    cdef bytearray out = bytearray()
    cdef unsigned char rune[4]
    cdef int c, r, r2
    if n < 2 or p[0] != 34:
        return _EMPTY
    while True:
        if i >= n:
            return _EMPTY
        c = p[i]
        if c == 34:
            break
        if c < 32:
            return _EMPTY
        if c == 92:
            if i + 1 >= n:
                return _EMPTY
            c = p[i + 1]
            if c == 117:
                r = _hex4(p, n, i + 2)
                if r < 0:
                    return _EMPTY
                i += 6
                if 0xD800 <= r < 0xE000:
                    # a surrogate pairs with a following \uDC00-\uDFFF or is U+FFFD
                    r2 = _hex4(p, n, i + 2) if i + 1 < n and p[i] == 92 and p[i + 1] == 117 \
                        else -1
                    if r < 0xDC00 and 0xDC00 <= r2 < 0xE000:
                        r = 0x10000 + ((r - 0xD800) << 10) + (r2 - 0xDC00)
                        i += 6
                    else:
                        r = 0xFFFD
                out += PyBytes_FromStringAndSize(<char*>rune, encode_rune(rune, r))
                continue
            if c == 98:
                c = 8
            elif c == 102:
                c = 12
            elif c == 110:
                c = 10
            elif c == 114:
                c = 13
            elif c == 116:
                c = 9
            elif c not in b'"\\/':
                return _EMPTY
            out.append(c)
            i += 2
        elif c < 128:
            out.append(c)
            i += 1
        else:
            r = decode_rune(p + i, n - i, &sz)
            if r == 0xFFFD and sz == 1:
                out += b"\xef\xbf\xbd"
            else:
                out += p[i:i + sz]
            i += sz
    for c in s[i + 1:]:
        if c not in b" \t\n\r":
            return _EMPTY
    return bytes(out)


cdef int _hex4(cstr p, Py_ssize_t n, Py_ssize_t i):
    cdef int r = 0, h, k
    if i + 4 > n:
        return -1
    for k in range(4):
        h = hex_digit(p[i + k])
        if h < 0:
            return -1
        r = r * 16 + h
    return r


cdef bytes _go_trim_space(bytes s):
    # bytes.TrimSpace: ASCII white space and the Unicode White_Space runes
    cdef Py_ssize_t a = 0, b = len(s), sz
    cdef cstr p = <cstr>PyBytes_AS_STRING(s)
    while a < b:
        if p[a] in b" \t\n\v\f\r":
            a += 1
        elif p[a] >= 0x80 and _is_go_space(decode_rune(p + a, b - a, &sz)):
            a += sz
        else:
            break
    while b > a:
        if p[b - 1] in b" \t\n\v\f\r":
            b -= 1
        elif p[b - 1] >= 0x80 and _is_go_space(decode_last_rune(p + a, b - a, &sz)):
            b -= sz
        else:
            break
    return s[a:b]


cdef inline bint _is_go_space(int r):
    return (r == 0x85 or r == 0xA0 or r == 0x1680 or 0x2000 <= r <= 0x200A or
            r == 0x2028 or r == 0x2029 or r == 0x202F or r == 0x205F or r == 0x3000)


cdef inline bint _pair_less(list xs, Py_ssize_t i, Py_ssize_t j):
    cdef tuple a = <tuple>xs[i]
    cdef tuple b = <tuple>xs[j]
    if a[0] != b[0]:
        return a[0] < b[0]
    if a[1] != b[1]:
        return a[1] < b[1]
    return a[2] < b[2]


cdef inline void _swap(list xs, Py_ssize_t i, Py_ssize_t j):
    xs[i], xs[j] = xs[j], xs[i]


cdef void _insertion_sort(list xs, Py_ssize_t a, Py_ssize_t b):
    cdef Py_ssize_t i, j
    for i in range(a + 1, b):
        j = i
        while j > a and _pair_less(xs, j, j - 1):
            _swap(xs, j, j - 1)
            j -= 1


cdef void _swap_range(list xs, Py_ssize_t a, Py_ssize_t b, Py_ssize_t n):
    cdef Py_ssize_t k
    for k in range(n):
        _swap(xs, a + k, b + k)


cdef void _rotate(list xs, Py_ssize_t a, Py_ssize_t m, Py_ssize_t b):
    # blocks xs[a:m] and xs[m:b] trade places by block swaps
    cdef Py_ssize_t i = m - a, j = b - m
    while i != j:
        if i > j:
            _swap_range(xs, m - i, m, j)
            i -= j
        else:
            _swap_range(xs, m - i, m + j - i, i)
            j -= i
    _swap_range(xs, m - i, m, i)


cdef void _sym_merge(list xs, Py_ssize_t a, Py_ssize_t m, Py_ssize_t b):
    # merges the sorted runs xs[a:m] and xs[m:b] (Kim and Kutzner's SymMerge)
    cdef Py_ssize_t i, j, h, k, mid, n, start, r, c, p, end
    if m - a == 1:
        i, j = m, b
        while i < j:
            h = (i + j) >> 1
            if _pair_less(xs, h, a):
                i = h + 1
            else:
                j = h
        for k in range(a, i - 1):
            _swap(xs, k, k + 1)
        return
    if b - m == 1:
        i, j = a, m
        while i < j:
            h = (i + j) >> 1
            if not _pair_less(xs, m, h):
                i = h + 1
            else:
                j = h
        k = m
        while k > i:
            _swap(xs, k, k - 1)
            k -= 1
        return
    mid = (a + b) >> 1
    n = mid + m
    if m > mid:
        start, r = n - b, mid
    else:
        start, r = a, m
    p = n - 1
    while start < r:
        c = (start + r) >> 1
        if not _pair_less(xs, p - c, c):
            start = c + 1
        else:
            r = c
    end = n - start
    if start < m < end:
        _rotate(xs, start, m, end)
    if a < start < mid:
        _sym_merge(xs, a, start, mid)
    if mid < end < b:
        _sym_merge(xs, mid, end, b)


cdef void _go_stable_sort(list xs):
    cdef Py_ssize_t n = len(xs), block = 20, a, b
    a, b = 0, block
    while b <= n:
        _insertion_sort(xs, a, b)
        a = b
        b += block
    _insertion_sort(xs, a, n)
    while block < n:
        a, b = 0, 2 * block
        while b <= n:
            _sym_merge(xs, a, a + block, b)
            a = b
            b += 2 * block
        if a + block < n:
            _sym_merge(xs, a, a + block, n)
        block *= 2


cdef bytes _clean_ws(bytes s):
    return bytes(c for c in s if c in b" \t\n\r")


cdef bytes _mod_pretty(bytes json, bytes arg):
    cdef _Pretty p = _Pretty.__new__(_Pretty)
    cdef bint sortkeys = False
    cdef _V key, value
    p.json = json
    p.buf = bytearray()
    p.width = 80
    p.prefix = b""
    p.indent = b"  "
    if arg:
        for key, value in _foreach(_parse_v(arg)):
            k = key.string() if key is not None else b""
            if k == b"sortKeys":
                sortkeys = value.boolean()
            elif k == b"indent":
                p.indent = _clean_ws(value.string())
            elif k == b"prefix":
                p.prefix = _clean_ws(value.string())
            elif k == b"width":
                p.width = _go_int(value)
    if p.prefix:
        p.buf += p.prefix
    p.any(0, True, sortkeys, 0, 0, -1, p.indent)
    if p.buf:
        p.buf.append(10)
    return bytes(p.buf)


cdef Py_ssize_t _go_int(_V v):
    # Result.Int(): integers parse exactly, others truncate the float
    if v.type == T_TRUE:
        return 1
    if v.type == T_STRING:
        try:
            return int(v.s)
        except ValueError:
            try:
                return int(float(v.s))
            except (ValueError, OverflowError):
                return 0
    if v.type == T_NUMBER:
        try:
            return int(v.raw)
        except ValueError:
            if v.num != v.num or v.num in (float("inf"), float("-inf")):
                return 0
            return int(v.num)
    return 0


cdef bytes _mod_reverse(bytes json):
    cdef _V res = _parse_v(json)
    cdef list items
    if res.is_array():
        items = [v.raw for _, v in _foreach(res)]
        items.reverse()
        return b"[" + b",".join(items) + b"]"
    if res.is_object():
        items = [(<_V>k).raw + b":" + (<_V>v).raw for k, v in _foreach(res)]
        items.reverse()
        return b"{" + b",".join(items) + b"}"
    return json


cdef bytes _mod_flatten(bytes json, bytes arg, Py_ssize_t depth=0):
    cdef _V res = _parse_v(json)
    cdef bint deep = False
    cdef list out = []
    cdef bytes raw
    if not res.is_array():
        return json
    if arg:
        for key, value in _foreach(_parse_v(arg)):
            if key is not None and (<_V>key).string() == b"deep":
                deep = (<_V>value).boolean()
    for _, value in _foreach(res):
        if (<_V>value).is_array():
            if deep:
                _enter(depth + 1)
                raw = _unwrap(_mod_flatten((<_V>value).raw, arg, depth + 1))
            else:
                raw = _unwrap((<_V>value).raw)
        else:
            raw = (<_V>value).raw
        raw = raw.strip(b" \t\n\r\x0b\x0c")
        if raw:
            out.append(raw)
    return b"[" + b",".join(out) + b"]"


cdef bytes _mod_keys(bytes json):
    cdef _V v = _parse_v(json)
    if not v.exists():
        return b"[]"
    obj = v.is_object()
    return b"[" + b",".join([(<_V>k).raw if obj else b"null" for k, _ in _foreach(v)]) + b"]"


cdef bytes _mod_values(bytes json):
    cdef _V v = _parse_v(json)
    if not v.exists():
        return b"[]"
    if v.is_array():
        return json
    return b"[" + b",".join([(<_V>val).raw for _, val in _foreach(v)]) + b"]"


cdef bytes _mod_join(bytes json, bytes arg):
    cdef _V res = _parse_v(json)
    cdef bint preserve = False
    cdef list out = []
    cdef list keys = []
    cdef dict kvals = {}
    if not res.is_array():
        return json
    if arg:
        for key, value in _foreach(_parse_v(arg)):
            if key is not None and (<_V>key).string() == b"preserve":
                preserve = (<_V>value).boolean()
    for _, value in _foreach(res):
        if not (<_V>value).is_object():
            continue
        if preserve:
            out.append(_unwrap((<_V>value).raw))
        else:
            for k, v in _foreach(value):
                ks = (<_V>k).string()
                if ks not in kvals:
                    keys.append(k)
                kvals[ks] = v
    if not preserve:
        out = [(<_V>k).raw + b":" + (<_V>kvals[(<_V>k).string()]).raw for k in keys]
    return b"{" + b",".join(out) + b"}"


cdef bytes _mod_group(bytes json):
    cdef _V res = _parse_v(json)
    cdef list all_ = []
    cdef Py_ssize_t idx
    if not res.is_object():
        return b""
    for key, value in _foreach(res):
        if not (<_V>value).is_array():
            continue
        idx = 0
        for _, item in _foreach(value):
            if idx == len(all_):
                all_.append(bytearray())
            all_[idx] += b"," + (<_V>key).raw + b":" + (<_V>item).raw
            idx += 1
    return b"[" + b",".join([b"{" + bytes(item[1:]) + b"}" for item in all_]) + b"]"


cdef int _dig(list acc, _V parent, bytes path, Py_ssize_t depth) except -1:
    cdef _V res = _get_v(parent.raw, path)
    if res.exists():
        acc.append(res.raw)
    if parent.is_array() or parent.is_object():
        _enter(depth + 1)
        for _, val in _foreach(parent):
            _dig(acc, val, path, depth + 1)
    return 0


cdef bytes _mod_dig(bytes json, bytes arg):
    cdef list acc = []
    _dig(acc, _parse_v(json), arg, 0)
    return b"[" + b",".join(acc) + b"]"


cdef bint _valid_bytes(bytes b):
    return c_valid(PyBytes_AS_STRING(b), len(b))


cdef bytes _run_modifier(bytes name, bytes json, bytes arg):
    if name == b"pretty":
        return _mod_pretty(json, arg)
    if name == b"ugly":
        return _ugly(json)
    if name == b"reverse":
        return _mod_reverse(json)
    if name == b"this":
        return json
    if name == b"flatten":
        return _mod_flatten(json, arg)
    if name == b"join":
        return _mod_join(json, arg)
    if name == b"valid":
        return json if _valid_bytes(json) else b""
    if name == b"keys":
        return _mod_keys(json)
    if name == b"values":
        return _mod_values(json)
    if name == b"tostr":
        return append_json_string(json)
    if name == b"fromstr":
        if not _valid_bytes(json):
            return b""
        return _parse_v(json).string()
    if name == b"group":
        return _mod_group(json)
    if name == b"dig":
        return _mod_dig(json, arg)
    return None


cdef object exec_modifier(cstr j, Py_ssize_t n, cstr path, Py_ssize_t pn):
    """'@name[:args]': (output json, offset of the rest of path) or None."""
    cdef Py_ssize_t i, name_end = pn, rest = pn, a_end
    cdef bint has_args = False, parsed = False
    cdef bytes args = _EMPTY, out
    cdef Res probe
    cdef Arena arena
    for i in range(1, pn):
        if path[i] == 58:
            name_end = i
            rest = i + 1
            has_args = rest < pn
            break
        if path[i] == 124 or path[i] == 46:
            name_end = i
            rest = i
            break
    if not is_modifier_name(path + 1, name_end - 1):
        return None
    if has_args:
        if path[rest] == 123 or path[rest] == 91 or path[rest] == 34:
            arena.items = NULL
            try:
                parse_value(path + rest, pn - rest, &probe, &arena)
                if res_exists(&probe):
                    a_end = _squash_len(path + rest, pn - rest)
                    args = _span_bytes(path + rest, a_end)
                    rest += a_end
                    parsed = True
            finally:
                arena_release(&arena)
        if not parsed:
            # a simple argument runs to the next '|' outside brackets, parens and quotes
            a_end = rest
            while a_end < pn and path[a_end] != 124:
                if path[a_end] in b'{["(':
                    a_end += _squash_len(path + a_end, pn - a_end)
                else:
                    a_end += 1
            args = _span_bytes(path + rest, a_end - rest)
            rest = a_end
    out = _run_modifier(_span_bytes(path + 1, name_end - 1), _span_bytes(j, n), args)
    return out, rest


cdef object exec_static(cstr path, Py_ssize_t pn):
    """'!literal': (the literal, offset of the rest of path) or None."""
    cdef cstr name = path + 1
    cdef Py_ssize_t nn = pn - 1, i, e
    cdef Py_ssize_t rest = pn
    cdef bytes low
    if nn > 0 and (name[0] in b'{["+-' or 48 <= name[0] <= 57):
        e = sq_end(parse_squash(name, nn, 0), nn)
        return _span_bytes(name, e), 1 + e
    for i in range(1, pn):
        if path[i] == 124 or path[i] == 46:
            rest = i
            nn = i - 1
            break
    low = _span_bytes(name, nn).lower()
    if low in (b"true", b"false", b"null", b"nan", b"inf"):
        return _span_bytes(name, nn), rest
    return None


cdef bytes _name_of_last(bytes path):
    cdef Py_ssize_t i
    for i in range(len(path) - 1, -1, -1):
        if path[i] == 124 or path[i] == 46:
            if i > 0 and path[i - 1] == 92:
                continue
            return path[i + 1:]
    return path


cdef bint _is_simple_name(bytes comp):
    for c in comp:
        if c < 32 or c in b"[]{}()#|!":
            return False
    return True


cdef object exec_multipath(cstr j, Py_ssize_t n, cstr path, Py_ssize_t pn):
    """'[a,b]' or '{a,"k":b}': (output json, offset of the rest).

    The json is None when gjson does not build one and goes on with the plain path
    from the offset: what follows the closing bracket, or nothing when it never closes.
    """
    cdef Py_ssize_t i = 1, depth = 1, colon = 0, start = 1, modifier = 0
    cdef list sels = []
    cdef int kind = path[0]
    cdef bytes doc, name, sub, raw
    cdef bytearray b
    cdef _V res
    cdef bint found = False
    while i < pn:
        c = path[i]
        if c == 92:
            i += 1
        elif c == 64:
            if modifier == 0 and i > 0 and (path[i - 1] == 46 or path[i - 1] == 124):
                modifier = i
        elif c == 58:
            if modifier == 0 and colon == 0 and depth == 1:
                colon = i
        elif c == 44:
            if depth == 1:
                sels.append((_span_bytes(path + start, colon - start) if colon else None,
                             _span_bytes(path + colon + 1, i - colon - 1) if colon
                             else _span_bytes(path + start, i - start)))
                colon = 0
                modifier = 0
                start = i + 1
        elif c == 34:
            i += 1
            while i < pn:
                if path[i] == 92:
                    i += 1
                elif path[i] == 34:
                    break
                i += 1
        elif c == 91 or c == 40 or c == 123:
            depth += 1
        elif c == 93 or c == 41 or c == 125:
            depth -= 1
            if depth == 0:
                sels.append((_span_bytes(path + start, colon - start) if colon else None,
                             _span_bytes(path + colon + 1, i - colon - 1) if colon
                             else _span_bytes(path + start, i - start)))
                found = True
                break
        i += 1
    if not found:
        return None, pn
    i += 1
    if i < pn and path[i] != 124 and path[i] != 46:
        return None, i
    b = bytearray()
    b.append(kind)
    cnt = 0
    for name, sub in sels:
        res = _get_v_at(j, n, sub)
        if not res.exists():
            continue
        if cnt > 0:
            b.append(44)
        if kind == 123:
            if name:
                if name[0] == 34 and _valid_bytes(name):
                    b += name
                else:
                    b += append_json_string(name)
            else:
                last = _name_of_last(sub)
                b += append_json_string(last if _is_simple_name(last) else b"_")
            b.append(58)
        raw = res.raw
        if not raw:
            raw = res.string() or b"null"
        b += raw
        cnt += 1
    b.append(kind + 2)
    return bytes(b), i
