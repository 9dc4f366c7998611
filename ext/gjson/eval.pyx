# Included by _gjson.pyx: path evaluation, following gjson's Get/parseObject/parseArray
# step by step so that every quirk (lenient parsing, pipes versus dots, queries,
# '#' collections, JSON Lines) gives the same answer on the same bytes.

cdef const char* _TRUE_STR = "true"


cdef enum:
    OP_NONE = 0
    OP_EQ = 1
    OP_NE = 2
    OP_LT = 3
    OP_LE = 4
    OP_GT = 5
    OP_GE = 6
    OP_LIKE = 7
    OP_NLIKE = 8
    OP_OTHER = 9


cdef struct Ctx:
    cstr j
    Py_ssize_t n
    Res value
    Span pipe
    bint piped
    bint calcd
    bint lines
    # '[@this]' in place: the buffer ends with a virtual ']' that gjson's copy has
    # for real; a nested value left open at the end would differ, so it is flagged
    bint virt_end
    bint virt_open
    Arena* arena
    # a SwitchTable's walk (switch.pyx): the query looks values up in it; else NULL
    QTable* table


cdef struct ObjPath:
    Span part
    Span path
    Span pipe
    bint piped
    bint wild
    bint more


cdef struct ArrPath:
    Span part
    Span path
    Span pipe
    bint piped
    bint more
    bint alogok
    bint arrch
    Span alogkey
    bint q_on
    bint q_all
    Span q_path
    # q_path is one plain key (no '.', '|', '\\', no leading '@', '!', '[', '{'):
    # each element is then searched with parse_object_rp directly, as Get would
    bint q_key
    bint q_key_wild
    int q_op
    Span q_value


cdef inline void span_trim(Span* s) noexcept nogil:
    while s.n > 0 and s.p[0] <= 32:
        s.p += 1
        s.n -= 1
    while s.n > 0 and s.p[s.n - 1] <= 32:
        s.n -= 1


cdef bint is_modifier_name(cstr p, Py_ssize_t n) noexcept nogil:
    return (span_eq(p, n, b"pretty") or span_eq(p, n, b"ugly") or
            span_eq(p, n, b"reverse") or span_eq(p, n, b"this") or
            span_eq(p, n, b"flatten") or span_eq(p, n, b"join") or
            span_eq(p, n, b"valid") or span_eq(p, n, b"keys") or
            span_eq(p, n, b"values") or span_eq(p, n, b"tostr") or
            span_eq(p, n, b"fromstr") or span_eq(p, n, b"group") or
            span_eq(p, n, b"dig"))


cdef bint is_dot_piper_char(cstr s, Py_ssize_t n) noexcept nogil:
    """After a dot, '@modifier', '[' and '{' start a new pipe rather than a key."""
    cdef Py_ssize_t i
    if s[0] == 64:
        i = 1
        while i < n:
            if s[i] == 46 or s[i] == 124 or s[i] == 58:
                break
            i += 1
        return is_modifier_name(s + 1, i - 1)
    return s[0] == 91 or s[0] == 123


cdef int _parse_object_path_escaped(cstr p, Py_ssize_t n, Py_ssize_t i, ObjPath* r,
                                    Arena* arena) except -1:
    """The rest of parse_object_path once a backslash shows up: the key is rebuilt
    without its escapes (kept alive by the arena)."""
    cdef bytearray epart
    cdef bytes eb
    epart = bytearray(p[:i])
    i += 1
    if i < n:
        epart.append(p[i])
        i += 1
        while i < n:
            if p[i] == 92:
                i += 1
                if i < n:
                    epart.append(p[i])
                i += 1
                continue
            elif p[i] == 46:
                eb = bytes(epart)
                r.part.p, r.part.n = arena_keep(arena, eb), len(eb)
                if i < n - 1 and is_dot_piper_char(p + i + 1, n - i - 1):
                    r.pipe.p, r.pipe.n = p + i + 1, n - i - 1
                    r.piped = True
                else:
                    r.path.p, r.path.n = p + i + 1, n - i - 1
                    r.more = True
                return 0
            elif p[i] == 124:
                eb = bytes(epart)
                r.part.p, r.part.n = arena_keep(arena, eb), len(eb)
                r.pipe.p, r.pipe.n = p + i + 1, n - i - 1
                r.piped = True
                return 0
            elif p[i] == 42 or p[i] == 63:
                r.wild = True
            epart.append(p[i])
            i += 1
    eb = bytes(epart)
    r.part.p, r.part.n = arena_keep(arena, eb), len(eb)
    return 0


cdef int parse_object_path(cstr p, Py_ssize_t n, ObjPath* r, Arena* arena) except -1:
    cdef Py_ssize_t i = 0
    memset(r, 0, sizeof(ObjPath))
    while i < n:
        if p[i] == 124:
            r.part.p, r.part.n = p, i
            r.pipe.p, r.pipe.n = p + i + 1, n - i - 1
            r.piped = True
            return 0
        if p[i] == 46:
            r.part.p, r.part.n = p, i
            if i < n - 1 and is_dot_piper_char(p + i + 1, n - i - 1):
                r.pipe.p, r.pipe.n = p + i + 1, n - i - 1
                r.piped = True
            else:
                r.path.p, r.path.n = p + i + 1, n - i - 1
                r.more = True
            return 0
        if p[i] == 42 or p[i] == 63:
            r.wild = True
            i += 1
            continue
        if p[i] == 92:
            return _parse_object_path_escaped(p, n, i, r, arena)
        i += 1
    r.part.p, r.part.n = p, n
    return 0


cdef int parse_query(cstr q, Py_ssize_t n, ArrPath* r, Py_ssize_t* fi,
                     Arena* arena) except -1:
    """Split '#(path op value)' into r.q_*; returns 1, or 0 for an unbalanced query."""
    cdef Py_ssize_t i = 2, jv = 0, depth = 1, opsz = 0
    cdef bint vesc = False
    cdef Span value
    cdef unsigned char c
    if n < 2 or q[0] != 35 or (q[1] != 40 and q[1] != 91):
        return 0
    while i < n:
        c = q[i]
        if depth == 1 and jv == 0 and (c == 33 or c == 61 or c == 60 or c == 62 or c == 37):
            jv = i
            i += 1
            continue
        if c == 92:
            i += 1
        elif c == 91 or c == 40:
            depth += 1
        elif c == 93 or c == 41:
            depth -= 1
            if depth == 0:
                break
        elif c == 34:
            i += 1
            while i < n:
                if q[i] == 92:
                    vesc = True
                    i += 1
                elif q[i] == 34:
                    break
                i += 1
        i += 1
    if depth > 0:
        return 0
    r.q_op = OP_NONE
    r.q_value.p, r.q_value.n = q, 0
    if jv > 0:
        r.q_path.p, r.q_path.n = q + 2, jv - 2
        span_trim(&r.q_path)
        value.p, value.n = q + jv, i - jv
        span_trim(&value)
        if value.n == 1:
            opsz = 1
        elif value.p[0] == 33 and value.p[1] == 61:
            opsz = 2
        elif value.p[0] == 33 and value.p[1] == 37:
            opsz = 2
        elif value.p[0] == 60 and value.p[1] == 61:
            opsz = 2
        elif value.p[0] == 62 and value.p[1] == 61:
            opsz = 2
        elif value.p[0] == 61 and value.p[1] == 61:
            value.p += 1
            value.n -= 1
            opsz = 1
        elif value.p[0] == 60 or value.p[0] == 62 or value.p[0] == 61 or value.p[0] == 37:
            opsz = 1
        if opsz == 0:
            r.q_op = OP_NONE
        elif opsz == 2:
            if value.p[0] == 33:
                r.q_op = OP_NE if value.p[1] == 61 else OP_NLIKE
            else:
                r.q_op = OP_LE if value.p[0] == 60 else OP_GE
        else:
            c = value.p[0]
            r.q_op = (OP_EQ if c == 61 else OP_LT if c == 60 else OP_GT if c == 62
                      else OP_LIKE if c == 37 else OP_OTHER)
        value.p += opsz
        value.n -= opsz
        span_trim(&value)
        if value.n >= 2 and value.p[0] == 34 and value.p[value.n - 1] == 34:
            value.p += 1
            value.n -= 2
            if vesc:
                value.p = keep_unescaped(value.p, value.n, &value.n, arena)
        r.q_value = value
    else:
        r.q_path.p, r.q_path.n = q + 2, i - 2
        span_trim(&r.q_path)
    fi[0] = i + 1
    return 1


cdef int parse_array_path(cstr p, Py_ssize_t n, ArrPath* r, Arena* arena) except -1:
    cdef Py_ssize_t i = 0, fi = 0
    memset(r, 0, sizeof(ArrPath))
    while i < n:
        if p[i] == 124:
            r.part.p, r.part.n = p, i
            r.pipe.p, r.pipe.n = p + i + 1, n - i - 1
            r.piped = True
            return 0
        if p[i] == 46:
            r.part.p, r.part.n = p, i
            if not r.arrch and i < n - 1 and is_dot_piper_char(p + i + 1, n - i - 1):
                r.pipe.p, r.pipe.n = p + i + 1, n - i - 1
                r.piped = True
            else:
                r.path.p, r.path.n = p + i + 1, n - i - 1
                r.more = True
            return 0
        if p[i] == 35:
            r.arrch = True
            if i == 0 and n > 1:
                if p[1] == 46:
                    r.alogok = True
                    r.alogkey.p, r.alogkey.n = p + 2, n - 2
                    r.path.p, r.path.n = p, 1
                elif p[1] == 91 or p[1] == 40:
                    r.q_on = True
                    if not parse_query(p, n, r, &fi, arena):
                        break
                    i = fi - 1
                    if i + 1 < n and p[i + 1] == 35:
                        r.q_all = True
        i += 1
    r.part.p, r.part.n = p, n
    r.path.p, r.path.n = p, 0
    return 0


cdef bint split_possible_pipe(Span path, Span* left, Span* right) noexcept nogil:
    cdef cstr p = path.p
    cdef Py_ssize_t n = path.n, i, depth, e
    cdef unsigned char start, end
    if n == 0 or memchr(p, 124, n) == NULL:
        return False
    if p[0] == 123:
        e = _squash_len(p + 1, n - 1)
        if e < n - 1:
            if p[e + 1] == 124:
                left.p, left.n = p, e + 1
                right.p, right.n = p + e + 2, n - e - 2
                return True
        return False
    i = 0
    while i < n:
        if p[i] == 92:
            i += 1
        elif p[i] == 46:
            if i == n - 1:
                return False
            if p[i + 1] == 35:
                i += 2
                if i == n:
                    return False
                if p[i] == 91 or p[i] == 40:
                    start = p[i]
                    end = 93 if start == 91 else 41
                    i += 1
                    depth = 1
                    while i < n:
                        if p[i] == 92:
                            i += 1
                        elif p[i] == start:
                            depth += 1
                        elif p[i] == end:
                            depth -= 1
                            if depth == 0:
                                break
                        elif p[i] == 34:
                            i += 1
                            while i < n:
                                if p[i] == 92:
                                    i += 1
                                elif p[i] == 34:
                                    break
                                i += 1
                        i += 1
        elif p[i] == 124:
            left.p, left.n = p, i
            right.p, right.n = p + i + 1, n - i - 1
            return True
        i += 1
    return False


cdef Py_ssize_t _squash_len(cstr j, Py_ssize_t n) noexcept nogil:
    """Length of gjson's squash(j): the leading value ('[', '{', '(' or '"')."""
    cdef Py_ssize_t i = 0, depth = 0, s2, k, cnt
    if n == 0:
        return 0
    if j[0] != 34:
        i, depth = 1, 1
    while i < n:
        if 34 <= j[i] <= 125:
            if j[i] == 34:
                i += 1
                s2 = i
                while i < n:
                    if j[i] > 92:
                        i += 1
                        continue
                    if j[i] == 34:
                        if j[i - 1] == 92:
                            cnt = 0
                            k = i - 2
                            while k > s2 - 1:
                                if j[k] != 92:
                                    break
                                cnt += 1
                                k -= 1
                            if cnt % 2 == 0:
                                i += 1
                                continue
                        break
                    i += 1
                if depth == 0:
                    if i >= n:
                        return n
                    return i + 1
            elif j[i] == 123 or j[i] == 91 or j[i] == 40:
                depth += 1
            elif j[i] == 125 or j[i] == 93 or j[i] == 41:
                depth -= 1
                if depth == 0:
                    return i + 1
        i += 1
    return n


cdef inline Py_ssize_t parse_uint(cstr p, Py_ssize_t n) noexcept nogil:
    """Array index from a path component; -1 when it is not all digits."""
    cdef Py_ssize_t i, v = 0
    if n == 0:
        return -1
    for i in range(n):
        if p[i] < 48 or p[i] > 57:
            return -1
        if v > (PY_SSIZE_T_MAX - 9) // 10:
            return PY_SSIZE_T_MAX   # larger than any array here
        v = v * 10 + (p[i] - 48)
    return v


cdef int _go_bool_word(cstr s, Py_ssize_t n) noexcept nogil:
    """strconv.ParseBool(strings.ToLower(s)): 1 or 0, and -1 when s is no bool."""
    cdef unsigned char buf[5]
    cdef Py_ssize_t k
    if n == 0 or n > 5:
        return -1
    for k in range(n):
        buf[k] = s[k] + 32 if 65 <= s[k] <= 90 else s[k]
    if n == 1:
        if buf[0] == 49 or buf[0] == 116:
            return 1
        return 0 if buf[0] == 48 or buf[0] == 102 else -1
    if n == 4 and memcmp(buf, b"true", 4) == 0:
        return 1
    return 0 if n == 5 and memcmp(buf, b"false", 5) == 0 else -1


cdef bint query_matches(ArrPath* rp, const Res* value_in) noexcept nogil:
    # value points at the caller's Res; only '~' needs a modified copy (tmp)
    cdef const Res* value = value_in
    cdef Res tmp
    cdef cstr rpv = rp.q_value.p
    cdef Py_ssize_t rpn = rp.q_value.n
    cdef bint ish = False, known = True
    cdef int c
    cdef double rn
    if rpn > 0 and rpv[0] == 126:   # '~' converts the value to a boolean
        rpv += 1
        rpn -= 1
        if span_eq(rpv, rpn, b"*"):
            ish = res_exists(value)
        elif span_eq(rpv, rpn, b"null"):
            ish = value.type == T_NULL
        elif span_eq(rpv, rpn, b"true"):
            ish = (value.type == T_TRUE or
                   (value.type == T_STRING and _go_bool_word(value.s, value.slen) == 1) or
                   (value.type == T_NUMBER and value.num != 0))
        elif span_eq(rpv, rpn, b"false"):
            ish = (value.type == T_NULL or value.type == T_FALSE or
                   (value.type == T_STRING and _go_bool_word(value.s, value.slen) == 0) or
                   (value.type == T_NUMBER and value.num == 0))
        else:
            known = False
        res_clear(&tmp)
        if known:
            rpv, rpn = <cstr>_TRUE_STR, 4
            tmp.type = T_TRUE if ish else T_FALSE
        else:
            rpn = 0
        value = &tmp
    if not res_exists(value):
        return False
    if rp.q_op == OP_NONE:
        return True
    if value.type == T_STRING:
        if rp.q_op == OP_LIKE:
            return match_limit(value.s, value.slen, rpv, rpn)
        if rp.q_op == OP_NLIKE:
            return not match_limit(value.s, value.slen, rpv, rpn)
        if rp.q_op == OP_EQ:       # the common Switch condition: no ordering needed
            return value.slen == rpn and same_bytes(value.s, rpv, rpn)
        c = bytes_cmp(value.s, value.slen, rpv, rpn)
        if rp.q_op == OP_EQ:
            return c == 0
        if rp.q_op == OP_NE:
            return c != 0
        if rp.q_op == OP_LT:
            return c < 0
        if rp.q_op == OP_LE:
            return c <= 0
        if rp.q_op == OP_GT:
            return c > 0
        if rp.q_op == OP_GE:
            return c >= 0
    elif value.type == T_NUMBER:
        rn = go_parse_float(rpv, rpn)
        if rp.q_op == OP_EQ:
            return value.num == rn
        if rp.q_op == OP_NE:
            return value.num != rn
        if rp.q_op == OP_LT:
            return value.num < rn
        if rp.q_op == OP_LE:
            return value.num <= rn
        if rp.q_op == OP_GT:
            return value.num > rn
        if rp.q_op == OP_GE:
            return value.num >= rn
    elif value.type == T_TRUE:
        if rp.q_op == OP_EQ:
            return span_eq(rpv, rpn, b"true")
        if rp.q_op == OP_NE:
            return not span_eq(rpv, rpn, b"true")
        if rp.q_op == OP_GT:
            return span_eq(rpv, rpn, b"false")
        if rp.q_op == OP_GE:
            return True
    elif value.type == T_FALSE:
        if rp.q_op == OP_EQ:
            return span_eq(rpv, rpn, b"false")
        if rp.q_op == OP_NE:
            return not span_eq(rpv, rpn, b"false")
        if rp.q_op == OP_LT:
            return span_eq(rpv, rpn, b"true")
        if rp.q_op == OP_LE:
            return True
    return False


cdef int parse_any(cstr j, Py_ssize_t n, Py_ssize_t i, Res* res, Py_ssize_t* out_i,
                   Arena* arena) except -1:
    """gjson's parseAny with hit=true; returns 1 when a value was found."""
    cdef bint esc, ok, num
    cdef Py_ssize_t s
    cdef unsigned char c
    res_clear(res)
    while i < n:
        c = j[i]
        if c == 123 or c == 91:
            s = i
            i = parse_squash(j, n, i)
            res.type = T_JSON
            res.raw, res.rawlen = j + s, sq_end(i, n) - s
            out_i[0] = i
            return 1
        if c <= 32:
            i += 1
            continue
        num = False
        if c == 34:
            s = i
            i = parse_string(j, n, i + 1, &esc, &ok)
            out_i[0] = i
            if not ok:
                return 0
            set_string(res, j + s, i - s, esc, arena)
            return 1
        if c == 110 and i + 1 < n and j[i + 1] != 117:
            num = True
        elif c == 110 or c == 116 or c == 102:
            s = i
            i = parse_literal(j, n, i)
            res.raw, res.rawlen = j + s, i - s
            res.type = T_TRUE if c == 116 else (T_FALSE if c == 102 else T_NULL)
            out_i[0] = i
            return 1
        elif c == 43 or c == 45 or 48 <= c <= 57 or c == 105 or c == 73 or c == 78:
            num = True
        if num:
            s = i
            i = parse_number(j, n, i)
            res.type = T_NUMBER
            res.raw, res.rawlen = j + s, i - s
            res.num = go_parse_float(j + s, i - s)
            out_i[0] = i
            return 1
        i += 1
    out_i[0] = i
    return 0


cdef bint plain_key(Span path, bint* wild) noexcept nogil:
    """True when Get(json, path) on an object is parseObject with path as one key."""
    cdef Py_ssize_t k
    cdef unsigned char ch
    wild[0] = False
    if path.n == 0:
        return False
    ch = path.p[0]
    if path.n > 1 and (ch == 64 or ch == 33 or ch == 91 or ch == 123):
        return False
    for k in range(path.n):
        ch = path.p[k]
        if ch == 46 or ch == 124 or ch == 92:
            return False
        if ch == 42 or ch == 63:
            wild[0] = True
    return True


cdef int key_of_object(Ctx* c, ObjPath* rp, cstr j, Py_ssize_t n, const ArrPath* ap,
                       Arena* arena) except -1:
    """eval_path(j, n, ap.q_path) into c.value, for j starting with '{' and a
    plain_key path; the caller reads c.value in place (no Res copy per element)."""
    cdef bint hit
    memset(c, 0, sizeof(Ctx))
    memset(rp, 0, sizeof(ObjPath))
    c.j = j
    c.n = n
    c.arena = arena
    rp.part = ap.q_path
    rp.wild = ap.q_key_wild
    parse_object_rp(c, 1, rp, &hit)
    return 0


cdef Py_ssize_t parse_object(Ctx* c, Py_ssize_t i, cstr path, Py_ssize_t pn,
                             bint* hit_out) except -2:
    cdef ObjPath rp
    if c.table != NULL and pn > 1 and path[0] == 35 and path[1] == 40:
        # the query met an object: gjson compares its keys with the query's own
        # text, which differs per condition
        c.table.bail = True
    parse_object_path(path, pn, &rp, c.arena)
    return parse_object_rp(c, i, &rp, hit_out)


cdef Py_ssize_t parse_object_rp(Ctx* c, Py_ssize_t i, ObjPath* rpp,
                                bint* hit_out) except -2:
    cdef ObjPath* rp = rpp
    cdef cstr j = c.j
    cdef Py_ssize_t n = c.n, s, keylen
    cdef bint pmatch = False, kesc = False, vesc, ok = False, hit = False, num
    cdef Py_ssize_t mark = 0
    cdef cstr key
    cdef unsigned char ch
    cdef Py_ssize_t qi
    hit_out[0] = False
    if not rp.more and rp.piped:
        c.pipe = rp.pipe
        c.piped = True
    while i < n:
        # find the next key (a '}' first means the object ends)
        while i < n:
            ch = j[i]
            if ch == 34:
                i += 1
                s = i
                qi = gj_find_byte(j, i, n, 34)
                if qi < 0:
                    key, keylen, kesc, ok = j + s, n - s, False, False
                    i = n
                elif gj_find_byte(j, i, qi, 92) < 0:
                    i = qi
                    key, keylen, kesc, ok = j + s, i - s, False, True
                    i += 1
                else:
                    i = _esc_quote_scan(j, n, qi, 0)
                    if i < 0:
                        i = n
                        key, keylen, kesc, ok = j + s, n - s, False, False
                    else:
                        key, keylen, kesc, ok = j + s, i - s, True, True
                        i += 1
                break
            if ch == 125:
                return i + 1
            i += 1
        if not ok:
            return i
        if kesc:
            mark = arena_mark(c.arena)
            key = keep_unescaped(key, keylen, &keylen, c.arena)
        if rp.wild:
            pmatch = match_limit(key, keylen, rp.part.p, rp.part.n)
        else:
            pmatch = keylen == rp.part.n and same_bytes(key, rp.part.p, keylen)
        if kesc:
            arena_reset(c.arena, mark)
        hit = pmatch and not rp.more
        # the value
        while i < n:
            ch = j[i]
            num = False
            if ch == 34:
                s = i
                i = parse_string(j, n, i + 1, &vesc, &ok)
                if not ok:
                    return i
                if hit:
                    set_string(&c.value, j + s, i - s, vesc, c.arena)
                    hit_out[0] = True
                    return i
            elif ch == 123 or ch == 91:
                if pmatch and not hit:
                    if ch == 123:
                        i = parse_object(c, i + 1, rp.path.p, rp.path.n, &hit)
                    else:
                        i = parse_array(c, i + 1, rp.path.p, rp.path.n, &hit)
                    if hit:
                        hit_out[0] = True
                        return i
                else:
                    s = i
                    i = parse_squash(j, n, i)
                    if hit:
                        c.value.type = T_JSON
                        c.value.raw, c.value.rawlen = j + s, sq_end(i, n) - s
                        hit_out[0] = True
                        return i
            elif ch == 110 and i + 1 < n and j[i + 1] != 117:
                num = True
            elif ch == 110 or ch == 116 or ch == 102:
                s = i
                i = parse_literal(j, n, i)
                if hit:
                    c.value.raw, c.value.rawlen = j + s, sq_end(i, n) - s
                    c.value.type = T_TRUE if ch == 116 else (T_FALSE if ch == 102 else T_NULL)
                    hit_out[0] = True
                    return i
            elif ch == 43 or ch == 45 or 48 <= ch <= 57 or ch == 105 or ch == 73 or ch == 78:
                num = True
            else:
                i += 1
                continue
            if num:
                s = i
                i = parse_number(j, n, i)
                if hit:
                    c.value.raw, c.value.rawlen = j + s, i - s
                    c.value.type = T_NUMBER
                    c.value.num = go_parse_float(j + s, i - s)
                    hit_out[0] = True
                    return i
            break
    return i


cdef struct QState:
    # a growable byte buffer for '#(...)#' results and '#.' collections
    unsigned char* buf
    Py_ssize_t len
    Py_ssize_t cap


cdef int qs_append(QState* q, cstr p, Py_ssize_t n) except -1:
    cdef Py_ssize_t need = q.len + n
    cdef unsigned char* nb
    if need > q.cap:
        nb = <unsigned char*>realloc(q.buf, need * 2 + 64)
        if nb == NULL:
            raise MemoryError()
        q.buf = nb
        q.cap = need * 2 + 64
    if n > 0:
        memcpy(q.buf + q.len, p, n)
    q.len = need
    return 0


cdef int result_string_form(const Res* r, cstr* p, Py_ssize_t* n, Arena* arena) except -1:
    """Result.Raw, or Result.String() when Raw is empty (calculated values)."""
    cdef bytes b
    if r.rawlen > 0:
        p[0], n[0] = r.raw, r.rawlen
        return 0
    b = go_string_of(r)
    p[0] = arena_keep(arena, b)
    n[0] = len(b)
    return 0


cdef int proc_query(Ctx* c, ArrPath* rp, const Res* qval, QState* multi) except -1:
    """One array element under a query; returns 1 when a first-match query is done."""
    cdef Res res
    cdef const Res* found = &res
    cdef Ctx kc
    cdef ObjPath kp
    cdef Span left, right
    cdef cstr rawp
    cdef Py_ssize_t rawn
    if rp.q_all and multi.len == 0:
        qs_append(multi, <cstr>b"[", 1)
    if qval.type == T_JSON:
        if rp.q_key and qval.raw[0] == 123:
            key_of_object(&kc, &kp, qval.raw, qval.rawlen, rp, c.arena)
            found = &kc.value
        else:
            eval_path(qval.raw, qval.rawlen, rp.q_path.p, rp.q_path.n, &res, c.arena)
    else:
        if rp.q_path.n != 0:
            return 0
        found = qval
    if c.table != NULL:
        return qtable_visit(c.table, found)
    if not query_matches(rp, found):
        return 0
    if rp.more:
        if split_possible_pipe(rp.path, &left, &right):
            rp.path = left
            c.pipe = right
            c.piped = True
        eval_path(qval.raw, qval.rawlen, rp.path.p, rp.path.n, &res, c.arena)
    else:
        res = qval[0]
    if rp.q_all:
        result_string_form(&res, &rawp, &rawn, c.arena)
        if rawn > 0:
            if multi.len > 1:
                qs_append(multi, <cstr>b",", 1)
            qs_append(multi, rawp, rawn)
        return 0
    c.value = res
    return 1


cdef int set_built_json(Res* r, QState* q, Arena* arena) except -1:
    cdef bytes out = PyBytes_FromStringAndSize(<char*>q.buf, q.len)
    res_clear(r)
    r.type = T_JSON
    r.raw = arena_keep(arena, out)
    r.rawlen = len(out)
    return 0


cdef int set_count(Res* r, Py_ssize_t count, Arena* arena) except -1:
    # gjson gives '#' a Raw of the decimal count
    cdef char digits[24]
    cdef int k = 23
    cdef Py_ssize_t v = count
    digits[23] = 0
    while True:
        k -= 1
        digits[k] = 48 + v % 10
        v //= 10
        if v == 0:
            break
    res_clear(r)
    r.type = T_NUMBER
    r.num = <double>count
    r.raw = arena_keep(arena, PyBytes_FromStringAndSize(digits + k, 23 - k))
    r.rawlen = 23 - k
    return 0


cdef Py_ssize_t parse_array(Ctx* c, Py_ssize_t i, cstr path, Py_ssize_t pn,
                            bint* hit_out) except -2:
    cdef ArrPath rp
    cdef QState multi
    cdef QState alog      # element start offsets, as Py_ssize_t
    cdef Py_ssize_t r
    memset(&multi, 0, sizeof(QState))
    memset(&alog, 0, sizeof(QState))
    try:
        r = _parse_array(c, i, path, pn, hit_out, &rp, &multi, &alog)
    finally:
        free(multi.buf)
        free(alog.buf)
    return r


cdef Py_ssize_t _parse_array(Ctx* c, Py_ssize_t i, cstr path, Py_ssize_t pn,
                             bint* hit_out, ArrPath* rp, QState* multi,
                             QState* alog) except -2:
    cdef cstr j = c.j
    cdef Py_ssize_t n = c.n, h = 0, partidx = -1, s, idx, k, cnt, nal, mark
    cdef bint pmatch = False, hit = False, vesc, ok, num, closed
    cdef unsigned char ch
    cdef Res qval, res
    cdef Span left, right
    cdef cstr rawp
    cdef Py_ssize_t rawn
    cdef Py_ssize_t* offs
    hit_out[0] = False
    parse_array_path(path, pn, rp, c.arena)
    if rp.q_on:
        rp.q_key = plain_key(rp.q_path, &rp.q_key_wild)
    mark = arena_mark(c.arena)
    if not rp.arrch:
        partidx = parse_uint(rp.part.p, rp.part.n)
    if not rp.more and rp.piped:
        c.pipe = rp.pipe
        c.piped = True
    while i < n + 1:
        # a found value returns at once, so the previous element's scratch is garbage
        arena_reset(c.arena, mark)
        if not rp.arrch:
            pmatch = partidx == h
            hit = pmatch and not rp.more
        h += 1
        if rp.alogok:
            qs_append(alog, <cstr>&i, sizeof(Py_ssize_t))
        while True:
            if i > n:
                break
            ch = 93 if i == n else j[i]
            num = False
            if ch == 34:
                s = i
                i = parse_string(j, n, i + 1, &vesc, &ok)
                if not ok:
                    return i
                if rp.q_on:
                    res_clear(&qval)
                    set_string(&qval, j + s, i - s, vesc, c.arena)
                    if proc_query(c, rp, &qval, multi):
                        hit_out[0] = True
                        return i
                elif hit:
                    if rp.alogok:
                        break
                    set_string(&c.value, j + s, i - s, vesc, c.arena)
                    hit_out[0] = True
                    return i
            elif ch == 123 or ch == 91:
                if pmatch and not hit:
                    if ch == 123:
                        i = parse_object(c, i + 1, rp.path.p, rp.path.n, &hit)
                    else:
                        i = parse_array(c, i + 1, rp.path.p, rp.path.n, &hit)
                    if hit:
                        if rp.alogok:
                            break
                        hit_out[0] = True
                        return i
                    if res_exists(&c.value):
                        # a '#(...)#' below answered without a hit and the scan goes
                        # on: its built JSON must outlive the next element's reset
                        mark = arena_mark(c.arena)
                else:
                    s = i
                    i = squash_ex(j, n, i, &closed)
                    if not closed:
                        c.virt_open = True
                    if rp.q_on:
                        res_clear(&qval)
                        qval.type = T_JSON
                        qval.raw, qval.rawlen = j + s, sq_end(i, n) - s
                        if proc_query(c, rp, &qval, multi):
                            hit_out[0] = True
                            return i
                    elif hit:
                        if rp.alogok:
                            break
                        c.value.type = T_JSON
                        c.value.raw, c.value.rawlen = j + s, sq_end(i, n) - s
                        hit_out[0] = True
                        return i
            elif ch == 110 and i + 1 < n and j[i + 1] != 117:
                num = True
            elif ch == 110 or ch == 116 or ch == 102:
                s = i
                i = parse_literal(j, n, i)
                if rp.q_on:
                    res_clear(&qval)
                    qval.raw, qval.rawlen = j + s, i - s
                    qval.type = T_TRUE if ch == 116 else (T_FALSE if ch == 102 else T_NULL)
                    if proc_query(c, rp, &qval, multi):
                        hit_out[0] = True
                        return i
                elif hit:
                    if rp.alogok:
                        break
                    c.value.raw, c.value.rawlen = j + s, i - s
                    c.value.type = T_TRUE if ch == 116 else (T_FALSE if ch == 102 else T_NULL)
                    hit_out[0] = True
                    return i
            elif ch == 43 or ch == 45 or 48 <= ch <= 57 or ch == 105 or ch == 73 or ch == 78:
                num = True
            elif ch == 93:
                if rp.arrch and rp.part.n == 1 and rp.part.p[0] == 35:
                    if rp.alogok:
                        if split_possible_pipe(rp.alogkey, &left, &right):
                            rp.alogkey = left
                            c.pipe = right
                            c.piped = True
                        multi.len = 0
                        qs_append(multi, <cstr>b"[", 1)
                        nal = alog.len // sizeof(Py_ssize_t)
                        cnt = 0
                        for k in range(nal):
                            offs = <Py_ssize_t*>alog.buf
                            idx = offs[k]
                            while idx < n and (j[idx] == 32 or j[idx] == 9 or
                                               j[idx] == 13 or j[idx] == 10):
                                idx += 1
                            if idx < n and j[idx] != 93:
                                if parse_any(j, n, idx, &qval, &s, c.arena):
                                    eval_path(qval.raw, qval.rawlen, rp.alogkey.p, rp.alogkey.n,
                                        &res, c.arena)
                                    if res_exists(&res):
                                        if cnt > 0:
                                            qs_append(multi, <cstr>b",", 1)
                                        result_string_form(&res, &rawp, &rawn, c.arena)
                                        qs_append(multi, rawp, rawn)
                                        cnt += 1
                                arena_reset(c.arena, mark)
                        qs_append(multi, <cstr>b"]", 1)
                        set_built_json(&c.value, multi, c.arena)
                        hit_out[0] = True
                        return i + 1
                    if rp.alogok:
                        break
                    set_count(&c.value, h - 1, c.arena)
                    c.calcd = True
                    hit_out[0] = True
                    return i + 1
                if not res_exists(&c.value):
                    if multi.len > 0:
                        qs_append(multi, <cstr>b"]", 1)
                        set_built_json(&c.value, multi, c.arena)
                    elif rp.q_all:
                        res_clear(&c.value)
                        c.value.type = T_JSON
                        c.value.raw, c.value.rawlen = <cstr>b"[]", 2
                return i + 1
            else:
                i += 1
                continue
            if num:
                s = i
                i = parse_number(j, n, i)
                if rp.q_on:
                    res_clear(&qval)
                    qval.raw, qval.rawlen = j + s, i - s
                    qval.type = T_NUMBER
                    qval.num = go_parse_float(j + s, i - s)
                    if proc_query(c, rp, &qval, multi):
                        hit_out[0] = True
                        return i
                elif hit:
                    if rp.alogok:
                        break
                    c.value.raw, c.value.rawlen = j + s, i - s
                    c.value.type = T_NUMBER
                    c.value.num = go_parse_float(j + s, i - s)
                    hit_out[0] = True
                    return i
            break
    return i


cdef Py_ssize_t this_array_fast(cstr j, Py_ssize_t n, cstr rest, Py_ssize_t rn,
                                Res* out, Arena* arena, bint trusted,
                                QTable* table=NULL) except -2:
    """'[@this].REST' without building '[' + document + ']' (KServe's own idiom).

    gjson evaluates REST on that new array.  When the document is one closed object
    or array followed only by whitespace, scanning the document itself with a virtual
    ']' at its end (as JSON Lines mode does) visits exactly the same bytes, so no copy
    is needed.  Returns -1 (caller falls back) for anything else.  ``trusted`` means
    the caller has checked c_valid(j, n), which already proves that shape.
    """
    cdef Ctx c
    cdef Py_ssize_t i0 = 0, e, k
    cdef bint closed, hit, query
    cdef Res tmp
    if rn > 1 and (rest[0] == 64 or rest[0] == 33 or rest[0] == 91 or rest[0] == 123 or
                   (rest[0] == 46 and rest[1] == 46)):
        return -1
    while i0 < n and j[i0] <= 32 and j[i0] != 123 and j[i0] != 91:
        i0 += 1
    if i0 == n or (j[i0] != 123 and j[i0] != 91):
        return -1
    # a query squashes each element itself, and reports one left open
    query = rn > 1 and rest[0] == 35 and (rest[1] == 40 or rest[1] == 91)
    if not trusted and j[n - 1] == 110:
        # a last 'n' is a number before gjson's real ']' but null before a virtual one
        return -1
    if not trusted and not query:
        e = squash_ex(j, n, i0, &closed)
        if not closed:
            return -1
        for k in range(e, n):
            if j[k] > 32:
                return -1
    memset(&c, 0, sizeof(Ctx))
    c.j = j + i0
    c.n = n - i0
    c.arena = arena
    c.virt_end = True
    c.table = table
    parse_array(&c, 0, rest, rn, &hit)
    if c.virt_open and not trusted:
        return -1
    if c.piped:
        tmp = c.value
        eval_path(tmp.raw, tmp.rawlen, c.pipe.p, c.pipe.n, out, arena)
        return 0
    out[0] = c.value
    return 0


cdef int eval_valid_doc(cstr j, Py_ssize_t n, cstr path, Py_ssize_t pn, Res* out,
                        Arena* arena) except -1:
    """eval_path for a document known to pass c_valid (KServe checks that first)."""
    if pn > 8 and path[0] == 91 and memcmp(path, b"[@this]", 7) == 0 and \
            (path[7] == 46 or path[7] == 124):
        if this_array_fast(j, n, path + 8, pn - 8, out, arena, True) >= 0:
            return 0
    return eval_path(j, n, path, pn, out, arena)


cdef int eval_special(cstr j, Py_ssize_t n, cstr path, Py_ssize_t pn, Res* out,
                      Arena* arena, Py_ssize_t* skip) except -1:
    """Paths starting with '@', '!', '[' or '{'; returns 1 when handled here, else 0
    with the length of the path's head that gjson drops before the plain lookup."""
    cdef object r
    cdef bytes rjson
    cdef Py_ssize_t restoff
    cdef Res tmp
    if path[0] == 64 and pn >= 5 and memcmp(path, b"@this", 5) == 0 and \
            (pn == 5 or path[5] == 46 or path[5] == 124):
        # @this returns its input: evaluate in place instead of copying the body
        if pn > 5:
            eval_path(j, n, path + 6, pn - 6, out, arena)
        else:
            parse_value(j, n, out, arena)
        return 1
    if pn > 8 and path[0] == 91 and memcmp(path, b"[@this]", 7) == 0 and \
            (path[7] == 46 or path[7] == 124):
        if this_array_fast(j, n, path + 8, pn - 8, out, arena, False) >= 0:
            return 1
    if path[0] == 64 or path[0] == 33:
        r = exec_modifier(j, n, path, pn) if path[0] == 64 else exec_static(path, pn)
        if r is not None:
            rjson, restoff = r
            if restoff < pn and (path[restoff] == 124 or path[restoff] == 46):
                eval_path(arena_keep(arena, rjson), len(rjson), path + restoff + 1,
                          pn - restoff - 1, out, arena)
            else:
                parse_value(arena_keep(arena, rjson), len(rjson), out, arena)
            return 1
    if path[0] == 91 or path[0] == 123:
        rjson, restoff = exec_multipath(j, n, path, pn)
        if rjson is None:
            skip[0] = restoff
        else:
            res_clear(out)
            out.type = T_JSON
            out.raw = arena_keep(arena, rjson)
            out.rawlen = len(rjson)
            if restoff < pn:
                tmp = out[0]
                eval_path(tmp.raw, tmp.rawlen, path + restoff + 1, pn - restoff - 1,
                          out, arena)
            return 1
    return 0


cdef int eval_path(cstr j, Py_ssize_t n, cstr path, Py_ssize_t pn, Res* out,
                   Arena* arena) except -1:
    """gjson.Get(json, path) into out; pointers in out live as long as j and arena."""
    cdef Ctx c
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t skip = 0
    cdef bint hit
    cdef Res tmp
    res_clear(out)
    if pn > 1 and (path[0] == 64 or path[0] == 33 or path[0] == 91 or path[0] == 123):
        if eval_special(j, n, path, pn, out, arena, &skip):
            return 0
        path += skip
        pn -= skip
    memset(&c, 0, sizeof(Ctx))
    c.j = j
    c.n = n
    c.arena = arena
    if pn >= 2 and path[0] == 46 and path[1] == 46:
        c.lines = True
        parse_array(&c, 0, path + 2, pn - 2, &hit)
    else:
        while i < n:
            if j[i] == 123:
                parse_object(&c, i + 1, path, pn, &hit)
                break
            if j[i] == 91:
                parse_array(&c, i + 1, path, pn, &hit)
                break
            i += 1
    if c.piped:
        tmp = c.value
        return eval_path(tmp.raw, tmp.rawlen, c.pipe.p, c.pipe.n, out, arena)
    out[0] = c.value
    return 0
