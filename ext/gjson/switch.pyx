# Included by _gjson.pyx: a Switch's equality routes on one key evaluated together.
#
# Conditions '<P>.#(<K>==<literal>)' that share P and K walk the same bytes of the
# document whatever their literal: the query at the end only compares each element's
# value with its literal.  So one walk, with the query looking the value up in a
# table of all the literals (gjson's '==' for each value type, query_matches), finds
# for every condition whether some element matches it, and the lowest such index is
# the Switch's answer.  The one place where the walk depends on the literal is a
# query that meets an object (gjson then compares keys with the query's text): the
# walk flags it and the conditions are evaluated one by one instead.


cdef bint _plain_component_byte(unsigned char ch) noexcept nogil:
    # bytes that never make gjson treat a path component as anything but a key
    return ch > 32 and memchr(b'.|\\*?#@![]{}()"=<>%~,:', ch, 22) == NULL


cdef bint _plain_prefix(bytes p):
    """P of a groupable condition: '[@this]', or dotted keys of plain bytes."""
    cdef const unsigned char* s = p
    cdef Py_ssize_t n = len(p), k
    cdef bint empty = True
    if p == b"[@this]":
        return True
    if n == 0:
        return False
    for k in range(n):
        if s[k] == 46:
            if empty:
                return False
            empty = True
        elif not _plain_component_byte(s[k]):
            return False
        else:
            empty = False
    return not empty


def switch_key(path):
    """``(P, K, literal)`` when ``path`` is ``P.#(K==literal)`` in a form a
    SwitchTable can evaluate (P plain dotted keys or ``[@this]``), else None.

    P and K are the path's bytes as gjson reads them (K trimmed), literal the
    value compared (quotes removed and unescaped as gjson does)."""
    cdef bytes pb = path.encode("utf-8", "surrogatepass") if isinstance(path, str) else bytes(path)
    cdef bytes comp, prefix
    cdef ArrPath rp
    cdef Arena arena
    cdef Py_ssize_t h, fi = 0
    cdef cstr q
    h = pb.find(b".#(")     # P has no '#', so its end is the first '.#('
    if h <= 0:
        return None
    prefix = pb[:h]
    if not _plain_prefix(prefix):
        return None
    comp = pb[h + 1:]
    q = <cstr>PyBytes_AS_STRING(comp)
    memset(&rp, 0, sizeof(ArrPath))
    arena.items = NULL
    try:
        if not parse_query(q, len(comp), &rp, &fi, &arena) or fi != len(comp):
            return None
        if rp.q_op != OP_EQ:
            return None
        literal = _span_bytes(rp.q_value.p, rp.q_value.n)
        key = _span_bytes(rp.q_path.p, rp.q_path.n)
    finally:
        arena_release(&arena)
    if literal.startswith(b"~"):
        return None         # '~' turns the value into a boolean first
    return (prefix, key, literal)


cdef int _lookup_str(const QTable* t, cstr s, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t lo = 0, hi = t.n_str, mid
    cdef int c
    while lo < hi:
        mid = (lo + hi) >> 1
        if t.str_n[mid] != n:
            c = -1 if t.str_n[mid] < n else 1
        else:
            c = memcmp(t.str_p[mid], s, n) if n > 0 else 0
        if c == 0:
            return t.str_first[mid]
        if c < 0:
            lo = mid + 1
        else:
            hi = mid
    return -1


cdef int _lookup_num(const QTable* t, double v) noexcept nogil:
    cdef Py_ssize_t lo = 0, hi = t.n_num, mid
    if v != v:
        return -1
    while lo < hi:
        mid = (lo + hi) >> 1
        if t.num_v[mid] == v:
            return t.num_first[mid]
        if t.num_v[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return -1


cdef bint qtable_visit(QTable* t, const Res* value) noexcept nogil:
    """One element's value under the walk's query; True once the first condition
    matched (nothing later can do better)."""
    cdef int k = -1
    if not res_exists(value):
        return False
    if value.type == T_STRING:
        k = _lookup_str(t, value.s, value.slen)
    elif value.type == T_NUMBER:
        k = _lookup_num(t, value.num)
    elif value.type == T_TRUE:
        k = t.true_first
    elif value.type == T_FALSE:
        k = t.false_first
    if k >= 0 and k < t.best:
        t.best = k
    return t.best == 0


@cython.final
cdef class SwitchTable:
    """Conditions ``P.#(K==literal)`` with one P and one K, evaluated in one walk.

    ``first(doc)`` is the index of the first condition whose path exists in ``doc``
    (``Path(c).exists(doc)`` for each in order), or -1.  Raises ValueError when the
    conditions do not all have that shape (see ``switch_key``)."""

    def __cinit__(self, paths):
        cdef list compiled = [p if isinstance(p, Path) else Path(p) for p in paths]
        cdef dict strs = {}, nums = {}
        cdef Py_ssize_t k, m
        cdef double v
        cdef bytes lit
        if len(compiled) == 0:
            raise ValueError("a SwitchTable needs at least one condition")
        keys = [switch_key((<Path>p)._pathb) for p in compiled]
        if keys[0] is None or any(kk is None or kk[:2] != keys[0][:2] for kk in keys):
            raise ValueError("conditions are not equality queries on one path and key")
        self.paths = tuple(compiled)
        self.size = len(compiled)
        self._walk = (<Path>compiled[0])._pathb
        self._this = keys[0][0] == b"[@this]"
        self.t.true_first = -1
        self.t.false_first = -1
        for k in range(self.size):
            lit = keys[k][2]
            strs.setdefault(lit, k)
            v = go_parse_float(<cstr>PyBytes_AS_STRING(lit), len(lit))
            if v == v:
                nums.setdefault(v, k)     # -0.0 and 0.0 are one key, as '==' says
            if lit == b"true" and self.t.true_first < 0:
                self.t.true_first = k
            if lit == b"false" and self.t.false_first < 0:
                self.t.false_first = k
        sorted_strs = sorted(strs, key=lambda b: (len(b), b))
        sorted_nums = sorted(nums)
        self._keep = sorted_strs
        self.t.n_str = len(sorted_strs)
        self.t.n_num = len(sorted_nums)
        self.t.str_p = <const unsigned char**>malloc(sizeof(cstr) * (self.t.n_str + 1))
        self.t.str_n = <Py_ssize_t*>malloc(sizeof(Py_ssize_t) * (self.t.n_str + 1))
        self.t.str_first = <int*>malloc(sizeof(int) * (self.t.n_str + 1))
        self.t.num_v = <double*>malloc(sizeof(double) * (self.t.n_num + 1))
        self.t.num_first = <int*>malloc(sizeof(int) * (self.t.n_num + 1))
        if (self.t.str_p == NULL or self.t.str_n == NULL or self.t.str_first == NULL or
                self.t.num_v == NULL or self.t.num_first == NULL):
            raise MemoryError()
        for m, lit in enumerate(sorted_strs):
            self.t.str_p[m] = <cstr>PyBytes_AS_STRING(lit)
            self.t.str_n[m] = len(lit)
            self.t.str_first[m] = strs[lit]
        for m, v in enumerate(sorted_nums):
            self.t.num_v[m] = v
            self.t.num_first[m] = nums[v]

    def __dealloc__(self):
        free(self.t.str_p)
        free(self.t.str_n)
        free(self.t.str_first)
        free(self.t.num_v)
        free(self.t.num_first)

    cdef int c_first(self, const char* doc, Py_ssize_t n) except -2:
        cdef QTable t = self.t      # a copy: best and bail are this evaluation's
        cdef Arena arena
        cdef Res r
        cdef Ctx c
        cdef Py_ssize_t i = 0, k
        cdef bint hit
        cdef cstr walk = <cstr>PyBytes_AS_STRING(self._walk)
        cdef Py_ssize_t wn = len(self._walk)
        cdef cstr j = <cstr>doc
        t.best = self.size
        t.bail = False
        arena.items = NULL
        try:
            if self._this:
                # what eval_path does for '[@this].': the in-place walk, or else
                # the general multipath, which the table does not follow
                if this_array_fast(j, n, walk + 8, wn - 8, &r, &arena, False, &t) < 0:
                    t.bail = True
            else:
                memset(&c, 0, sizeof(Ctx))
                c.j = j
                c.n = n
                c.arena = &arena
                c.table = &t
                while i < n:
                    if j[i] == 123:
                        parse_object(&c, i + 1, walk, wn, &hit)
                        break
                    if j[i] == 91:
                        parse_array(&c, i + 1, walk, wn, &hit)
                        break
                    i += 1
        finally:
            arena_release(&arena)
        if t.bail:
            for k in range(self.size):
                if (<Path>self.paths[k]).c_exists(doc, n):
                    return <int>k
            return -1
        return t.best if t.best < self.size else -1

    def first(self, doc):
        """Index of the first condition whose path exists in ``doc``, or -1."""
        cdef _Doc d = _doc_of(doc)
        return self.c_first(<const char*>d.p, d.n)

    def __repr__(self):
        return f"SwitchTable({[p.source for p in self.paths]!r})"
